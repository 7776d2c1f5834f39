#if canImport(Glibc)
import Glibc
#endif

/// A JSON text (RFC 8259) checked and indexed in one pass: every value becomes one node in
/// document order, a container's node saying where its subtree ends, so a decoder finds an
/// object's member by walking its members' nodes without building a dictionary of String keys
/// per object (what made Foundation's JSONDecoder 70 % of a registry's start), and makes a
/// String only for the values it is asked for. The bytes are borrowed: a tape is valid while
/// the buffer it was parsed from is.
struct JSONTape {
    enum Kind: UInt8 { case null, `true`, `false`, number, string, array, object }

    struct Node {
        var kind: Kind
        /// A string holding a backslash escape (decoded when the String is made).
        var escaped: Bool
        /// A number with a fraction or an exponent.
        var fractional: Bool
        /// Scalars: the first byte (a string's first byte after its quote); containers: the
        /// offset of their bracket, for errors.
        var start: Int32
        /// Scalars: the byte after the value (a string's closing quote); containers: the index
        /// of the node after the subtree.
        var end: Int32
        /// Containers: elements, or members (each a key node then a value's nodes).
        var count: Int32
    }

    let bytes: UnsafeBufferPointer<UInt8>
    private(set) var nodes: [Node] = []

    /// The deepest nesting accepted (Foundation's JSONSerialization stops at 512 too): a
    /// hostile value of brackets fails here instead of overflowing the stack.
    static let maximumDepth = 512

    struct SyntaxError: Error, CustomStringConvertible {
        let offset: Int
        let reason: String
        var description: String { "byte \(offset): \(reason)" }
    }

    /// Parses `bytes` into `buffer`'s storage (emptied first; a reader keeps it from one value
    /// to the next, so that a list of thousands does not allocate a tape for each).
    init(parsing bytes: UnsafeBufferPointer<UInt8>, reusing buffer: inout [Node]) throws(SyntaxError) {
        guard bytes.count < Int(Int32.max) else { throw SyntaxError(offset: 0, reason: "longer than 2 GiB") }
        self.bytes = bytes
        swap(&nodes, &buffer)
        nodes.removeAll(keepingCapacity: true)
        nodes.reserveCapacity(bytes.count / 8)
        var i = skipSpace(0)
        i = try value(at: i, depth: 0)
        i = skipSpace(i)
        guard i == bytes.count else { throw SyntaxError(offset: i, reason: "unexpected \(describe(i)) after the value") }
    }

    // MARK: Parsing

    private func skipSpace(_ start: Int) -> Int {
        var i = start
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return i
    }

    private func describe(_ i: Int) -> String {
        guard i < bytes.count else { return "end of input" }
        let byte = bytes[i]
        return byte >= 0x21 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    /// Parses the value at `i` (no leading space) and returns the offset after it.
    private mutating func value(at i: Int, depth: Int) throws(SyntaxError) -> Int {
        guard i < bytes.count else { throw SyntaxError(offset: i, reason: "a value expected, found the end of input") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(at: i, depth: depth + 1)
        case UInt8(ascii: "["): return try array(at: i, depth: depth + 1)
        case UInt8(ascii: "\""): return try string(at: i)
        case UInt8(ascii: "t"): return try literal("true", .true, at: i)
        case UInt8(ascii: "f"): return try literal("false", .false, at: i)
        case UInt8(ascii: "n"): return try literal("null", .null, at: i)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number(at: i)
        default: throw SyntaxError(offset: i, reason: "a value expected, found \(describe(i))")
        }
    }

    private mutating func literal(_ word: StaticString, _ kind: Kind, at i: Int) throws(SyntaxError) -> Int {
        let count = word.utf8CodeUnitCount
        guard i + count <= bytes.count,
              (0..<count).allSatisfy({ bytes[i + $0] == word.utf8Start[$0] }) else {
            throw SyntaxError(offset: i, reason: "a value expected, found \(describe(i))")
        }
        nodes.append(Node(kind: kind, escaped: false, fractional: false, start: Int32(i), end: Int32(i + count), count: 0))
        return i + count
    }

    private mutating func number(at start: Int) throws(SyntaxError) -> Int {
        var i = start
        func digits(_ i: inout Int) -> Int {
            let first = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            return i - first
        }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        let integerStart = i
        let integerDigits = digits(&i)
        guard integerDigits > 0 else { throw SyntaxError(offset: i, reason: "a digit expected, found \(describe(i))") }
        guard integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else {
            throw SyntaxError(offset: integerStart, reason: "a number with a leading zero")
        }
        var fractional = false
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&i) > 0 else { throw SyntaxError(offset: i, reason: "a digit expected after '.', found \(describe(i))") }
            fractional = true
        }
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&i) > 0 else { throw SyntaxError(offset: i, reason: "a digit expected in the exponent, found \(describe(i))") }
            fractional = true
        }
        nodes.append(Node(kind: .number, escaped: false, fractional: fractional, start: Int32(start), end: Int32(i), count: 0))
        return i
    }

    private mutating func string(at quote: Int) throws(SyntaxError) -> Int {
        var i = quote + 1
        var escaped = false
        while true {
            guard i < bytes.count else { throw SyntaxError(offset: quote, reason: "a string without its closing quote") }
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw SyntaxError(offset: i, reason: "a control character in a string (escape it)") }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                i += 1
                guard i < bytes.count else { throw SyntaxError(offset: quote, reason: "a string without its closing quote") }
                switch bytes[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    guard i + 4 < bytes.count, (1...4).allSatisfy({ Self.hexValue(bytes[i + $0]) != nil }) else {
                        throw SyntaxError(offset: i - 1, reason: "\\u without four hexadecimal digits")
                    }
                    i += 4
                default:
                    throw SyntaxError(offset: i - 1, reason: "an unknown escape \\\(describe(i))")
                }
            }
            i += 1
        }
        nodes.append(Node(kind: .string, escaped: escaped, fractional: false, start: Int32(quote + 1), end: Int32(i), count: 0))
        return i + 1
    }

    private mutating func array(at bracket: Int, depth: Int) throws(SyntaxError) -> Int {
        guard depth <= Self.maximumDepth else { throw SyntaxError(offset: bracket, reason: "nested deeper than \(Self.maximumDepth)") }
        let index = nodes.count
        nodes.append(Node(kind: .array, escaped: false, fractional: false, start: Int32(bracket), end: 0, count: 0))
        var count: Int32 = 0
        var i = skipSpace(bracket + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
        } else {
            while true {
                i = skipSpace(try value(at: i, depth: depth))
                count += 1
                guard i < bytes.count else { throw SyntaxError(offset: bracket, reason: "an array without its closing ']'") }
                if bytes[i] == UInt8(ascii: "]") { i += 1; break }
                guard bytes[i] == UInt8(ascii: ",") else { throw SyntaxError(offset: i, reason: "',' or ']' expected, found \(describe(i))") }
                i = skipSpace(i + 1)
            }
        }
        nodes[index].end = Int32(nodes.count)
        nodes[index].count = count
        return i
    }

    private mutating func object(at brace: Int, depth: Int) throws(SyntaxError) -> Int {
        guard depth <= Self.maximumDepth else { throw SyntaxError(offset: brace, reason: "nested deeper than \(Self.maximumDepth)") }
        let index = nodes.count
        nodes.append(Node(kind: .object, escaped: false, fractional: false, start: Int32(brace), end: 0, count: 0))
        var count: Int32 = 0
        var i = skipSpace(brace + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    throw SyntaxError(offset: i, reason: "a member's name (a string) expected, found \(describe(i))")
                }
                i = skipSpace(try string(at: i))
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw SyntaxError(offset: i, reason: "':' expected, found \(describe(i))") }
                i = skipSpace(try value(at: skipSpace(i + 1), depth: depth))
                count += 1
                guard i < bytes.count else { throw SyntaxError(offset: brace, reason: "an object without its closing '}'") }
                if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                guard bytes[i] == UInt8(ascii: ",") else { throw SyntaxError(offset: i, reason: "',' or '}' expected, found \(describe(i))") }
                i = skipSpace(i + 1)
            }
        }
        nodes[index].end = Int32(nodes.count)
        nodes[index].count = count
        return i
    }

    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}

