/// A CIDR prefix such as `10.96.0.0/12` or `fd00:10:96::/112`.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address (host bits are always zero).
    public let network: IPAddress
    public let length: Int

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case missingSlash(String)
        case badAddress(String)
        case badLength(String)
        case hostBitsSet(String)

        public var description: String {
            switch self {
            case .missingSlash(let s): "invalid CIDR \"\(s)\": expected ADDRESS/LENGTH"
            case .badAddress(let s): "invalid CIDR \"\(s)\": not an IP address before the slash"
            case .badLength(let s): "invalid CIDR \"\(s)\": prefix length out of range"
            case .hostBitsSet(let s): "invalid CIDR \"\(s)\": host bits are set (did you mean the network address?)"
            }
        }
    }

    /// Builds a prefix, zeroing host bits.
    public init?(address: IPAddress, length: Int) {
        switch address {
        case .v4(let a):
            guard (0...32).contains(length) else { return nil }
            network = .v4(IPv4Address(rawValue: a.rawValue & Self.mask32(length)))
        case .v6(let a):
            guard (0...128).contains(length) else { return nil }
            let (h, l) = Self.mask128(length)
            network = .v6(IPv6Address(high: a.high & h, low: a.low & l))
        }
        self.length = length
    }

    /// Parses `ADDRESS/LENGTH`; with `strict`, host bits must be zero.
    public init(parsing text: String, strict: Bool = true) throws(ParseError) {
        guard let slash = text.firstIndex(of: "/") else { throw .missingSlash(text) }
        guard let address = IPAddress(text[..<slash]) else { throw .badAddress(text) }
        let lengthText = text[text.index(after: slash)...]
        guard !lengthText.isEmpty, lengthText.utf8.allSatisfy({ (48...57).contains($0) }),
              lengthText.utf8.count <= 3, let length = Int(lengthText),
              let prefix = IPPrefix(address: address, length: length)
        else { throw .badLength(text) }
        if strict && prefix.network != address { throw .hostBitsSet(text) }
        self = prefix
    }

    public func contains(_ address: IPAddress) -> Bool {
        switch (network, address) {
        case (.v4(let n), .v4(let a)):
            return a.rawValue & Self.mask32(length) == n.rawValue
        case (.v6(let n), .v6(let a)):
            let (h, l) = Self.mask128(length)
            return a.high & h == n.high && a.low & l == n.low
        default:
            return false
        }
    }

    /// Number of addresses, capped at `UInt64.max` for large IPv6 prefixes.
    public var addressCount: UInt64 {
        let bits = (network.isIPv4 ? 32 : 128) - length
        return bits >= 64 ? UInt64.max : UInt64(1) << UInt64(bits)
    }

    public var description: String { "\(network)/\(length)" }

    static func mask32(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }

    static func mask128(_ length: Int) -> (UInt64, UInt64) {
        if length <= 64 {
            return (length == 0 ? 0 : UInt64.max << UInt64(64 - length), 0)
        }
        return (UInt64.max, UInt64.max << UInt64(128 - length))
    }
}
