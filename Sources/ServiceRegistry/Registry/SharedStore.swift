public import NetAddress

/// A store that several registries share (etcd): each replica writes through it with
/// transactions that compare what they read, and follows it to see everyone's writes. The
/// registry keeps no second truth: what it serves is what it has seen the store hold.
public protocol SharedRegistryStore: Sendable {
    /// What the store is, for messages ("etcd at http://10.0.0.1:2379").
    var name: String { get }
    /// Every object (of `kinds`, or of every kind), read at one revision (values that cannot be
    /// read are skipped and reported), and the nodes whose lease (heartbeat) is current at that
    /// revision (when nodes are read): `revision`, or the latest when 0 (`.expired` when the
    /// store no longer keeps it, `.futureRevision` when it has not reached it).
    func load(at revision: Int64, kinds: Set<ObjectKind>?) async throws(StoreError) -> StoreListing
    /// `load(at:kinds:)`, its objects handed to `page` as they are read (a page at a time, each
    /// kind's in order, the kinds' pages perhaps interleaved, with the list's revision) instead
    /// of kept in the listing, whose `objects` is then empty: the reader works on one page
    /// while the store sends the next.
    func load(at revision: Int64, kinds: Set<ObjectKind>?,
              page: @escaping @Sendable (_ objects: [RegistryObject], _ revision: Int64) -> Void) async throws(StoreError) -> StoreListing
    /// Makes `write` in one transaction; returns the store's revision after it.
    func write(_ write: StoreWrite) async throws(StoreError) -> Int64
    /// Every change after `revision`, in order, for as long as the stream is read; after a
    /// compaction, one relisted batch holding the whole state at the list's revision (every
    /// object, every held lease), from which the reader takes the difference. Trouble reaching the store goes to `onError`, and
    /// the stream resumes where it was.
    func follow(from revision: Int64,
                onError: @escaping @Sendable (StoreError) -> Void) -> AsyncThrowingStream<StoreBatch, any Error>
    /// Every allocation claim the store holds, read at one revision.
    func heldClaims() async throws(StoreError) -> [HeldClaim]
    /// Releases `held` only if neither it nor the object `owner` has been written since they
    /// were read (`ownerRevision` 0: the owner did not exist; a nil owner is not compared);
    /// whether it did.
    func release(_ held: HeldClaim, owner: ObjectKey?, ownerRevision: Int64) async throws(StoreError) -> Bool
    /// Claims `claim` for `owner` only if nobody holds it and `owner` is still at
    /// `ownerRevision`; whether it did.
    func restore(_ claim: AllocationClaim, for owner: ObjectKey, at ownerRevision: Int64) async throws(StoreError) -> Bool
}

extension SharedRegistryStore {
    /// Every object at the latest revision.
    public func load() async throws(StoreError) -> StoreListing { try await load(at: 0, kinds: nil) }

    /// The whole list as one page, for a store that reads it at once.
    public func load(at revision: Int64, kinds: Set<ObjectKind>?,
                     page: @escaping @Sendable (_ objects: [RegistryObject], _ revision: Int64) -> Void) async throws(StoreError) -> StoreListing {
        var listing = try await load(at: revision, kinds: kinds)
        page(listing.objects, listing.revision)
        listing.objects = []
        return listing
    }
}

/// An allocation as the store holds it: what, whose (the owner's key as the claim names it),
/// and the revision that last wrote the claim.
public struct HeldClaim: Hashable, Sendable, CustomStringConvertible {
    public var claim: AllocationClaim
    public var owner: String
    public var revision: Int64

    public init(claim: AllocationClaim, owner: String, revision: Int64) {
        self.claim = claim
        self.owner = owner
        self.revision = revision
    }

    public var description: String { "\(claim) (claimed for \(owner))" }
}

/// Something a replica claims in the shared store so that no other replica hands it out: a
/// ClusterIP, a node port, a load-balancer IP (kube-apiserver keeps `ranges/serviceips` and
/// `ranges/servicenodeports` for the same reason), a pod's address in its node's pod CIDR
/// (where the registry hands addresses out, and one replica refuses a second pod on one). A
/// claim names its owner.
public enum AllocationClaim: Hashable, Sendable, Comparable, CustomStringConvertible {
    case clusterIP(String)
    case nodePort(Int)
    case loadBalancerIP(String)
    case podIP(String)

