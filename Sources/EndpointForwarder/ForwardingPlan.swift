public import DispatchSockets
public import NetAddress
public import ServiceRegistry

/// Where traffic may arrive for a service port: an address, a port and a protocol.
public struct Frontend: Hashable, Sendable, CustomStringConvertible {
    public var address: SocketAddress
    public var `protocol`: TransportProtocol

    public init(address: SocketAddress, protocol: TransportProtocol) {
        self.address = address
        self.protocol = `protocol`
    }

    public var description: String { "\(address)/\(self.protocol.rawValue.lowercased())" }
}

/// One endpoint a frontend may send to.
public struct Backend: Hashable, Sendable, CustomStringConvertible {
    public var address: SocketAddress
    public var nodeName: String
    public var isReady: Bool
    public var isServing: Bool
    public var isTerminating: Bool

    public init(address: SocketAddress, nodeName: String = "", isReady: Bool = true, isServing: Bool = true, isTerminating: Bool = false) {
        self.address = address
        self.nodeName = nodeName
        self.isReady = isReady
        self.isServing = isServing
        self.isTerminating = isTerminating
    }

    public var description: String { address.description }
}

/// What one frontend forwards to, and how it chooses.
public struct FrontendPlan: Hashable, Sendable {
    public var service: ObjectKey
    public var portName: String
    /// The endpoints in the order the registry gives them (choice shuffles them).
    public var backends: [Backend]
    /// `sessionAffinity: ClientIP` and its timeout in seconds.
    public var affinityTimeout: Int?
    /// Traffic policy `Local` for this kind of frontend: endpoints on this node first.
    public var preferLocal: Bool

    public init(service: ObjectKey, portName: String, backends: [Backend], affinityTimeout: Int? = nil, preferLocal: Bool = false) {
        self.service = service
        self.portName = portName
        self.backends = backends
        self.affinityTimeout = affinityTimeout
        self.preferLocal = preferLocal
    }

    /// The backends traffic may go to: ready ones; only when none is ready, serving ones that
    /// are terminating (as Kubernetes does); with a Local policy, those on `node` when there are
    /// any.
    public func eligible(node: String) -> [Backend] {
        var list = backends.filter(\.isReady)
        if list.isEmpty { list = backends.filter { $0.isServing && $0.isTerminating } }
        if preferLocal, !node.isEmpty {
            let local = list.filter { $0.nodeName == node }
            if !local.isEmpty { list = local }
        }
        return list
    }
}

/// The frontends a registry snapshot asks for.
public struct ForwardingPlan: Sendable {
    public var frontends: [Frontend: FrontendPlan]
    /// The addresses node ports listen on (given, or the Node's).
    public var nodeAddresses: [IPAddress]

    /// For every service with endpoints' worth of ports: its ClusterIPs at each port, its node
    /// ports on every node address, its load-balancer and external IPs at each port. Headless
    /// and ExternalName services have no frontends. SCTP is not forwarded.
    /// With no `nodeAddresses`, node ports listen on the addresses of the registry's Node named
    /// `nodeName` (its InternalIP and ExternalIP).
    public init(snapshot: RegistrySnapshot, nodeAddresses: [IPAddress], nodeName: String = "") {
        var frontends: [Frontend: FrontendPlan] = [:]
        var nodeAddresses = nodeAddresses
        if nodeAddresses.isEmpty, !nodeName.isEmpty, case .node(let node)? = snapshot.get(ObjectKey(.node, name: nodeName)) {
            nodeAddresses = node.addresses.filter { $0.type == "InternalIP" || $0.type == "ExternalIP" }.compactMap { IPAddress($0.address) }
        }
        for service in snapshot.services {
            let spec = service.spec
            guard !spec.isHeadless, spec.type != .externalName else { continue }
            let endpoints = snapshot.endpoints(of: service.key)?.endpoints ?? []
            let clusterIPs = (spec.clusterIPs.isEmpty ? [spec.clusterIP] : spec.clusterIPs).compactMap { IPAddress($0) }
            let external = (service.status.loadBalancerIngress + spec.externalIPs + (spec.loadBalancerIP.isEmpty ? [] : [spec.loadBalancerIP]))
                .compactMap { IPAddress($0) }
            for port in spec.ports where port.protocol != .sctp {
                var backends: [Backend] = []
                for endpoint in endpoints {
                    guard let resolved = endpoint.ports.first(where: { $0.name == port.name && $0.protocol == port.protocol }) else { continue }
                    for address in endpoint.addresses {
                        guard let number = UInt16(exactly: resolved.port) else { continue }
                        backends.append(Backend(address: SocketAddress(address: address, port: number), nodeName: endpoint.nodeName,
                                                isReady: endpoint.isReady, isServing: endpoint.isServing,
                                                isTerminating: endpoint.isTerminating))
                    }
                }
                let affinity = spec.sessionAffinity == .clientIP ? (spec.sessionAffinityTimeoutSeconds ?? 10800) : nil
                func add(_ address: IPAddress, _ number: Int, external: Bool) {
                    guard let number = UInt16(exactly: number), number > 0 else { return }
                    // A backend of the other family cannot be reached from this frontend's socket
                    // family only in the sense of address choice: keep the ones of the same family.
                    let sameFamily = backends.filter { $0.address.address.isIPv4 == address.isIPv4 }
                    let policy = external ? spec.externalTrafficPolicy : spec.internalTrafficPolicy
                    frontends[Frontend(address: SocketAddress(address: address, port: number), protocol: port.protocol)] =
                        FrontendPlan(service: service.key, portName: port.name, backends: sameFamily.isEmpty ? backends : sameFamily,
                                     affinityTimeout: affinity, preferLocal: policy == .local)
                }
                for ip in clusterIPs { add(ip, port.port, external: false) }
                for ip in external { add(ip, port.port, external: true) }
                if (spec.type == .nodePort || spec.type == .loadBalancer) && port.nodePort > 0 {
                    for ip in nodeAddresses { add(ip, port.nodePort, external: true) }
                }
            }
        }
        self.frontends = frontends
        self.nodeAddresses = nodeAddresses
    }
}
