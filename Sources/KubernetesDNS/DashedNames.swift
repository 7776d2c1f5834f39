public import NetAddress

/// The dashed form of an address, the label of endpoint and pod names (`10-1-2-3.<svc>`).
extension IPAddress {
    /// `10-1-2-3` or, for IPv6, the address with `:` as `-` and a `0` added where it would end in `-`.
    public var dashed: String {
        switch self {
        case .v4(let a):
            let o = a.octets
            return "\(o.0)-\(o.1)-\(o.2)-\(o.3)"
        case .v6(let a):
            var s = a.description.map { $0 == ":" ? "-" : $0 }
            if s.first == "-" { s.insert("0", at: s.startIndex) }
            if s.last == "-" { s.append("0") }
            return String(s)
        }
    }

    /// Parses a dashed address label (`10-1-2-3`, `fd00--1`). A static function rather than an
    /// initialiser, so that `compactMap(IPAddress.init)` keeps meaning the text parser.
    public static func fromDashed(_ label: String) -> IPAddress? {
        if label.contains(":") || label.contains(".") { return nil }
        let dots = label.split(separator: "-", omittingEmptySubsequences: false)
        if dots.count == 4, let v4 = IPv4Address(dots.joined(separator: ".")) { return .v4(v4) }
        // A leading or trailing "0" was added where the address would start or end with "-".
        var text = label.replacingOccurrences(of: "-", with: ":")
        if text.hasPrefix("0::") { text.removeFirst() }
        if text.hasSuffix("::0") { text.removeLast() }
        return IPv6Address(text).map { .v6($0) }
    }
}

extension String {
    func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
