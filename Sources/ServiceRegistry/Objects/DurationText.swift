/// Durations written as Go writes them (`15s`, `1m30s`, `1.5h`, `500ms`), as annotations and
/// flags take them.
public enum DurationText {
    /// `text` as a duration: one or more decimal numbers each with a unit (ns, us or µs, ms, s,
    /// m, h), or a bare `0`; nil for anything else, a sign included.
    public static func parse(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var total = Duration.zero
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
            rest = rest.dropFirst(unit.count)
            let nanoseconds: Double
            switch unit {
            case "ns": nanoseconds = 1
            case "us", "µs", "μs": nanoseconds = 1e3
            case "ms": nanoseconds = 1e6
            case "s": nanoseconds = 1e9
            case "m": nanoseconds = 60e9
            case "h": nanoseconds = 3600e9
            default: return nil
            }
            let product = value * nanoseconds
            // Go refuses what overflows its int64 nanoseconds; so do we.
            guard product < 9.2e18 else { return nil }
            total += .nanoseconds(Int64(product.rounded()))
        }
        return total
    }
}
