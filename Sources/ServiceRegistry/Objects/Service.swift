/// A v1 Service, with Kubernetes' field names and defaults.
public struct Service: Hashable, Sendable, Codable {
    public var metadata: ObjectMeta
    public var spec: Spec
    public var status: Status

    public init(metadata: ObjectMeta, spec: Spec = Spec(), status: Status = Status()) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public enum ServiceType: String, Hashable, Sendable, CaseIterable, Codable {
        case clusterIP = "ClusterIP"
        case nodePort = "NodePort"
        case loadBalancer = "LoadBalancer"
        case externalName = "ExternalName"
    }

    public enum IPFamilyPolicy: String, Hashable, Sendable, CaseIterable, Codable {
        case singleStack = "SingleStack"
        case preferDualStack = "PreferDualStack"
        case requireDualStack = "RequireDualStack"
    }

    public enum SessionAffinity: String, Hashable, Sendable, CaseIterable, Codable {
        case none = "None"
        case clientIP = "ClientIP"
    }

    public enum TrafficPolicy: String, Hashable, Sendable, CaseIterable, Codable {
        case cluster = "Cluster"
        case local = "Local"
    }

    public struct Port: Hashable, Sendable, Codable {
        public var name: String
        public var `protocol`: TransportProtocol
        public var port: Int
        /// Defaults to `port`.
        public var targetPort: IntOrString?
        /// 0 when none is requested; allocated for NodePort and LoadBalancer services.
        public var nodePort: Int

        public init(name: String = "", protocol: TransportProtocol = .tcp, port: Int,
                    targetPort: IntOrString? = nil, nodePort: Int = 0) {
            self.name = name
            self.protocol = `protocol`
            self.port = port
            self.targetPort = targetPort
            self.nodePort = nodePort
        }

        /// `targetPort`, or `port` when not given.
        public var effectiveTargetPort: IntOrString { targetPort ?? .int(port) }
    }

    public struct Spec: Hashable, Sendable, Codable {
        public var type: ServiceType = .clusterIP
        /// `None` for a headless service; empty to have one allocated.
        public var clusterIP: String = ""
        public var clusterIPs: [String] = []
        public var ipFamilies: [IPFamily] = []
        public var ipFamilyPolicy: IPFamilyPolicy? = nil
        public var ports: [Port] = []
        /// nil: no selector (endpoints come from Endpoints/EndpointSlices).
        public var selector: [String: String]? = nil
        public var externalName: String = ""
        public var loadBalancerIP: String = ""
        public var externalIPs: [String] = []
        public var sessionAffinity: SessionAffinity = .none
        /// `sessionAffinityConfig.clientIP.timeoutSeconds`, defaulted to 10800 with ClientIP affinity.
        public var sessionAffinityTimeoutSeconds: Int? = nil
        public var externalTrafficPolicy: TrafficPolicy? = nil
        public var internalTrafficPolicy: TrafficPolicy? = nil
        public var publishNotReadyAddresses: Bool = false

        public init() {}

        public var isHeadless: Bool { clusterIP == "None" }
    }

    public struct Status: Hashable, Sendable, Codable {
        /// `status.loadBalancer.ingress[].ip`.
        public var loadBalancerIngress: [String] = []
        public init() {}
    }

    public var key: ObjectKey { ObjectKey(.service, namespace: metadata.namespace, name: metadata.name) }
}
