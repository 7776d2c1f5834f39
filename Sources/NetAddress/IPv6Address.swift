/// An IPv6 address as two 64-bit halves in host byte order.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From sixteen bytes in network order; nil unless exactly sixteen.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0
        var l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h
        low = l
    }

    /// The sixteen bytes in network order.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        return out
    }

    /// The eight 16-bit groups.
    public var groups: [UInt16] {
        (0..<8).map { i in
            let half = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> UInt64((3 - i % 4) * 16))
        }
    }

    public init(groups: [UInt16]) {
        precondition(groups.count == 8, "an IPv6 address has eight groups")
        var h: UInt64 = 0
        var l: UInt64 = 0
        for i in 0..<4 { h = h << 16 | UInt64(groups[i]) }
        for i in 4..<8 { l = l << 16 | UInt64(groups[i]) }
        high = h
        low = l
    }

    /// Parses RFC 4291 text: hex groups, one `::`, an optional trailing dotted quad.
    /// A zone index (`%eth0`) is refused: it is not part of an address.
    public init?(_ text: some StringProtocol) {
        let s = Substring(text)
        guard !s.isEmpty, s.utf8.count <= 45 else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        var rest = s
        if rest.hasPrefix("::") {
            sawDoubleColon = true
            rest = rest.dropFirst(2)
            if rest.isEmpty {
                self.init(high: 0, low: 0)
                return
            }
        } else if rest.hasPrefix(":") {
            return nil
        }
        var pieces = rest.split(separator: ":", omittingEmptySubsequences: false)
        // An empty piece marks `::` in the middle or a trailing `::`.
        var index = 0
        var total = 0
        while index < pieces.count {
            let piece = pieces[index]
            if piece.isEmpty {
                // `::` in the middle: two colons produce one empty piece.
                if sawDoubleColon { return nil }
                sawDoubleColon = true
                // A trailing `::` produces an empty last piece after the empty one.
                if index == pieces.count - 2 && pieces[index + 1].isEmpty {
                    pieces.removeLast()
                }
                index += 1
                if index == pieces.count { break }
                continue
            }
            if index == pieces.count - 1, piece.contains(".") {
                guard let v4 = IPv4Address(piece) else { return nil }
                let groupsOut = [UInt16(v4.rawValue >> 16), UInt16(v4.rawValue & 0xFFFF)]
                if sawDoubleColon { tail += groupsOut } else { head += groupsOut }
                total += 2
                index += 1
                continue
            }
            guard piece.utf8.count <= 4, let g = UInt16(piece, radix: 16),
                  piece.utf8.allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") })
            else { return nil }
            if sawDoubleColon { tail.append(g) } else { head.append(g) }
            total += 1
            index += 1
        }
        if sawDoubleColon {
            guard total < 8 else { return nil }
            self.init(groups: head + Array(repeating: 0, count: 8 - total) + tail)
        } else {
            guard total == 8 else { return nil }
            self.init(groups: head)
        }
    }

    /// RFC 5952 canonical text: lower-case hex, no leading zeros, the longest run of two or more
    /// zero groups (the first if tied) as `::`.
    public var description: String {
        let g = groups
        var bestStart = -1
        var bestLength = 0
        var i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 {
                    bestStart = i
                    bestLength = j - i
                }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            range.map { String(g[$0], radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
