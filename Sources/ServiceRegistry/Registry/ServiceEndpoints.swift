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
///
/// One reference wide: the registry's map of services to endpoints and every consumer that
/// keeps a service's endpoints (the DNS zone, the forwarder's plan) share one box (some 330
/// bytes each inline, 10,000 times over, otherwise).
public struct ServiceEndpoints: Hashable, Sendable {
    private let box: Box

    final class Box: Sendable {
        let service: ObjectKey
        let source: Source
        /// The unreachable nodes this service has endpoints on (almost always none).
        let unreachable: Set<String>
        init(service: ObjectKey, source: Source, unreachable: Set<String>) {
            self.service = service
            self.source = source
            self.unreachable = unreachable
        }
    }

    /// The registry's objects themselves (each an indirect enum: one reference), not copies.
    enum Source: Hashable, Sendable {
        case pods(service: RegistryObject, pods: [RegistryObject])
        case slices(service: RegistryObject, slices: [RegistryObject])
        case legacy(service: RegistryObject, endpoints: RegistryObject)
    }

    init(service: ObjectKey, source: Source, unreachable: Set<String> = []) {
        box = Box(service: service, source: source, unreachable: unreachable)
    }

    public var service: ObjectKey { box.service }
    var source: Source { box.source }

    public static func == (a: ServiceEndpoints, b: ServiceEndpoints) -> Bool {
        a.box === b.box || (a.box.service == b.box.service && a.box.source == b.box.source && a.box.unreachable == b.box.unreachable)
    }

    /// Whether both are the same value the registry made (not only equal): the registry makes
    /// a new one whenever a service's sources change, so a consumer that keeps what it derived
    /// from one can tell cheaply whether to derive it again.
    public func isIdentical(to other: ServiceEndpoints) -> Bool { box === other.box }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(box.service)
        hasher.combine(box.source)
    }

    public var endpoints: [ResolvedEndpoint] {
        var resolved: [ResolvedEndpoint] = switch source {
        case .pods(let service, let pods): EndpointsController.fromPods(service.asService, pods: pods.map(\.asPod))
        case .slices(let service, let slices): EndpointsController.fromSlices(service.asService, slices: slices.map(\.asSlice))
        case .legacy(let service, let endpoints): EndpointsController.fromEndpoints(service.asService, endpoints: endpoints.asEndpoints)
        }
        if !box.unreachable.isEmpty {
            for i in resolved.indices where box.unreachable.contains(resolved[i].nodeName) {
                resolved[i].isReady = false
                resolved[i].isServing = false
            }
        }
        return resolved
    }

    /// The nodes the sources place endpoints on, without resolving them.
    static func nodes(of source: Source) -> Set<String> {
        switch source {
        case .pods(_, let pods): Set(pods.map(\.asPod.spec.nodeName))
        case .slices(_, let slices): Set(slices.flatMap { $0.asSlice.endpoints.map(\.nodeName) })
        case .legacy(_, let endpoints):
            Set(endpoints.asEndpoints.subsets.flatMap { ($0.addresses + $0.notReadyAddresses).map(\.nodeName) })
        }
    }

    public var readyEndpoints: [ResolvedEndpoint] { endpoints.filter(\.isReady) }

    /// Number of endpoints, without resolving them.
    public var count: Int {
        switch source {
        case .pods(let service, let pods):
            pods.lazy.map(\.asPod).filter {
                EndpointsController.selects(service.asService.spec.selector ?? [:], $0.metadata.labels) && !$0.status.podIPs.isEmpty
            }.count
        case .slices(_, let slices): slices.reduce(0) { $0 + $1.asSlice.endpoints.count }
        case .legacy(_, let endpoints): endpoints.asEndpoints.subsets.reduce(0) { $0 + $1.addresses.count + $1.notReadyAddresses.count }
        }
    }
}

/// The payloads of the objects a `ServiceEndpoints` keeps (it is built with these kinds only).
extension RegistryObject {
    var asService: Service {
        guard case .service(let o) = self else { preconditionFailure("expected a Service, got \(key)") }
        return o
    }
    var asPod: Pod {
        guard case .pod(let o) = self else { preconditionFailure("expected a Pod, got \(key)") }
        return o
    }
    var asSlice: EndpointSlice {
        guard case .endpointSlice(let o) = self else { preconditionFailure("expected an EndpointSlice, got \(key)") }
        return o
    }
    var asEndpoints: Endpoints {
        guard case .endpoints(let o) = self else { preconditionFailure("expected Endpoints, got \(key)") }
        return o
    }
}
