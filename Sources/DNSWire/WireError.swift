/// Everything that can be wrong with DNS data: a message on the wire, or a name or value in text.
/// Decoding cases carry the byte offset where the problem was found.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Fewer than 12 bytes: not even a header.
    case headerTooShort(length: Int)
    /// The data ended while `what` was being read at `offset`.
    case truncated(offset: Int, what: String)
    /// A label length byte with the reserved 0x40 or 0x80 bits.
    case badLabelType(offset: Int, byte: UInt8)
    /// A decoded name would exceed 255 octets.
    case nameTooLong(offset: Int)
    /// A compression pointer pointing at or after itself, or into the header.
    case forwardPointer(offset: Int, target: Int)
    /// A pointer pointing at itself or a cycle of pointers.
    case pointerLoop(offset: Int)
    /// More compression pointers in one name than any valid name needs.
    case tooManyPointers(offset: Int)
    /// A record's RDLENGTH does not fit what its type requires.
    case badRDataLength(type: RecordType, offset: Int, length: Int, reason: String)
    /// A section announces more entries than the remaining bytes could hold.
    case countExceedsMessage(section: Section, count: Int, offset: Int)
    /// Bytes left after the last announced record.
    case trailingBytes(offset: Int, count: Int)
    /// An OPT record outside the additional section, twice, or not owned by the root.
    case badOPT(offset: Int, reason: String)
    /// A name in presentation or Unicode form that cannot be a domain name.
    case invalidName(String, reason: String)
    /// A value that does not fit its field (for instance a TXT string over 255 octets).
    case invalidValue(String, reason: String)

    public enum Section: String, Hashable, Sendable {
        case question, answer, authority, additional
    }

    public var description: String {
        switch self {
        case .headerTooShort(let length):
            "message of \(length) bytes is shorter than the 12-byte header"
        case .truncated(let offset, let what):
            "message ends at offset \(offset) while reading \(what)"
        case .badLabelType(let offset, let byte):
            "unsupported label type 0x\(String(byte, radix: 16)) at offset \(offset)"
        case .nameTooLong(let offset):
            "name starting at offset \(offset) exceeds 255 octets"
        case .forwardPointer(let offset, let target):
            "compression pointer at offset \(offset) points forward or into the header (target \(target))"
        case .pointerLoop(let offset):
            "compression pointer at offset \(offset) loops"
        case .tooManyPointers(let offset):
            "too many compression pointers in the name at offset \(offset)"
        case .badRDataLength(let type, let offset, let length, let reason):
            "\(type) record data at offset \(offset) with RDLENGTH \(length): \(reason)"
        case .countExceedsMessage(let section, let count, let offset):
            "\(section.rawValue) section at offset \(offset) announces \(count) entries, more than the remaining bytes can hold"
        case .trailingBytes(let offset, let count):
            "\(count) unexpected bytes after the last record at offset \(offset)"
        case .badOPT(let offset, let reason):
            "OPT record at offset \(offset): \(reason)"
        case .invalidName(let text, let reason):
            "invalid domain name \"\(text)\": \(reason)"
        case .invalidValue(let text, let reason):
            "invalid value \"\(text)\": \(reason)"
        }
    }
}
