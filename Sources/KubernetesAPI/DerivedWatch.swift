import ServiceRegistry

/// What a watch of Endpoints or EndpointSlices sees of the objects the registry derives from
/// services' selectors (`RegistrySnapshot.derivedObjects`): there is no stored object to
/// follow, so each registry change names the services whose endpoints it changed, and the
/// watch compares their derived objects now with the ones it last sent, as a client-go
/// informer of a cluster would see the endpoints controller's writes.
struct DerivedWatch {
    let filter: WatchFilter
    /// The derived objects the client is known to have, by service: those of the snapshot the
    /// watch started from, then the ones sent.
    var known: [ObjectKey: [ObjectKey: RegistryObject]] = [:]
    /// Services already sent again for replayed events: the registry's present state is what
    /// is sent, so once is enough.
    var resent: Set<ObjectKey> = []

    init(filter: WatchFilter, snapshot: RegistrySnapshot) {
        self.filter = filter
        for object in snapshot.derivedObjects(filter.resource.kind, namespace: filter.namespace) where filter.matches(object) {
            known[Self.service(of: object), default: [:]][object.key] = object
        }
    }

    /// The service a derived object belongs to.
    static func service(of object: RegistryObject) -> ObjectKey {
        let name = object.kind == .endpointSlice ? object.metadata.labels["kubernetes.io/service-name"] ?? object.metadata.name
            : object.metadata.name
        return ObjectKey(.service, namespace: object.metadata.namespace, name: name)
    }

    /// The events for the derived objects `event` changed, read from `snapshot`: the event's
    /// own (as the registry was just after it), or for a replayed event the registry now.
    /// A `replayed` event comes from before the snapshot the watch started from: the client's
    /// objects for its services are unknown, so they are all sent again, and the ones its
    /// service no longer has are deleted by the names the registry gives them.
    mutating func events(for event: WatchEvent, snapshot: RegistrySnapshot, replayed: Bool) -> [(type: String, object: RegistryObject)] {
        var out: [(type: String, object: RegistryObject)] = []
        // A service's own change may change its derived objects without changing its endpoints
        // (created without pods, its selector removed, deleted).
        var services = event.endpointsChanged
        let selects = [event.object, event.previous].contains { object in
            if case .service(let service)? = object { return !(service.spec.selector ?? [:]).isEmpty }
            return false
        }
        if selects, !services.contains(event.object.key) { services.append(event.object.key) }
        for service in services where filter.namespace == nil || service.namespace == filter.namespace {
            if replayed, !resent.insert(service).inserted { continue }
            var now: [ObjectKey: RegistryObject] = [:]
            for object in snapshot.derivedObjects(filter.resource.kind, ofService: service) where filter.matches(object) {
                now[object.key] = object
            }
            var before = known[service] ?? [:]
            if replayed {
                for object in Self.guessed(filter.resource.kind, of: service) where before[object.key] == nil {
                    before[object.key] = object
                }
            }
            for key in now.keys.sorted() {
                // The version a derived object carries is its newest source's: a pod that
                // joined nothing still moves it, and that alone is no change.
                guard replayed || before[key].map({ Self.stamped($0, 0) }) != Self.stamped(now[key]!, 0) else { continue }
                out.append((before[key] == nil ? "ADDED" : "MODIFIED", Self.stamped(now[key]!, event.resourceVersion)))
            }
            for key in before.keys.sorted() where now[key] == nil {
                out.append(("DELETED", Self.stamped(before[key]!, event.resourceVersion)))
            }
            known[service] = now.isEmpty ? nil : now
        }
        return out
    }

    static func stamped(_ object: RegistryObject, _ version: UInt64) -> RegistryObject {
        var object = object
        object.metadata.resourceVersion = version
        return object
    }

    /// The derived objects a service may have had, by name only (for a client that resumed
    /// from before the watch's snapshot and may still hold them).
    static func guessed(_ kind: ObjectKind, of service: ObjectKey) -> [RegistryObject] {
        let meta = { (name: String) in ObjectMeta(name: name, namespace: service.namespace) }
        switch kind {
        case .endpoints: return [.endpoints(Endpoints(metadata: meta(service.name)))]
        case .endpointSlice:
            return [EndpointSlice.AddressType.ipv4, .ipv6].map { family in
                var metadata = meta("\(service.name)-\(family.rawValue.lowercased())")
                metadata.labels = ["kubernetes.io/service-name": service.name]
                return .endpointSlice(EndpointSlice(metadata: metadata, addressType: family))
            }
        default: return []
        }
    }
}
