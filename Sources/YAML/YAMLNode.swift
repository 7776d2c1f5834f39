/// A YAML (or JSON) value with where it was written: what manifests and the config file are
/// read into. Aliases are already replaced by what they name and merge keys (`<<`) applied.
public indirect enum YAMLNode: Sendable {
    case scalar(String, ScalarType, Position)
    case mapping([(key: String, keyPosition: Position, value: YAMLNode)], Position)
    case sequence([YAMLNode], Position)

    /// What a scalar is: a quoted scalar is a string, a plain one is typed as YAML 1.1 does
    /// (Kubernetes' YAML reader), an explicit standard tag (`!!str 80`) wins over both.
    public enum ScalarType: Sendable {
        case string, int, float, bool, null
    }

    /// 1-based line and column.
    public struct Position: Hashable, Sendable {
        public var line: Int
        public var column: Int

        public init(line: Int, column: Int) {
            self.line = line
            self.column = column
        }
    }

    public var position: Position {
        switch self {
        case .scalar(_, _, let p), .mapping(_, let p), .sequence(_, let p): p
        }
    }

    public var isNull: Bool {
        if case .scalar(_, .null, _) = self { return true }
        return false
    }

    /// The text of a scalar; nil for a mapping or a sequence.
    public var scalarText: String? {
        if case .scalar(let s, _, _) = self { return s }
        return nil
    }

    /// YAML 1.1 typing of a plain scalar, as Kubernetes' YAML reader does (no regular
    /// expression per scalar).
    public static func plainType(_ s: String) -> ScalarType {
        switch s {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO",
             "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N":
            return .bool
        case ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN": return .float
        default: break
        }
        var bytes = Substring(s).utf8[...]
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        guard let first = bytes.first else { return .string }
        let isDigit = { (c: UInt8) in c >= 48 && c <= 57 }
        if bytes.count > 2, first == UInt8(ascii: "0"), bytes.dropFirst().first == UInt8(ascii: "x") {
            return bytes.dropFirst(2).allSatisfy { isDigit($0) || (97...102).contains($0 | 0x20) } ? .int : .string
        }
        if bytes.allSatisfy({ isDigit($0) || $0 == UInt8(ascii: "_") }) && isDigit(first) { return .int }
        // A float: digits, one dot and/or an exponent.
        var sawDigit = false
        var sawDot = false
        var sawExponent = false
        var previous: UInt8 = 0
        for c in bytes {
            if isDigit(c) || c == UInt8(ascii: "_") { sawDigit = sawDigit || isDigit(c) }
            else if c == UInt8(ascii: "."), !sawDot, !sawExponent { sawDot = true }
            else if c | 0x20 == UInt8(ascii: "e"), sawDigit, !sawExponent { sawExponent = true }
            else if (c == UInt8(ascii: "-") || c == UInt8(ascii: "+")), previous | 0x20 == UInt8(ascii: "e") {}
            else { return .string }
            previous = c
        }
        return sawDigit && (sawDot || sawExponent) ? .float : .string
    }
}

/// Why a text is not YAML, and where.
public struct YAMLError: Error, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String
    /// 1-based index of the document it happened in.
    public var document: Int

    public init(line: Int, column: Int, message: String, document: Int) {
        self.line = line
        self.column = column
        self.message = message
        self.document = document
    }

    public var description: String { "\(line):\(column): \(message)" }
}
