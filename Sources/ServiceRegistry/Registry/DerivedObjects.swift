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
        return serviceEndpoints.values
            .filter { namespace == nil || $0.service.namespace == namespace }
            .flatMap { derivedObjects(kind, of: $0) }
            .sorted { $0.key < $1.key }
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
                guard let endpoints = serviceEndpoints[ObjectKey(.service, namespace: key.namespace, name: name)] else { continue }
                if let object = derivedObjects(key.kind, of: endpoints).first(where: { $0.key == key }) { return object }
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
