/// Certification authority authorization (RFC 8659).
public struct CAA: Hashable, Sendable, CustomStringConvertible {
    public var flags: UInt8
    /// The property tag: 1 to 15 ASCII letters and digits.
    public private(set) var tag: [UInt8]
    public var value: [UInt8]

    public var isCritical: Bool { flags & 0x80 != 0 }

    public init(flags: UInt8, tag: String, value: [UInt8]) throws(WireError) {
        let bytes = Array(tag.utf8)
        guard Self.isValidTag(bytes) else {
            throw .invalidValue(tag, reason: "a CAA tag is 1 to 15 ASCII letters and digits")
        }
        self.flags = flags
        self.tag = bytes
        self.value = value
    }

    static func isValidTag(_ tag: [UInt8]) -> Bool {
        (1...15).contains(tag.count) && tag.allSatisfy {
            (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)
        }
    }

    init(from reader: inout WireReader) throws(WireError) {
        flags = try reader.readUInt8("CAA flags")
        let start = reader.offset
        let n = Int(try reader.readUInt8("CAA tag length"))
        tag = try reader.readBytes(n, "CAA tag")
        guard Self.isValidTag(tag) else {
            throw .badRDataLength(type: .caa, offset: start, length: n, reason: "a CAA tag is 1 to 15 ASCII letters and digits")
        }
        value = try reader.readBytes(reader.remaining, "CAA value")
    }

    func encode(into writer: inout WireWriter) {
        writer.writeUInt8(flags)
        writer.writeUInt8(UInt8(tag.count))
        writer.writeBytes(tag)
        writer.writeBytes(value)
    }

    public var description: String {
        "\(flags) \(String(decoding: tag, as: UTF8.self)) \(quoted(value))"
    }
}
