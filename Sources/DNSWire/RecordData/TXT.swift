/// Text strings (RFC 1035 §3.3.14): one or more character-strings of up to 255 octets each.
public struct TXT: Hashable, Sendable, CustomStringConvertible {
    public private(set) var strings: [[UInt8]]

    /// From character-strings, each at most 255 octets.
    public init(strings: [[UInt8]]) throws(WireError) {
        for s in strings where s.count > 255 {
            throw .invalidValue(String(decoding: s, as: UTF8.self), reason: "a character-string holds at most 255 octets")
        }
        self.strings = strings.isEmpty ? [[]] : strings
    }

    /// From one text of any length, split into 255-octet character-strings.
    public init(splitting text: some Collection<UInt8>) {
        var out: [[UInt8]] = []
        var rest = text[...]
        repeat {
            out.append(Array(rest.prefix(255)))
            rest = rest.dropFirst(255)
        } while !rest.isEmpty
        strings = out
    }

    /// From several texts, each split into 255-octet character-strings as needed.
    public init(splittingEach texts: [[UInt8]]) {
        strings = texts.isEmpty ? [[]] : texts.flatMap { TXT(splitting: $0).strings }
    }

    public init(_ text: String) { self.init(splitting: Array(text.utf8)) }

    init(from reader: inout WireReader) throws(WireError) {
        var out: [[UInt8]] = []
        // RFC 1035 needs at least one string; an empty RDATA is refused.
        repeat {
            let n = Int(try reader.readUInt8("a TXT string length"))
            out.append(try reader.readBytes(n, "a TXT string"))
        } while reader.remaining > 0
        strings = out
    }

    func encode(into writer: inout WireWriter) {
        for s in strings {
            writer.writeUInt8(UInt8(s.count))
            writer.writeBytes(s)
        }
    }

    public var description: String {
        strings.map(quoted).joined(separator: " ")
    }
}

/// A character-string in presentation form: quoted, with `"` and `\` escaped and
/// non-printable bytes as `\DDD`.
func quoted(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    out.reserveCapacity(bytes.count + 2)
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            out.append(UInt8(ascii: "\\"))
            out.append(byte)
        case 0x20...0x7E:
            out.append(byte)
        default:
            appendDecimalEscape(byte, to: &out)
        }
    }
    out.append(UInt8(ascii: "\""))
    return String(decoding: out, as: UTF8.self)
}
