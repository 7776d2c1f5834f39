/// A v1 Pod: what the endpoints controller and DNS need of it.
public struct Pod: Hashable, Sendable, Codable {
    public var metadata: ObjectMeta
    public var spec: Spec
    public var status: Status

    public init(metadata: ObjectMeta, spec: Spec = Spec(), status: Status = Status()) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public struct ContainerPort: Hashable, Sendable, Codable {
        public var name: String
        public var containerPort: Int
        public var `protocol`: TransportProtocol

        public init(name: String = "", containerPort: Int, protocol: TransportProtocol = .tcp) {
            self.name = name
            self.containerPort = containerPort
            self.protocol = `protocol`
        }
    }

    public struct Container: Hashable, Sendable, Codable {
        public var name: String
        public var image: String
        public var ports: [ContainerPort]
        /// Run by `clusterdns serve --probes` on the pod's node; the result is the pod's Ready condition.
        public var readinessProbe: Probe?
        /// Until it succeeds, the container is not ready and its readiness probe is not run.
        public var startupProbe: Probe?

        public init(name: String, image: String = "", ports: [ContainerPort] = [], readinessProbe: Probe? = nil,
                    startupProbe: Probe? = nil) {
            self.name = name
            self.image = image
            self.ports = ports
            self.readinessProbe = readinessProbe
            self.startupProbe = startupProbe
        }
    }

    public struct Spec: Hashable, Sendable, Codable {
        public var hostname: String = ""
        public var subdomain: String = ""
        public var nodeName: String = ""
        public var containers: [Container] = []
        public init() {}
    }

    public struct Status: Hashable, Sendable, Codable {
        public var phase: String = ""
        public var podIP: String = ""
        public var podIPs: [String] = []
        /// The `Ready` condition; nil when the manifest gives none (then the pod counts as ready
        /// once it has an IP, since nothing here runs probes).
        public var isReady: Bool? = nil
        public init() {}
    }

    /// Ready for traffic: the Ready condition if given, else running with an IP.
    public var isReady: Bool {
        if let ready = status.isReady { return ready }
        return !status.podIP.isEmpty && (status.phase.isEmpty || status.phase == "Running")
    }

    public var key: ObjectKey { ObjectKey(.pod, namespace: metadata.namespace, name: metadata.name) }
}