    public var description: String {
        switch self {
        case .clusterIP(let ip): "ClusterIP \(ip)"
        case .nodePort(let port): "node port \(port)"
        case .loadBalancerIP(let ip): "load-balancer IP \(ip)"
        case .podIP(let ip): "pod IP \(ip)"
        }
    }

    /// Where the claim lives in a shared store, below the registry's prefix, as kube-apiserver
    /// keeps its ranges: `ranges/serviceips/10.96.0.10`, `ranges/servicenodeports/30080`,
    /// `ranges/loadbalancerips/IP`, `ranges/podips/IP`.
    public var storePath: String {
        switch self {
        case .clusterIP(let ip): "ranges/serviceips/\(ip)"
        case .nodePort(let port): "ranges/servicenodeports/\(port)"
        case .loadBalancerIP(let ip): "ranges/loadbalancerips/\(ip)"
        case .podIP(let ip): "ranges/podips/\(ip)"
        }
    }

    /// The claim a store path names (what `storePath` writes), or nil: the path is read back
    /// from the store, which anyone with access to it can write.
    public init?(storePath path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "ranges", !parts[2].isEmpty else { return nil }
        let value = String(parts[2])
        switch parts[1] {
        case "serviceips": self = .clusterIP(value)
        case "servicenodeports":
            guard value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber), let port = Int(value), (1...65535).contains(port) else { return nil }
            self = .nodePort(port)
        case "loadbalancerips": self = .loadBalancerIP(value)
        case "podips": self = .podIP(value)
        default: return nil
        }
    }

    /// Everything `object` holds that must be unique across the cluster. `podCIDRs` gives a
    /// node's pod CIDRs: a pod's addresses inside its node's are claimed, others (a host's
    /// network, addresses the registry does not hand out) are not.
    public static func claims(of object: RegistryObject?,
                              podCIDRs: (_ node: String) -> [IPPrefix] = { _ in [] }) -> Set<AllocationClaim> {
        if case .pod(let pod)? = object {
            guard !pod.spec.hostNetwork, !pod.spec.nodeName.isEmpty else { return [] }
            let prefixes = podCIDRs(pod.spec.nodeName)
            guard !prefixes.isEmpty else { return [] }
            var claims = Set<AllocationClaim>()
            for text in pod.status.podIPs {
                guard let ip = IPAddress(text), prefixes.contains(where: { $0.contains(ip) }) else { continue }
                claims.insert(.podIP(ip.description))
            }
            return claims
        }
        guard case .service(let service)? = object else { return [] }
        var claims = Set<AllocationClaim>()
        for ip in [service.spec.clusterIP] + service.spec.clusterIPs where ip != "None" && !ip.isEmpty { claims.insert(.clusterIP(ip)) }
        for port in service.spec.ports where port.nodePort != 0 { claims.insert(.nodePort(port.nodePort)) }
        for ip in service.status.loadBalancerIngress where !ip.isEmpty { claims.insert(.loadBalancerIP(ip)) }
        return claims
    }
}

/// One change to write: objects put (each only if it is still at the revision it was read at;
/// 0 for one that must not exist yet), objects deleted (likewise), allocations claimed (only if
/// nobody holds them) and released. All of it happens, or none.
public struct StoreWrite: Sendable {
    public var puts: [(object: RegistryObject, expected: Int64)] = []
    public var deletes: [(key: ObjectKey, expected: Int64)] = []
    public var claims: [AllocationClaim] = []
    public var releases: [AllocationClaim] = []

    public init() {}

