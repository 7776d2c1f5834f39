import NetAddress

/// Every allocator of a registry. A value type: a change works on a copy and is committed
/// only when all of it succeeded, so a failed apply leaves nothing half-allocated.
struct Allocations: Sendable {
    var serviceIPs: [IPAllocator]
    var nodePorts: PortAllocator
    var loadBalancer: [IPAllocator]
    /// Per node: one allocator per pod CIDR (kubenet style: the first host is the bridge's).
    var podIPs: [String: [IPAllocator]] = [:]

    init(_ configuration: RegistryConfiguration) {
        serviceIPs = configuration.serviceCIDRs.map { IPAllocator(prefix: $0) }
        nodePorts = PortAllocator(range: configuration.nodePortRange)
        loadBalancer = configuration.loadBalancerPool.map { IPAllocator(prefix: $0) }
    }

    func serviceAllocatorIndex(for family: IPFamily) -> Int? {
        serviceIPs.firstIndex { $0.prefix.network.isIPv4 == (family == .ipv4) }
    }

    var primaryFamily: IPFamily { serviceIPs.first?.prefix.network.isIPv4 == false ? .ipv6 : .ipv4 }

    /// Releases everything `object` holds.
    mutating func release(_ object: RegistryObject) {
        switch object {
        case .service(let service):
            for ip in service.spec.clusterIPs.compactMap(IPAddress.init) {
                for i in serviceIPs.indices { serviceIPs[i].release(ip) }
            }
            for port in service.spec.ports where port.nodePort != 0 { nodePorts.release(port.nodePort) }
            for ip in service.status.loadBalancerIngress.compactMap(IPAddress.init) {
                for i in loadBalancer.indices { loadBalancer[i].release(ip) }
            }
        case .pod(let pod):
            guard var allocators = podIPs[pod.spec.nodeName] else { return }
            for ip in pod.status.podIPs.compactMap(IPAddress.init) {
                for i in allocators.indices { allocators[i].release(ip) }
            }
            podIPs[pod.spec.nodeName] = allocators
        case .node(let node):
            podIPs.removeValue(forKey: node.metadata.name)
        default:
            break
        }
    }
}
