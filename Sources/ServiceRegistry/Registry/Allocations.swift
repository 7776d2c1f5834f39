import NetAddress

/// Every allocator of a registry. A value type: a change works on a copy and is committed
/// only when all of it succeeded, so a failed apply leaves nothing half-allocated.
struct Allocations: Sendable, Equatable {
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
            // Everything adopting it reserved (`AllocationClaim.claims`): a value written into
            // the shared store by other hands may name its address in `clusterIP` alone.
            for ip in ([service.spec.clusterIP] + service.spec.clusterIPs).compactMap(IPAddress.init) {
                for i in serviceIPs.indices { serviceIPs[i].release(ip) }
            }
            for port in service.spec.ports where port.nodePort != 0 { nodePorts.release(port.nodePort) }
            for ip in service.status.loadBalancerIngress.compactMap(IPAddress.init) {
                for i in loadBalancer.indices { loadBalancer[i].release(ip) }
            }
        case .pod(let pod):
            guard !pod.spec.hostNetwork, var allocators = podIPs[pod.spec.nodeName] else { return }
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

    /// Marks what `claim` names as used, whatever holds it (a claim seen in the shared store,
    /// or one a write of this replica has in flight).
    mutating func reserve(_ claim: AllocationClaim) {
        switch claim {
        case .clusterIP(let text):
            guard let ip = IPAddress(text) else { return }
            for i in serviceIPs.indices where serviceIPs[i].prefix.contains(ip) { try? serviceIPs[i].allocate(ip) }
        case .nodePort(let port):
            try? nodePorts.allocate(port)
        case .loadBalancerIP(let text):
            guard let ip = IPAddress(text) else { return }
            for i in loadBalancer.indices where loadBalancer[i].prefix.contains(ip) { try? loadBalancer[i].allocate(ip) }
        case .podIP(let text):
            guard let ip = IPAddress(text) else { return }
            for (node, var allocators) in podIPs where allocators.contains(where: { $0.prefix.contains(ip) }) {
                Self.markUsed(ip, in: &allocators)
                podIPs[node] = allocators
            }
        }
    }

    /// Marks everything `object` holds as used, without refusing anything: the object is
    /// already in the shared store, whose word is final.
    mutating func adopt(_ object: RegistryObject, snapshot: RegistrySnapshot) {
        switch object {
        case .service:
            for claim in AllocationClaim.claims(of: object) { reserve(claim) }
        case .pod(let pod):
            guard !pod.spec.hostNetwork, var allocators = podIPs[pod.spec.nodeName] else { return }
            for ip in pod.status.podIPs.compactMap(IPAddress.init) { Self.markUsed(ip, in: &allocators) }
            podIPs[pod.spec.nodeName] = allocators
        case .node(let node):
            podIPs[node.metadata.name] = Self.podAllocators(of: node, snapshot: snapshot)
        default:
            break
        }
    }

    /// A node's pod-CIDR allocators with the addresses of the pods already on it marked used.
    static func podAllocators(of node: Node, snapshot: RegistrySnapshot) -> [IPAllocator] {
        var allocators = node.podCIDRs.compactMap { try? IPPrefix(parsing: $0) }.map { IPAllocator(prefix: $0, reserveFirstHost: true) }
        // Pods already on this node keep their addresses (a node is applied rarely: a scan is fine).
        for case .pod(let pod) in snapshot.objects.values where pod.spec.nodeName == node.metadata.name && !pod.spec.hostNetwork {
            for ip in pod.status.podIPs.compactMap(IPAddress.init) { markUsed(ip, in: &allocators) }
        }
        return allocators
    }

    /// Takes where `other` would hand out the next address and port from, so that an address
    /// given up is not handed out again at once.
    mutating func takeCursors(from other: Allocations) {
        for i in serviceIPs.indices where i < other.serviceIPs.count { serviceIPs[i].cursor = other.serviceIPs[i].cursor }
        for i in loadBalancer.indices where i < other.loadBalancer.count { loadBalancer[i].cursor = other.loadBalancer[i].cursor }
        nodePorts.cursor = other.nodePorts.cursor
        for (node, theirs) in other.podIPs {
            guard var mine = podIPs[node] else { continue }
            for i in mine.indices where i < theirs.count { mine[i].cursor = theirs[i].cursor }
            podIPs[node] = mine
        }
    }

    /// Moves every cursor to a random place: replicas that contend for the same next address
    /// spread out instead of colliding again and again.
    mutating func scatterCursors() {
        for i in serviceIPs.indices { serviceIPs[i].scatterCursor() }
        for i in loadBalancer.indices { loadBalancer[i].scatterCursor() }
        nodePorts.cursor = Int.random(in: nodePorts.range)
        for (node, var allocators) in podIPs {
            for i in allocators.indices { allocators[i].scatterCursor() }
            podIPs[node] = allocators
        }
    }

    /// Marks `ip` used in whichever of `allocators` holds it (already used is fine: it is).
    static func markUsed(_ ip: IPAddress, in allocators: inout [IPAllocator]) {
        for i in allocators.indices where allocators[i].prefix.contains(ip) { try? allocators[i].allocate(ip) }
    }
}

extension IPAllocator {
    /// Moves where the next address is handed out from to a random place in the range.
    mutating func scatterCursor() { cursor = UInt64.random(in: 1..<max(2, min(capacity, 1 << 32))) }
}