    /// `object` replacing `previous` (nil: created), with the claims that change between them.
    public static func replacing(_ previous: RegistryObject?, with object: RegistryObject,
                                 podCIDRs: (_ node: String) -> [IPPrefix] = { _ in [] }) -> StoreWrite {
        var write = StoreWrite()
        write.puts = [(object, Int64(previous?.metadata.resourceVersion ?? 0))]
        let before = AllocationClaim.claims(of: previous, podCIDRs: podCIDRs)
        let after = AllocationClaim.claims(of: object, podCIDRs: podCIDRs)
        write.claims = after.subtracting(before).sorted()
        write.releases = before.subtracting(after).sorted()
        return write
    }

    /// `object` (as last read) deleted, with everything it claimed.
    public static func deleting(_ object: RegistryObject, podCIDRs: (_ node: String) -> [IPPrefix] = { _ in [] }) -> StoreWrite {
        var write = StoreWrite()
        write.deletes = [(object.key, Int64(object.metadata.resourceVersion))]
        write.releases = AllocationClaim.claims(of: object, podCIDRs: podCIDRs).sorted()
        return write
    }
}

/// Why the shared store did not make a write, or could not be read.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The object is not at the revision the write expected (0: it exists, or it does not).
    case conflict(ObjectKey, expected: Int64, actual: Int64)
    /// Another object holds the allocation.
    case taken(AllocationClaim, owner: String)
    /// The store cannot be reached, has no quorum, or refused the request.
    case unavailable(String)
    /// The store no longer keeps the revision asked for (it has compacted its history past it).
    case expired(revision: Int64)
    /// The store has not reached the revision asked for.
    case futureRevision(Int64)

    public var description: String {
        switch self {
        case .conflict(let key, let expected, let actual):
            expected == 0 ? "\(key) already exists" : actual == 0 ? "\(key) no longer exists"
                : "\(key) has been modified (revision \(actual), not \(expected))"
        case .taken(let claim, let owner): "\(claim) is already allocated to \(owner)"
        case .unavailable(let reason): reason
        case .expired(let revision): "revision \(revision) is no longer kept (the store has compacted its history past it)"
        case .futureRevision(let revision): "revision \(revision) is newer than the store's"
        }
    }
}

/// A change seen in the shared store: an object as it now is (its resourceVersion the revision
/// that wrote it), an object gone, or a node's lease (its heartbeat) appearing or lapsing.
public enum StoreChange: Sendable, Equatable {
    case put(RegistryObject)
    case delete(ObjectKey, revision: Int64)
    case nodeLease(node: String, held: Bool, revision: Int64)
}

/// What the store holds at one revision.
public struct StoreListing: Sendable {
    public var objects: [RegistryObject]
    public var revision: Int64
    /// Nodes whose lease is held (a node agent renews it; etcd drops it when the agent stops).
    public var leasedNodes: Set<String>

    public init(objects: [RegistryObject], revision: Int64, leasedNodes: Set<String> = []) {
        self.objects = objects
        self.revision = revision
        self.leasedNodes = leasedNodes
    }
}

/// The changes up to a revision of the store, in order.
public struct StoreBatch: Sendable {
    public var changes: [StoreChange]
    public var revision: Int64
    /// Made by listing again (after a compaction), not from the watch: the changes are the
    /// whole state, a put of every object and a lease of every node that holds one; what the
    /// reader holds beyond it is gone.
    public var relisted: Bool

    public init(changes: [StoreChange], revision: Int64, relisted: Bool) {
        self.changes = changes
        self.revision = revision
        self.relisted = relisted
    }

    /// The whole state a listing holds, as one relisted batch.
    public init(_ listing: StoreListing) {
        changes = listing.objects.map { .put($0) }
            + listing.leasedNodes.sorted().map { .nodeLease(node: $0, held: true, revision: listing.revision) }
        revision = listing.revision
        relisted = true
    }
}

/// How this replica's exchanges with the shared store are going, for metrics and /ready.
public struct SharedStoreStatus: Sendable, Equatable {
    /// Whether the last exchange (a write, the follow loop's list or watch) succeeded.
    public var isAvailable = false
    /// Writes refused because the store could not take them (each a 503 in the API).
    public var refusedWrites = 0
    /// Times the follow loop lost the store (it resumes by itself).
    public var interruptions = 0
    /// What went wrong last.
    public var lastProblem: String?

    public init() {}
}
