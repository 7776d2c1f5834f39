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

    /// One endpoint of a slice. Stored compactly, because a registry holds a great many: the
    /// first address inline, and the fields that are usually empty (hostname, node, zone,
    /// targetRef) behind one optional reference. The public shape is Kubernetes'.
    public struct Endpoint: Hashable, Sendable, Codable {
        var firstAddress: String
        var otherAddresses: [String]
        public var conditions: Conditions
        var details: Details?

        final class Details: Hashable, Sendable {
            let hostname: String
            let nodeName: String
            let zone: String
            let targetRef: ObjectReference?

            init(hostname: String, nodeName: String, zone: String, targetRef: ObjectReference?) {
                self.hostname = hostname
                self.nodeName = nodeName
                self.zone = zone
                self.targetRef = targetRef
            }

            static func make(hostname: String, nodeName: String, zone: String, targetRef: ObjectReference?) -> Details? {
                hostname.isEmpty && nodeName.isEmpty && zone.isEmpty && targetRef == nil
                    ? nil : Details(hostname: hostname, nodeName: nodeName, zone: zone, targetRef: targetRef)
            }

            static func == (a: Details, b: Details) -> Bool {
                a.hostname == b.hostname && a.nodeName == b.nodeName && a.zone == b.zone && a.targetRef == b.targetRef
            }

            func hash(into hasher: inout Hasher) {
                hasher.combine(hostname)
                hasher.combine(nodeName)
                hasher.combine(zone)
                hasher.combine(targetRef)
            }
        }

        public init(addresses: [String], conditions: Conditions = Conditions(), hostname: String = "",
                    nodeName: String = "", zone: String = "", targetRef: ObjectReference? = nil) {
            firstAddress = addresses.first ?? ""
            otherAddresses = Array(addresses.dropFirst())
            self.conditions = conditions
            details = Details.make(hostname: hostname, nodeName: nodeName, zone: zone, targetRef: targetRef)
        }

        public var addresses: [String] {
            get { firstAddress.isEmpty && otherAddresses.isEmpty ? [] : [firstAddress] + otherAddresses }
            set {
                firstAddress = newValue.first ?? ""
                otherAddresses = Array(newValue.dropFirst())
            }
        }

        public var hostname: String {
            get { details?.hostname ?? "" }
            set { details = .make(hostname: newValue, nodeName: nodeName, zone: zone, targetRef: targetRef) }
        }

        public var nodeName: String {
            get { details?.nodeName ?? "" }
            set { details = .make(hostname: hostname, nodeName: newValue, zone: zone, targetRef: targetRef) }
        }

        public var zone: String {
            get { details?.zone ?? "" }
            set { details = .make(hostname: hostname, nodeName: nodeName, zone: newValue, targetRef: targetRef) }
        }

        public var targetRef: ObjectReference? {
            get { details?.targetRef }
            set { details = .make(hostname: hostname, nodeName: nodeName, zone: zone, targetRef: newValue) }
        }

        enum CodingKeys: String, CodingKey {
            case addresses, conditions, hostname, nodeName, zone, targetRef
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(addresses: try c.decode([String].self, forKey: .addresses),
                      conditions: try c.decodeIfPresent(Conditions.self, forKey: .conditions) ?? Conditions(),
                      hostname: try c.decodeIfPresent(String.self, forKey: .hostname) ?? "",
                      nodeName: try c.decodeIfPresent(String.self, forKey: .nodeName) ?? "",
                      zone: try c.decodeIfPresent(String.self, forKey: .zone) ?? "",
                      targetRef: try c.decodeIfPresent(ObjectReference.self, forKey: .targetRef))
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(addresses, forKey: .addresses)
            try c.encode(conditions, forKey: .conditions)
            if !hostname.isEmpty { try c.encode(hostname, forKey: .hostname) }
            if !nodeName.isEmpty { try c.encode(nodeName, forKey: .nodeName) }
            if !zone.isEmpty { try c.encode(zone, forKey: .zone) }
            try c.encodeIfPresent(targetRef, forKey: .targetRef)
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
public indirect enum RegistryObject: Hashable, Sendable, Codable {
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
