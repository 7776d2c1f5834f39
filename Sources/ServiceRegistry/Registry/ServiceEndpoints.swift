public import NetAddress

/// A service port as resolved for one endpoint: the port number traffic goes to there.
public struct ResolvedPort: Hashable, Sendable {
    public var name: String
    public var port: Int
    public var `protocol`: TransportProtocol

    public init(name: String, port: Int, protocol: TransportProtocol) {
        self.name = name
        self.port = port
        self.protocol = `protocol`
    }
}

/// One endpoint of a service: what DNS and the forwarder need of it.
public struct ResolvedEndpoint: Hashable, Sendable {
    public var addresses: [IPAddress]
    /// Set from the pod's `hostname` when its `subdomain` is the service's name, or from the slice.
    public var hostname: String
    public var nodeName: String
    public var zone: String
    public var isReady: Bool
    public var isServing: Bool
    public var isTerminating: Bool
    public var targetRef: ObjectReference?
    public var ports: [ResolvedPort]

    public init(addresses: [IPAddress], hostname: String = "", nodeName: String = "", zone: String = "",
                isReady: Bool = true, isServing: Bool = true, isTerminating: Bool = false,
                targetRef: ObjectReference? = nil, ports: [ResolvedPort] = []) {
        self.addresses = addresses
        self.hostname = hostname
        self.nodeName = nodeName
        self.zone = zone
        self.isReady = isReady
        self.isServing = isServing
        self.isTerminating = isTerminating
        self.targetRef = targetRef
        self.ports = ports
    }
}

/// The endpoints of one service, derived from pods by selector or taken from its
/// EndpointSlices/Endpoints when it has no selector.
public struct ServiceEndpoints: Hashable, Sendable {
    public var service: ObjectKey
    public var endpoints: [ResolvedEndpoint]

    public init(service: ObjectKey, endpoints: [ResolvedEndpoint]) {
        self.service = service
        self.endpoints = endpoints
    }

    public var readyEndpoints: [ResolvedEndpoint] { endpoints.filter(\.isReady) }
}
