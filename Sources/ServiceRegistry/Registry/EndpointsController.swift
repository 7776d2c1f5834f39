import NetAddress

/// Derives a service's endpoints: from the pods its selector matches, or, for a service without
/// a selector, from the EndpointSlices labelled with its name (else its legacy Endpoints).
enum EndpointsController {
    static func selects(_ selector: [String: String], _ labels: [String: String]) -> Bool {
        !selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }
    }

    /// Families of the service's cluster IPs; an endpoint keeps only addresses of these families.
    static func families(of service: Service) -> Set<Bool> {
        let families = service.spec.ipFamilies.map { $0 == .ipv4 }
        return families.isEmpty ? [true, false] : Set(families)
    }

    static func fromPods(_ service: Service, pods: some Sequence<Pod>) -> [ResolvedEndpoint] {
        guard let selector = service.spec.selector, !selector.isEmpty else { return [] }
        let families = families(of: service)
        var endpoints: [ResolvedEndpoint] = []
        for pod in pods where selects(selector, pod.metadata.labels) {
            let addresses = pod.status.podIPs.compactMap(IPAddress.init).filter { families.contains($0.isIPv4) }
            guard !addresses.isEmpty else { continue }
            var ports: [ResolvedPort] = []
            for servicePort in service.spec.ports {
                switch servicePort.effectiveTargetPort {
                case .int(let number):
                    ports.append(ResolvedPort(name: servicePort.name, port: number, protocol: servicePort.protocol))
                case .string(let name):
                    // A named port is looked up in the pod's containers; a pod without it serves
                    // the other ports only.
                    let match = pod.spec.containers.lazy.flatMap(\.ports)
                        .first { $0.name == name && $0.protocol == servicePort.protocol }
                    if let match {
                        ports.append(ResolvedPort(name: servicePort.name, port: match.containerPort, protocol: servicePort.protocol))
                    }
                }
            }
            let ready = pod.isReady || service.spec.publishNotReadyAddresses
            let hostname = pod.spec.subdomain == service.metadata.name ? pod.spec.hostname : ""
            endpoints.append(ResolvedEndpoint(
                addresses: addresses, hostname: hostname, nodeName: pod.spec.nodeName,
                isReady: ready, isServing: ready, isTerminating: false,
                targetRef: ObjectReference(kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name),
                ports: ports))
        }
        return endpoints.sorted { $0.addresses.lexicographicallyPrecedes($1.addresses) }
    }

    static func fromSlices(_ service: Service, slices: some Sequence<EndpointSlice>) -> [ResolvedEndpoint] {
        var endpoints: [ResolvedEndpoint] = []
        for slice in slices where slice.addressType != .fqdn {
            let ports = slice.ports.map { ResolvedPort(name: $0.name, port: $0.port, protocol: $0.protocol) }
            for endpoint in slice.endpoints {
                // Unknown conditions count as ready and serving, not terminating (discovery/v1).
                let ready = endpoint.conditions.ready ?? true
                endpoints.append(ResolvedEndpoint(
                    addresses: endpoint.addresses.compactMap(IPAddress.init), hostname: endpoint.hostname,
                    nodeName: endpoint.nodeName, zone: endpoint.zone,
                    isReady: ready || service.spec.publishNotReadyAddresses,
                    isServing: endpoint.conditions.serving ?? ready,
                    isTerminating: endpoint.conditions.terminating ?? false,
                    targetRef: endpoint.targetRef, ports: ports))
            }
        }
        return endpoints.sorted { $0.addresses.lexicographicallyPrecedes($1.addresses) }
    }

    static func fromEndpoints(_ service: Service, endpoints legacy: Endpoints) -> [ResolvedEndpoint] {
        var endpoints: [ResolvedEndpoint] = []
        for subset in legacy.subsets {
            let ports = subset.ports.map { ResolvedPort(name: $0.name, port: $0.port, protocol: $0.protocol) }
            for (list, ready) in [(subset.addresses, true), (subset.notReadyAddresses, false)] {
                for address in list {
                    guard let ip = IPAddress(address.ip) else { continue }
                    let isReady = ready || service.spec.publishNotReadyAddresses
                    endpoints.append(ResolvedEndpoint(
                        addresses: [ip], hostname: address.hostname, nodeName: address.nodeName,
                        isReady: isReady, isServing: isReady, targetRef: address.targetRef, ports: ports))
                }
            }
        }
        return endpoints.sorted { $0.addresses.lexicographicallyPrecedes($1.addresses) }
    }
}
