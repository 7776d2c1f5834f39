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
///
/// It keeps its sources, not a copy of every endpoint: the slices and pods share their storage
/// with the registry's objects, so 100,000 endpoints are held once. `endpoints` resolves them
/// (ports by name, readiness, families) when asked, which consumers do when something changed.
public struct ServiceEndpoints: Hashable, Sendable {
    public var service: ObjectKey
    let source: Source

    enum Source: Hashable, Sendable {
        case pods(Service, [Pod])
        case slices(Service, [EndpointSlice])
        case legacy(Service, Endpoints)
    }

    init(service: ObjectKey, source: Source) {
        self.service = service
        self.source = source
    }

    public var endpoints: [ResolvedEndpoint] {
        switch source {
        case .pods(let service, let pods): EndpointsController.fromPods(service, pods: pods)
        case .slices(let service, let slices): EndpointsController.fromSlices(service, slices: slices)
        case .legacy(let service, let endpoints): EndpointsController.fromEndpoints(service, endpoints: endpoints)
        }
    }

    public var readyEndpoints: [ResolvedEndpoint] { endpoints.filter(\.isReady) }

    /// Number of endpoints, without resolving them.
    public var count: Int {
        switch source {
        case .pods(let service, let pods):
            pods.lazy.filter { EndpointsController.selects(service.spec.selector ?? [:], $0.metadata.labels) && !$0.status.podIPs.isEmpty }.count
        case .slices(_, let slices): slices.reduce(0) { $0 + $1.endpoints.count }
        case .legacy(_, let endpoints): endpoints.subsets.reduce(0) { $0 + $1.addresses.count + $1.notReadyAddresses.count }
        }
    }
}
