/// `metadata` of every object: the identity and labels Kubernetes gives it.
public struct ObjectMeta: Hashable, Sendable, Codable {
    public var name: String
    /// Empty for cluster-scoped objects (Namespace, Node); defaulted to `default` for others.
    public var namespace: String
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Set by the registry: unique per object, kept across updates.
    public var uid: String
    /// Set by the registry: the version of the change that last wrote this object.
    public var resourceVersion: UInt64

    public init(name: String, namespace: String = "", labels: [String: String] = [:],
                annotations: [String: String] = [:], uid: String = "", resourceVersion: UInt64 = 0) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.uid = uid
        self.resourceVersion = resourceVersion
    }
}

/// The kinds the registry holds.
public enum ObjectKind: String, Hashable, Sendable, CaseIterable, Codable, Comparable {
    case namespace = "Namespace"
    case node = "Node"
    case service = "Service"
    case pod = "Pod"
    case endpoints = "Endpoints"
    case endpointSlice = "EndpointSlice"

    public var apiVersion: String { self == .endpointSlice ? "discovery.k8s.io/v1" : "v1" }
    public var isNamespaced: Bool { self != .namespace && self != .node }

    /// Apply order: what others refer to comes first.
    var order: Int {
        switch self {
        case .namespace: 0
        case .node: 1
        case .service: 2
        case .pod: 3
        case .endpoints: 4
        case .endpointSlice: 5
        }
    }

    public static func < (lhs: ObjectKind, rhs: ObjectKind) -> Bool { lhs.order < rhs.order }
}

/// The key of an object: kind, namespace (empty when cluster-scoped) and name.
public struct ObjectKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var kind: ObjectKind
    public var namespace: String
    public var name: String

    public init(_ kind: ObjectKind, namespace: String = "", name: String) {
        self.kind = kind
        self.namespace = kind.isNamespaced ? namespace : ""
        self.name = name
    }

    public var description: String {
        namespace.isEmpty ? "\(kind.rawValue) \(name)" : "\(kind.rawValue) \(namespace)/\(name)"
    }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.kind.order, lhs.namespace, lhs.name) < (rhs.kind.order, rhs.namespace, rhs.name)
    }
}

/// A number or a name, as `targetPort` is.
public enum IntOrString: Hashable, Sendable, Codable, CustomStringConvertible {
    case int(Int)
    case string(String)

    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): s
        }
    }
}

/// TCP, UDP or SCTP.
public enum TransportProtocol: String, Hashable, Sendable, CaseIterable, Codable {
    case tcp = "TCP"
    case udp = "UDP"
    case sctp = "SCTP"
}

public enum IPFamily: String, Hashable, Sendable, CaseIterable, Codable {
    case ipv4 = "IPv4"
    case ipv6 = "IPv6"
}
