public import DNSWire
public import NetAddress

extension IPAddress {
    /// The reverse-lookup name: `4.3.2.1.in-addr.arpa.` or the 32 nibbles under `ip6.arpa.`.
    public var reverseName: DomainName {
        var labels: [[UInt8]] = []
        switch self {
        case .v4(let a):
            let o = a.octets
            for octet in [o.3, o.2, o.1, o.0] { labels.append(Array(String(octet).utf8)) }
            labels += [Array("in-addr".utf8), Array("arpa".utf8)]
        case .v6(let a):
            let digits = Array("0123456789abcdef".utf8)
            for byte in a.bytes.reversed() {
                labels.append([digits[Int(byte & 0x0F)]])
                labels.append([digits[Int(byte >> 4)]])
            }
            labels += [Array("ip6".utf8), Array("arpa".utf8)]
        }
        return (try? DomainName(labels: labels)) ?? .root
    }

    /// Parses a reverse-lookup name back into an address; nil unless it names exactly one address.
    public static func fromReverseName(_ name: DomainName) -> IPAddress? {
        let labels = name.labels.map { String(decoding: $0, as: UTF8.self).lowercased() }
        if labels.count == 6, labels[4] == "in-addr", labels[5] == "arpa" {
            var octets: [UInt8] = []
            for label in labels[0..<4].reversed() {
                guard let v = UInt8(label), String(v) == label else { return nil }
                octets.append(v)
            }
            return .v4(IPv4Address(octets[0], octets[1], octets[2], octets[3]))
        } else if labels.count == 34, labels[32] == "ip6", labels[33] == "arpa" {
            var bytes: [UInt8] = []
            let nibbles = labels[0..<32].reversed().map { UInt8($0, radix: 16) }
            guard nibbles.allSatisfy({ $0 != nil }), labels[0..<32].allSatisfy({ $0.count == 1 }) else { return nil }
            for i in stride(from: 0, to: 32, by: 2) { bytes.append(nibbles[i]! << 4 | nibbles[i + 1]!) }
            return IPv6Address(bytes: bytes).map { .v6($0) }
        }
        return nil
    }
}

extension IPPrefix {
    /// The reverse zones (octet-aligned for IPv4, nibble-aligned for IPv6) that together cover
    /// this prefix exactly; at most `limit` of them (none when more would be needed).
    public func reverseZones(limit: Int = 4096) -> [DomainName] {
        let unit = network.isIPv4 ? 8 : 4
        let total = network.isIPv4 ? 32 : 128
        let rounded = min(total, (length + unit - 1) / unit * unit)
        let extra = rounded - length
        let count = 1 << extra
        guard count <= limit else { return [] }
        var zones: [DomainName] = []
        for i in 0..<count {
            // The i-th sub-prefix of length `rounded`.
            let address: IPAddress
            switch network {
            case .v4(let n):
                address = .v4(IPv4Address(rawValue: n.rawValue + (rounded == 32 ? UInt32(i) : UInt32(i) << UInt32(32 - rounded))))
            case .v6(let n):
                let shift = 128 - rounded
                if shift >= 64 {
                    address = .v6(IPv6Address(high: n.high + (UInt64(i) << UInt64(shift - 64)), low: n.low))
                } else {
                    address = .v6(IPv6Address(high: n.high, low: n.low + (UInt64(i) << UInt64(shift))))
                }
            }
            // Drop the labels below the zone cut from the full reverse name.
            let full = address.reverseName
            let drop = (total - rounded) / unit
            var name = full
            for _ in 0..<drop { name = name.parent ?? name }
            zones.append(name)
        }
        return zones
    }
}
