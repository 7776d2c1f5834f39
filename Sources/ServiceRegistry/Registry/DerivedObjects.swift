/// The Endpoints and EndpointSlices that Kubernetes' controllers would write for a service
/// whose endpoints come from a selector. The registry derives those endpoints itself (DNS and
/// the forwarder read them as `ServiceEndpoints`); these are the same endpoints as objects, so
/// that the API lists them as a cluster would.
extension RegistrySnapshot {
    public static let managedBy = "clusterdns"

    /// The derived objects of `kind` (Endpoints or EndpointSlice), optionally in one namespace,
    /// sorted by key.
    public func derivedObjects(_ kind: ObjectKind, namespace: String? = nil) -> [RegistryObject] {
        guard kind == .endpoints || kind == .endpointSlice else { return [] }
        return list(.service, namespace: namespace)
            .flatMap { derivedObjects(kind, ofService: $0.key) }
            .sorted { $0.key < $1.key }
    }

    /// The derived objects of `kind` of one service: none unless it selects pods; when no pod
    /// is selected, an Endpoints without subsets and an empty slice per IP family of the
    /// service, as the controllers keep them.
    public func derivedObjects(_ kind: ObjectKind, ofService key: ObjectKey) -> [RegistryObject] {
        guard kind == .endpoints || kind == .endpointSlice, case .service(let service)? = objects[key],
              service.spec.type != .externalName, let selector = service.spec.selector, !selector.isEmpty else { return [] }
        if let endpoints = serviceEndpoints[key] { return derivedObjects(kind, of: endpoints) }
        var metadata = ObjectMeta(name: service.metadata.name, namespace: service.metadata.namespace, labels: service.metadata.labels,
                                  resourceVersion: service.metadata.resourceVersion)
        metadata.creationTimestamp = service.metadata.creationTimestamp
        if kind == .endpoints { return [.endpoints(Endpoints(metadata: metadata))] }
        metadata.labels["kubernetes.io/service-name"] = service.metadata.name
        metadata.labels["endpointslice.kubernetes.io/managed-by"] = Self.managedBy
        let families = service.spec.ipFamilies.isEmpty ? [IPFamily.ipv4] : service.spec.ipFamilies
        return families.map { family in
            var slice = metadata
            slice.name = "\(service.metadata.name)-\(family.rawValue.lowercased())"
            return .endpointSlice(EndpointSlice(metadata: slice, addressType: family == .ipv4 ? .ipv4 : .ipv6))
        }
    }

    /// Stored objects of `kind` and the derived ones, a derived object taking the place of a
    /// stored one of the same name (as the controller's write would).
    public func listWithDerived(_ kind: ObjectKind, namespace: String? = nil) -> [RegistryObject] {
        let derived = derivedObjects(kind, namespace: namespace)
        guard !derived.isEmpty else { return list(kind, namespace: namespace) }
        let names = Set(derived.map(\.key))
        return (list(kind, namespace: namespace).filter { !names.contains($0.key) } + derived).sorted { $0.key < $1.key }
    }

    public func getWithDerived(_ key: ObjectKey) -> RegistryObject? {
        // Derived objects are named after their service: `NAME` or `NAME-ipv4[-N]`/`NAME-ipv6[-N]`.
        var candidates = [key.name]
        if key.kind == .endpointSlice {
            let parts = key.name.split(separator: "-")
            for cut in parts.indices.dropFirst() where ["ipv4", "ipv6"].contains(parts[cut]) {
                candidates.append(parts[..<cut].joined(separator: "-"))
            }
        }
        if key.kind == .endpoints || key.kind == .endpointSlice {
            for name in candidates {
                let service = ObjectKey(.service, namespace: key.namespace, name: name)
                if let object = derivedObjects(key.kind, ofService: service).first(where: { $0.key == key }) { return object }
            }
        }
        return get(key)
    }

    func derivedObjects(_ kind: ObjectKind, of endpoints: ServiceEndpoints) -> [RegistryObject] {
        guard case .pods(let serviceObject, let pods) = endpoints.source else { return [] }
        let service = serviceObject.asService
        let resolved = endpoints.endpoints
        // The version of the newest object they are derived from.
        let version = ([serviceObject] + pods).map(\.metadata.resourceVersion).max() ?? 0
        func metadata(_ name: String, labels: [String: String]) -> ObjectMeta {
            var meta = ObjectMeta(name: name, namespace: service.metadata.namespace, labels: labels, resourceVersion: version)
            meta.creationTimestamp = service.metadata.creationTimestamp
            return meta
        }
        func ports(_ endpoint: ResolvedEndpoint) -> [EndpointPort] {
            endpoint.ports.map { EndpointPort(name: $0.name, port: $0.port, protocol: $0.protocol) }
        }
        if kind == .endpoints {
            // One subset per set of ports, as the endpoints controller packs them.
            var subsets: [Endpoints.Subset] = []
            for endpoint in resolved {
                let address = Endpoints.Address(ip: endpoint.addresses.first?.description ?? "", hostname: endpoint.hostname,
                                                nodeName: endpoint.nodeName, targetRef: endpoint.targetRef)
                let index = subsets.firstIndex { $0.ports == ports(endpoint) } ?? {
                    subsets.append(Endpoints.Subset(ports: ports(endpoint)))
                    return subsets.count - 1
                }()
                if endpoint.isReady { subsets[index].addresses.append(address) } else { subsets[index].notReadyAddresses.append(address) }
            }
            return [.endpoints(Endpoints(metadata: metadata(service.metadata.name, labels: service.metadata.labels), subsets: subsets))]
        }
        // One slice per address family and set of ports.
        var groups: [(family: EndpointSlice.AddressType, ports: [EndpointPort], endpoints: [EndpointSlice.Endpoint])] = []
        for endpoint in resolved {
            for family in [EndpointSlice.AddressType.ipv4, .ipv6] {
                let addresses = endpoint.addresses.filter { $0.isIPv4 == (family == .ipv4) }.map(\.description)
                guard !addresses.isEmpty else { continue }
                let sliceEndpoint = EndpointSlice.Endpoint(
                    addresses: addresses,
                    conditions: EndpointSlice.Conditions(ready: endpoint.isReady, serving: endpoint.isServing, terminating: endpoint.isTerminating),
                    hostname: endpoint.hostname, nodeName: endpoint.nodeName, zone: endpoint.zone, targetRef: endpoint.targetRef)
                if let index = groups.firstIndex(where: { $0.family == family && $0.ports == ports(endpoint) }) {
                    groups[index].endpoints.append(sliceEndpoint)
                } else {
                    groups.append((family, ports(endpoint), [sliceEndpoint]))
                }
            }
        }
        var labels = service.metadata.labels
        labels["kubernetes.io/service-name"] = service.metadata.name
        labels["endpointslice.kubernetes.io/managed-by"] = Self.managedBy
        var seen: [EndpointSlice.AddressType: Int] = [:]
        return groups.map { group in
            let count = seen[group.family, default: 0]
            seen[group.family] = count + 1
            let name = "\(service.metadata.name)-\(group.family.rawValue.lowercased())" + (count > 0 ? "-\(count)" : "")
            return .endpointSlice(EndpointSlice(metadata: metadata(name, labels: labels), addressType: group.family,
                                                endpoints: group.endpoints, ports: group.ports))
        }
    }
}
