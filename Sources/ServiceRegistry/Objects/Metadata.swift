/// `metadata` of every object: the identity and labels Kubernetes gives it.
public struct ObjectMeta: Hashable, Sendable, Codable {
    public var name: String
    /// Empty for cluster-scoped objects (Namespace, Node); defaulted to `default` for others.
    public var namespace: String
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Set by the registry: unique per object, kept across updates (a random UUID, written
    /// lower-case as Kubernetes does).
    public var uid: String {
        get { uidValue.description }
        set { uidValue = ObjectUID(newValue) }
    }
    /// The uid as the registry keeps it: 16 bytes when it is a UUID (every object has one; as
    /// a string it would be a heap allocation of 68 bytes each).
    var uidValue: ObjectUID
    /// Set by the registry: the version of the change that last wrote this object.
    public var resourceVersion: UInt64
    /// Set by the registry when the object is created (seconds since 1970, UTC); kept by updates.
    public var creationTimestamp: Int64?
    /// What the object's writer wrote that the registry keeps without using (`PreservedFields`).
    public var preserved: PreservedFields?

    public init(name: String, namespace: String = "", labels: [String: String] = [:],
                annotations: [String: String] = [:], uid: String = "", resourceVersion: UInt64 = 0) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.uidValue = ObjectUID(uid)
        self.resourceVersion = resourceVersion
    }

    enum CodingKeys: String, CodingKey {
        case name, namespace, labels, annotations, uidValue = "uid", resourceVersion, creationTimestamp, preserved
    }
}

/// An object's uid: a UUID as its 128 bits, or any other text as given.
enum ObjectUID: Hashable, Sendable, Codable, CustomStringConvertible {
    case uuid(UInt64, UInt64)
    case text(String)

    /// A new random (version 4) UUID.
    static func random() -> ObjectUID {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() & ~0xF000 | 0x4000  // version 4
        let low = generator.next() & ~(0xC000 << 48) | (0x8000 << 48)  // RFC 4122 variant
        return .uuid(high, low)
    }

    init(_ text: String) {
        self = Self.parse(text) ?? .text(text)
    }

    var isEmpty: Bool { self == .text("") }

    /// A lower-case UUID (8-4-4-4-12 hex digits), else nil: upper-case ones stay text, so
    /// the uid reads back exactly as it was given.
    static func parse(_ text: String) -> ObjectUID? {
        let bytes = text.utf8
        guard bytes.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = UInt64(byte - UInt8(ascii: "a") + 10)
            default: return nil
            }
            if digits < 16 { high = high << 4 | value } else { low = low << 4 | value }
            digits += 1
        }
        return .uuid(high, low)
    }

    var description: String {
        switch self {
        case .text(let text): return text
        case .uuid(let high, let low):
            let hex = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(36)
            for (index, word) in [high, low].enumerated() {
                for nibble in 0..<16 {
                    let position = index * 16 + nibble
                    if position == 8 || position == 12 || position == 16 || position == 20 { out.append(UInt8(ascii: "-")) }
                    out.append(hex[Int(word >> (60 - 4 * UInt64(nibble)) & 0xF)])
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
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
    /// The resource's name in API paths and messages (`services`, `endpoints`).
    public var plural: String { self == .endpoints ? "endpoints" : rawValue.lowercased() + "s" }

    /// The kind whose `plural` is `plural` (a store key's or an API path's resource).
    public init?(plural: String) {
        guard let kind = Self.byPlural[plural] else { return nil }
        self = kind
    }

    static let byPlural = Dictionary(uniqueKeysWithValues: allCases.map { ($0.plural, $0) })
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

    /// The key `description` wrote (`Service shop/web`, `Node node-a`), or nil.
    public init?(parsing text: String) {
        guard let space = text.firstIndex(of: " "), let kind = ObjectKind(rawValue: String(text[..<space])) else { return nil }
        let rest = text[text.index(after: space)...]
        if kind.isNamespaced {
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
            self.init(kind, namespace: String(parts[0]), name: String(parts[1]))
        } else {
            guard !rest.isEmpty, !rest.contains("/") else { return nil }
            self.init(kind, name: String(rest))
        }
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
