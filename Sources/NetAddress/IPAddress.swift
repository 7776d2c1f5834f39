/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family; IPv6 is recognised by its colon.
    public init?(_ text: some StringProtocol) {
        self.init(String(text))
    }

    /// The same for a `String` (the common case, specialised: no generic dispatch per byte).
    public init?(_ text: String) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let a = IPv6Address(text) else { return nil }
            self = .v6(a)
        } else {
            guard let a = IPv4Address(text) else { return nil }
            self = .v4(a)
        }
    }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }

    public var isIPv4: Bool { if case .v4 = self { true } else { false } }

    /// `0.0.0.0` or `::`.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let a): a.rawValue == 0
        case .v6(let a): a.high == 0 && a.low == 0
        }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else nil.
    public var unmappedIPv4: IPAddress? {
        guard case .v6(let a) = self, a.high == 0, a.low >> 32 == 0xFFFF else { return nil }
        return .v4(IPv4Address(rawValue: UInt32(truncatingIfNeeded: a.low)))
    }
}

extension IPAddress {
    /// 127.0.0.0/8 or ::1: reachable from this host only.
    public var isLoopback: Bool {
        switch self {
        case .v4(let a): a.rawValue >> 24 == 127
        case .v6(let a): a.high == 0 && a.low == 1
        }
    }
}
