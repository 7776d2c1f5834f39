/// A port of an endpoint set (Endpoints and EndpointSlice share the shape).
public struct EndpointPort: Hashable, Sendable, Codable {
    public var name: String
    public var port: Int
    public var `protocol`: TransportProtocol
    public var appProtocol: String

    public init(name: String = "", port: Int, protocol: TransportProtocol = .tcp, appProtocol: String = "") {
        self.name = name
        self.port = port
        self.protocol = `protocol`
        self.appProtocol = appProtocol
    }
}

/// A reference to the object behind an endpoint (usually a Pod).
public struct ObjectReference: Hashable, Sendable, Codable {
    public var kind: String
    public var namespace: String
    public var name: String
    public init(kind: String, namespace: String = "", name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }
}

/// A v1 Endpoints object (legacy): subsets of ready and not-ready addresses with ports.
public struct Endpoints: Hashable, Sendable, Codable {
    public var metadata: ObjectMeta
    public var subsets: [Subset]

    public struct Address: Hashable, Sendable, Codable {
        public var ip: String
        public var hostname: String
        public var nodeName: String
        public var targetRef: ObjectReference?
        public init(ip: String, hostname: String = "", nodeName: String = "", targetRef: ObjectReference? = nil) {
            self.ip = ip
            self.hostname = hostname
            self.nodeName = nodeName
            self.targetRef = targetRef
        }
    }

    public struct Subset: Hashable, Sendable, Codable {
        public var addresses: [Address]
        public var notReadyAddresses: [Address]
        public var ports: [EndpointPort]
        public init(addresses: [Address] = [], notReadyAddresses: [Address] = [], ports: [EndpointPort] = []) {
            self.addresses = addresses
            self.notReadyAddresses = notReadyAddresses
            self.ports = ports
        }
    }

    public init(metadata: ObjectMeta, subsets: [Subset] = []) {
        self.metadata = metadata
        self.subsets = subsets
    }

    public var key: ObjectKey { ObjectKey(.endpoints, namespace: metadata.namespace, name: metadata.name) }
}

/// A discovery.k8s.io/v1 EndpointSlice.
public struct EndpointSlice: Hashable, Sendable, Codable {
    public var metadata: ObjectMeta
    public var addressType: AddressType
    public var endpoints: [Endpoint]
    public var ports: [EndpointPort]

    public enum AddressType: String, Hashable, Sendable, CaseIterable, Codable {
        case ipv4 = "IPv4"
        case ipv6 = "IPv6"
        case fqdn = "FQDN"
    }

    public struct Conditions: Hashable, Sendable, Codable {
        /// nil means unknown, which consumers treat as ready.
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
        public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
        }
    }

    public struct Endpoint: Hashable, Sendable, Codable {
        public var addresses: [String]
        public var conditions: Conditions
        public var hostname: String
        public var nodeName: String
        public var zone: String
        public var targetRef: ObjectReference?
        public init(addresses: [String], conditions: Conditions = Conditions(), hostname: String = "",
                    nodeName: String = "", zone: String = "", targetRef: ObjectReference? = nil) {
            self.addresses = addresses
            self.conditions = conditions
            self.hostname = hostname
            self.nodeName = nodeName
            self.zone = zone
            self.targetRef = targetRef
        }
    }

    public init(metadata: ObjectMeta, addressType: AddressType = .ipv4, endpoints: [Endpoint] = [], ports: [EndpointPort] = []) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    /// The service this slice belongs to: the `kubernetes.io/service-name` label.
    public var serviceName: String? { metadata.labels["kubernetes.io/service-name"] }

    public var key: ObjectKey { ObjectKey(.endpointSlice, namespace: metadata.namespace, name: metadata.name) }
}

/// Any object the registry holds.
public enum RegistryObject: Hashable, Sendable, Codable {
    case namespace(Namespace)
    case node(Node)
    case service(Service)
    case pod(Pod)
    case endpoints(Endpoints)
    case endpointSlice(EndpointSlice)

    public var metadata: ObjectMeta {
        get {
            switch self {
            case .namespace(let o): o.metadata
            case .node(let o): o.metadata
            case .service(let o): o.metadata
            case .pod(let o): o.metadata
            case .endpoints(let o): o.metadata
            case .endpointSlice(let o): o.metadata
            }
        }
        set {
            switch self {
            case .namespace(var o): o.metadata = newValue; self = .namespace(o)
            case .node(var o): o.metadata = newValue; self = .node(o)
            case .service(var o): o.metadata = newValue; self = .service(o)
            case .pod(var o): o.metadata = newValue; self = .pod(o)
            case .endpoints(var o): o.metadata = newValue; self = .endpoints(o)
            case .endpointSlice(var o): o.metadata = newValue; self = .endpointSlice(o)
            }
        }
    }

    public var kind: ObjectKind {
        switch self {
        case .namespace: .namespace
        case .node: .node
        case .service: .service
        case .pod: .pod
        case .endpoints: .endpoints
        case .endpointSlice: .endpointSlice
        }
    }

    public var key: ObjectKey { ObjectKey(kind, namespace: metadata.namespace, name: metadata.name) }
}
