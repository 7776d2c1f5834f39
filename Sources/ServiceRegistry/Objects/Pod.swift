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

    /// How a pod's resolv.conf is made (Kubernetes' `dnsPolicy`).
    public enum DNSPolicy: String, Hashable, Sendable, Codable, CaseIterable {
        /// The cluster's server and search path (`<ns>.svc.<zone> svc.<zone> <zone>`, then the node's).
        case clusterFirst = "ClusterFirst"
        /// The same for a `hostNetwork` pod (which otherwise takes the node's resolv.conf).
        case clusterFirstWithHostNet = "ClusterFirstWithHostNet"
        /// The node's resolv.conf.
        case `default` = "Default"
        /// Only what the pod's `dnsConfig` says.
        case none = "None"
    }

    public struct Spec: Hashable, Sendable, Codable {
        public var hostname: String = ""
        public var subdomain: String = ""
        public var nodeName: String = ""
        public var containers: [Container] = []
        /// The pod shares its node's network (and address): its address is not its own.
        public var hostNetwork: Bool = false
        public var dnsPolicy: DNSPolicy = .clusterFirst
        public init() {}

        enum CodingKeys: String, CodingKey {
            case hostname, subdomain, nodeName, containers, hostNetwork, dnsPolicy
        }

        /// Fields added later are optional here, so that a store written before them loads.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            hostname = try c.decodeIfPresent(String.self, forKey: .hostname) ?? ""
            subdomain = try c.decodeIfPresent(String.self, forKey: .subdomain) ?? ""
            nodeName = try c.decodeIfPresent(String.self, forKey: .nodeName) ?? ""
            containers = try c.decodeIfPresent([Container].self, forKey: .containers) ?? []
            hostNetwork = try c.decodeIfPresent(Bool.self, forKey: .hostNetwork) ?? false
            dnsPolicy = try c.decodeIfPresent(DNSPolicy.self, forKey: .dnsPolicy) ?? .clusterFirst
        }
    }

    public struct Status: Hashable, Sendable, Codable {
        public var phase: String = ""
        public var podIP: String = ""
        public var podIPs: [String] = []
        /// The `Ready` condition; nil when the manifest gives none (then the pod counts as ready
        /// once it has an IP, as nothing decides otherwise).
        public var isReady: Bool? = nil
        /// The Ready condition's `lastProbeTime` (seconds since 1970): when a probe or a
        /// heartbeat last confirmed it. A heartbeat pod renews it.
        public var readyProbeTime: Int64? = nil
        /// The Ready condition's `lastTransitionTime`: when its status last changed (the
        /// registry sets it when a write changes the status without saying when).
        public var readyTransitionTime: Int64? = nil
        public var containerStatuses: [ContainerStatus] = []
        public init() {}

        enum CodingKeys: String, CodingKey {
            case phase, podIP, podIPs, isReady, readyProbeTime, readyTransitionTime, containerStatuses
        }

        /// Fields added later are optional here, so that a store written before them loads.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            phase = try c.decodeIfPresent(String.self, forKey: .phase) ?? ""
            podIP = try c.decodeIfPresent(String.self, forKey: .podIP) ?? ""
            podIPs = try c.decodeIfPresent([String].self, forKey: .podIPs) ?? []
            isReady = try c.decodeIfPresent(Bool.self, forKey: .isReady)
            readyProbeTime = try c.decodeIfPresent(Int64.self, forKey: .readyProbeTime)
            readyTransitionTime = try c.decodeIfPresent(Int64.self, forKey: .readyTransitionTime)
            containerStatuses = try c.decodeIfPresent([ContainerStatus].self, forKey: .containerStatuses) ?? []
        }
    }

    /// What is known of one container: whether its probes find it ready (and, with a startup
    /// probe, started).
    public struct ContainerStatus: Hashable, Sendable, Codable {
        public var name: String
        public var ready: Bool
        /// nil until something (a startup probe) says.
        public var started: Bool?

        public init(name: String, ready: Bool, started: Bool? = nil) {
            self.name = name
            self.ready = ready
            self.started = started
        }
    }

    /// Ready for traffic: the Ready condition if given, else running with an IP.
    public var isReady: Bool {
        if let ready = status.isReady { return ready }
        return !status.podIP.isEmpty && (status.phase.isEmpty || status.phase == "Running")
    }

    public var key: ObjectKey { ObjectKey(.pod, namespace: metadata.namespace, name: metadata.name) }

    /// Whether the pod resolves names through the cluster's search path from an address of its
    /// own, as kubelet writes its resolv.conf: a `hostNetwork` pod sends from its node's address.
    public var searchesClusterFromOwnAddress: Bool {
        guard !spec.hostNetwork else { return false }
        return spec.dnsPolicy == .clusterFirst || spec.dnsPolicy == .clusterFirstWithHostNet
    }

    /// The annotation that makes a pod a heartbeat pod: it stays Ready only while its Ready
    /// condition is renewed (its `lastProbeTime` moves) within this duration (`15s`).
    public static let readyTTLAnnotation = "clusterdns.io/ready-ttl"

    /// The heartbeat time-to-live, when the annotation gives a valid one: at least a second,
    /// since a renewal's time is kept to the second.
    public var readyTTL: Duration? {
        guard let text = metadata.annotations[Self.readyTTLAnnotation], let ttl = DurationText.parse(text), ttl >= .seconds(1) else { return nil }
        return ttl
    }
}
