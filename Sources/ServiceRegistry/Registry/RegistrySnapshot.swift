import Dispatch
public import HashTreeCollections
public import NetAddress

/// An immutable view of the registry at one resource version. Snapshots share structure
/// (persistent hash trees), so taking one is O(1) and a writer never copies the whole registry.
public struct RegistrySnapshot: Sendable {
    public internal(set) var resourceVersion: UInt64 = 0
    public internal(set) var objects: TreeDictionary<ObjectKey, RegistryObject> = [:]
    /// Derived endpoints of every service that has any (selector or slices or Endpoints).
    public internal(set) var serviceEndpoints: TreeDictionary<ObjectKey, ServiceEndpoints> = [:]
    /// True once the initial load has completed (`Registry.markLoaded()`).
    public internal(set) var isLoaded = false
    /// With a shared store: the nodes whose lease (heartbeat) is held now.
    public internal(set) var leasedNodes: Set<String> = []
    /// Nodes that keep a lease (annotated `clusterdns.io/node-lease` by their agent) and whose
    /// lease has lapsed: their endpoints are neither ready nor serving, as Kubernetes marks the
    /// pods of a node that stopped reporting.
    public internal(set) var unreachableNodes: Set<String> = []

    /// The annotation a node agent puts on its Node: the node's readiness follows its lease.
    public static let nodeLeaseAnnotation = "clusterdns.io/node-lease"

    /// Whether a node is ready: one without a lease always, one with a lease while it is held.
    public func isNodeReady(_ name: String) -> Bool { !unreachableNodes.contains(name) }

    public init() {}

    public func get(_ key: ObjectKey) -> RegistryObject? { objects[key] }

    /// The pod CIDRs of the node named `node` (none when there is no such node).
    public func podCIDRs(ofNode node: String) -> [IPPrefix] {
        guard case .node(let object)? = objects[ObjectKey(.node, name: node)] else { return [] }
        return object.podCIDRs.compactMap { try? IPPrefix(parsing: $0) }
    }

    public func service(namespace: String, name: String) -> Service? {
        if case .service(let s)? = objects[ObjectKey(.service, namespace: namespace, name: name)] { return s }
        return nil
    }

    public func endpoints(of service: ObjectKey) -> ServiceEndpoints? { serviceEndpoints[service] }

    /// Objects of a kind, optionally in one namespace, sorted by key.
    public func list(_ kind: ObjectKind, namespace: String? = nil) -> [RegistryObject] {
        objects.lazy.filter { $0.key.kind == kind && (namespace == nil || $0.key.namespace == namespace) }
            .sorted { $0.key < $1.key }.map(\.value)
    }

    public var services: [Service] {
        list(.service).compactMap { if case .service(let s) = $0 { s } else { nil } }
    }

    public var pods: [Pod] {
        list(.pod).compactMap { if case .pod(let p) = $0 { p } else { nil } }
    }

    /// What a namespace holds, in the order to delete it: dependents first (pods before the
    /// services they back), as a delete of a manifest goes.
    func contents(ofNamespace namespace: String) -> [ObjectKey] {
        objects.keys.filter { $0.kind.isNamespaced && $0.namespace == namespace }.sorted { ($0.kind, $0) > ($1.kind, $1) }
    }

    public func count(of kind: ObjectKind) -> Int { objects.keys.lazy.filter { $0.kind == kind }.count }
}

/// One change, as a watcher sees it.
public struct WatchEvent: Sendable {
    public enum Change: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED" }

    public var resourceVersion: UInt64
    public var change: Change
    /// The object after the change; for a deletion, its last state.
    public var object: RegistryObject
    /// The object before the change (nil when it was added): a filtered watch tells from it
    /// whether the object entered or left what it watches.
    public var previous: RegistryObject?
    /// Services whose derived endpoints changed with this event (their new value is in the
    /// snapshot at `resourceVersion`, or absent when the service has none any more).
    public var endpointsChanged: [ObjectKey]
    /// When the change was committed (monotonic nanoseconds, `DispatchTime.now().uptimeNanoseconds`):
    /// the start of DNS programming latency.
    public var committedAt: UInt64 = DispatchTime.now().uptimeNanoseconds
    /// The registry just after the change (after its batch, for a batch), on the events given
    /// to watchers as they happen; nil on those replayed from the history (which does not keep
    /// every version alive). A watcher that falls behind reads each change's state from here,
    /// not the registry's state by the time it catches up.
    public var snapshot: RegistrySnapshot? = nil

    public init(resourceVersion: UInt64, change: Change, object: RegistryObject, previous: RegistryObject? = nil,
                endpointsChanged: [ObjectKey]) {
        self.resourceVersion = resourceVersion
        self.change = change
        self.object = object
        self.previous = previous
        self.endpointsChanged = endpointsChanged
    }
}