/// A parsed tape read by a decoder: two plain pointers, so that walking an object's members
/// costs no reference counting. Valid while the tape's nodes and bytes are.
struct TapeView {
    typealias Node = JSONTape.Node
    typealias SyntaxError = JSONTape.SyntaxError
    let nodes: UnsafeBufferPointer<Node>
    let bytes: UnsafeBufferPointer<UInt8>

    /// The index of the node after `index`'s value (and its subtree).
    @inline(__always)
    func next(after index: Int) -> Int {
        let node = nodes[index]
        return node.kind == .array || node.kind == .object ? Int(node.end) : index + 1
    }

    /// The bytes of a scalar node (a string's without its quotes).
    @inline(__always)
    func span(_ node: Node) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[Int(node.start)..<Int(node.end)])
    }


    /// The text of a string node: its escapes decoded, its UTF-8 checked.
    func string(_ node: Node) throws(SyntaxError) -> String {
        let raw = span(node)
        if !node.escaped {
            // Most stored text is ASCII, which needs no validation (and String(validating:),
            // being generic, looks its metadata up at every call).
            if raw.allSatisfy({ $0 < 0x80 }) { return String(decoding: raw, as: UTF8.self) }
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw SyntaxError(offset: Int(node.start), reason: "a string that is not UTF-8")
            }
            return text
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        func hex4(_ at: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 << 4 | JSONTape.hexValue(raw[at + $1])! }
        }
        while i < raw.count {
            let byte = raw[i]
            guard byte == UInt8(ascii: "\\") else { out.append(byte); i += 1; continue }
            let escape = raw[i + 1]
            i += 2
            switch escape {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(i)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // A high surrogate: the low half must follow as a second escape.
                    guard i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") else {
                        throw SyntaxError(offset: Int(node.start) + i - 6, reason: "a lone surrogate \\u\(String(scalar, radix: 16))")
                    }
                    let low = hex4(i + 2)
                    guard low >= 0xDC00 && low < 0xE000 else {
                        throw SyntaxError(offset: Int(node.start) + i - 6, reason: "a lone surrogate \\u\(String(scalar, radix: 16))")
                    }
                    scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                    i += 6
                }
                guard let unicode = Unicode.Scalar(scalar) else {
                    throw SyntaxError(offset: Int(node.start) + i - 6, reason: "a lone surrogate \\u\(String(scalar, radix: 16))")
                }
                out.append(contentsOf: UTF8.encode(unicode)!)
            default: out.append(escape)  // " \ /
            }
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw SyntaxError(offset: Int(node.start), reason: "a string that is not UTF-8")
        }
        return text
    }

    /// Whether a string node holds exactly `utf8` (a member's name against a coding key).
    @inline(__always)
    func string(_ node: Node, equals utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        if node.escaped { return (try? string(node))?.utf8.elementsEqual(utf8) ?? false }
        let raw = span(node)
        guard raw.count == utf8.count else { return false }
        return raw.count == 0 || memcmp(raw.baseAddress!, utf8.baseAddress!, raw.count) == 0
    }
}
