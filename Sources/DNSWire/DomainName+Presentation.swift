extension DomainName {
    /// Parses presentation format (RFC 1035 §5.1): labels separated by dots, `\X` for a literal
    /// character, `\DDD` for a byte in decimal. A trailing dot makes the name absolute; `.` is the root.
    public init(_ text: some StringProtocol) throws(WireError) {
        try self.init(presentationBytes: Array(text.utf8), original: String(text))
    }

    /// Parses presentation format from bytes (the zone-file lexer's tokens).
    public init(presentationBytes text: [UInt8], original: @autoclosure () -> String) throws(WireError) {
        try self.init(presentationBytes: text[...], origin: nil, original: original())
    }

    /// Parses presentation format from bytes; a relative name is completed with `origin` when
    /// one is given, in the same pass (one allocation).
    public init(presentationBytes text: ArraySlice<UInt8>, origin: DomainName?,
                original: @autoclosure () -> String) throws(WireError) {
        if text.count == 1 && text.first == UInt8(ascii: ".") {
            self = .root
            return
        }
        guard !text.isEmpty else { throw .invalidName(original(), reason: "empty name") }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count + 1 + (origin?.storage.count ?? 0))
        var labelStart = 0
        bytes.append(0)
        var i = text.startIndex
        let end = text.endIndex
        var absolute = false
        while i < end {
            let c = text[i]
            if c == UInt8(ascii: ".") {
                let length = bytes.count - labelStart - 1
                guard length > 0 else { throw .invalidName(original(), reason: "empty label") }
                bytes[labelStart] = UInt8(length)
                if i == end - 1 {
                    absolute = true
                    i += 1
                    break
                }
                labelStart = bytes.count
                bytes.append(0)
                i += 1
                continue
            }
            var byte = c
            if c == UInt8(ascii: "\\") {
                guard i + 1 < end else {
                    throw .invalidName(original(), reason: "backslash at the end")
                }
                let d = text[i + 1]
                if isDigit(d) {
                    guard i + 3 < end, isDigit(text[i + 2]), isDigit(text[i + 3]) else {
                        throw .invalidName(original(), reason: "\\DDD escape needs exactly three digits")
                    }
                    let value = Int(d - 48) * 100 + Int(text[i + 2] - 48) * 10 + Int(text[i + 3] - 48)
                    guard value <= 255 else {
                        throw .invalidName(original(), reason: "\\DDD escape \(value) is larger than 255")
                    }
                    byte = UInt8(value)
                    i += 4
                } else {
                    byte = d
                    i += 2
                }
            } else {
                i += 1
            }
            bytes.append(byte)
            guard bytes.count - labelStart - 1 <= Self.maxLabelLength else {
                throw .invalidName(original(), reason: "label longer than 63 octets")
            }
        }
        if !absolute {
            let length = bytes.count - labelStart - 1
            guard length > 0 else { throw .invalidName(original(), reason: "empty label") }
            bytes[labelStart] = UInt8(length)
            if let origin {
                bytes.append(contentsOf: origin.storage)
                absolute = origin.isAbsolute
            }
        }
        guard bytes.count + 1 <= Self.maxWireLength else {
            throw .invalidName(original(), reason: "name longer than 255 octets")
        }
        self.init(uncheckedStorage: bytes, isAbsolute: absolute)
    }

    /// Presentation format with RFC 1035 escapes; absolute names end in a dot.
    public var description: String {
        if storage.isEmpty { return isAbsolute ? "." : "" }
        var out = Self.describe(storage)
        if isAbsolute { out += "." }
        return out
    }

    /// Writes length-prefixed labels as dotted text with escapes (no trailing dot).
    static func describe(_ storage: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(storage.count + 8)
        var i = 0
        while i < storage.count {
            let n = Int(storage[i])
            if i > 0 { out.append(UInt8(ascii: ".")) }
            var j = i + 1
            while j <= i + n && j < storage.count {
                appendEscaped(storage[j], to: &out)
                j += 1
            }
            i += n + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends one label byte in presentation form: specials get a backslash,
    /// non-printables become `\DDD`.
    static func appendEscaped(_ byte: UInt8, to out: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "."), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: ";"),
             UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "@"), UInt8(ascii: "$"):
            out.append(UInt8(ascii: "\\"))
            out.append(byte)
        case 0x21...0x7E:
            out.append(byte)
        default:
            appendDecimalEscape(byte, to: &out)
        }
    }
}

func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

func appendDecimalEscape(_ byte: UInt8, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\\"))
    out.append(48 + byte / 100)
    out.append(48 + byte / 10 % 10)
    out.append(48 + byte % 10)
}
