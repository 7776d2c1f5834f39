/// Writer-side indexes so that a change touches only what it can affect: the pods of a
/// namespace, the services with a selector in a namespace, the slices of a service.
struct Indexes: Sendable {
    var pods: [String: Set<ObjectKey>] = [:]
    var selectorServices: [String: Set<ObjectKey>] = [:]
    var slices: [ObjectKey: Set<ObjectKey>] = [:]

    mutating func add(_ object: RegistryObject) { update(object, insert: true) }
    mutating func remove(_ object: RegistryObject) { update(object, insert: false) }

    private mutating func update(_ object: RegistryObject, insert: Bool) {
        let key = object.key
        let namespace = key.namespace
        switch object {
        case .pod:
            if insert { pods[namespace, default: []].insert(key) } else { pods[namespace]?.remove(key) }
        case .service(let s) where !(s.spec.selector ?? [:]).isEmpty:
            if insert { selectorServices[namespace, default: []].insert(key) } else { selectorServices[namespace]?.remove(key) }
        case .endpointSlice(let slice):
            guard let name = slice.serviceName else { return }
            let service = ObjectKey(.service, namespace: namespace, name: name)
            if insert { slices[service, default: []].insert(key) } else { slices[service]?.remove(key) }
        default:
            break
        }
    }
}
