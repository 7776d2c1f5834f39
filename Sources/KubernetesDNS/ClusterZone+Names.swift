import DNSWire
import NetAddress
import ServiceRegistry

/// The cluster zone's name grammar (the Kubernetes DNS specification): which node a name is.
extension ClusterZone {
    /// The node of a name: the apex's names, a namespace's, a service's (derived from its
    /// source), or a pod name synthesised at lookup.
    func node(for name: DomainName) -> Node? {
        if let node = base[name] { return node }
        let svcDepth = name.labelCount - svcZone.labelCount
        if svcDepth >= 1, name.isSubdomain(of: svcZone) {
            let labels = name.labels
            let namespace = String(decoding: labels[svcDepth - 1], as: UTF8.self).lowercased()
            if svcDepth == 1 { return (namespaceUses[namespace] ?? 0) > 0 ? Node() : nil }
            let service = String(decoding: labels[svcDepth - 2], as: UTF8.self).lowercased()
            guard let source = sources[ObjectKey(.service, namespace: namespace, name: service)] else { return nil }
            return derived.fragment(of: source, records: true) { fragment(of: source) }.nodes[name]
        }
        guard configuration.pods != .disabled, name.isSubdomain(of: podZone) else { return nil }
        let podDepth = name.labelCount - podZone.labelCount
        guard podDepth == 1 || podDepth == 2 else { return nil }
        let labels = name.labels
        let namespace = String(decoding: labels[podDepth - 1], as: UTF8.self).lowercased()
        if podDepth == 1 { return (namespaceUses[namespace] ?? 0) > 0 ? Node() : nil }
        // a-b-c-d.<ns>.pod.<zone>
        guard let ip = IPAddress.fromDashed(String(decoding: labels[0], as: UTF8.self)) else { return nil }
        switch configuration.pods {
        case .verified:
            guard pods.holds(ip, namespace: namespace) else { return nil }
        case .insecure:
            break
        case .disabled:
            return nil
        }
        var node = Node()
        let record = ResourceRecord(name: name, ttl: configuration.ttl, data: addressData(ip))
        node.records.append(record)
        return node
    }
}
