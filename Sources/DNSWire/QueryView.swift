/// The parts of a query a server acts on, parsed without allocating: the header, the single
/// question, and the OPT record if there is one. The question name is copied, lower-cased and in
/// uncompressed wire form, into a buffer the caller owns, ready to serve as a lookup key.
public struct QueryView: Sendable {
    public var id: UInt16
    public var flags: UInt16
    public var questionCount: UInt16
    public var answerCount: UInt16
    public var authorityCount: UInt16
    public var additionalCount: UInt16
    /// Octets of the question name in wire form, including the terminating zero.
    public var nameLength: Int
    public var type: RecordType
    public var recordClass: RecordClass
    /// Offset just past the question: where an answer's first record goes.
    public var questionEnd: Int
    public var edns: EDNSSummary?

    /// The OPT record's fixed fields, without its options.
    public struct EDNSSummary: Hashable, Sendable {
        public var udpPayloadSize: UInt16
        public var extendedRCodeBits: UInt8
        public var version: UInt8
        public var isDNSSECOK: Bool
        /// Total bytes of options carried (cookies, padding, ...).
        public var optionsLength: Int
    }

    public var header: Header { Header(id: id, flags: flags) }

    /// A standard query (QR clear, OPCODE QUERY) of EDNS version 0 or without EDNS: what the
    /// pre-encoded answers are for; anything else takes the general path, which decides its rcode.
    public var isPlainQuery: Bool { flags & 0xF800 == 0 && (edns?.version ?? 0) == 0 }

    /// Parses `packet`, writing the lower-cased question name into `nameBuffer`, which must hold
    /// at least 255 bytes.
    ///
    /// Throws `.headerTooShort` when there is no header (a server drops such packets silently)
    /// and any other `WireError` for a bad body (FORMERR). A query must carry exactly one
    /// question; its name may not be compressed.
    public static func parse(_ packet: UnsafeRawBufferPointer,
                             nameBuffer: UnsafeMutableRawBufferPointer) throws(WireError) -> QueryView {
        precondition(nameBuffer.count >= DomainName.maxWireLength, "the name buffer needs 255 bytes")
        var reader = WireReader(bytes: packet)
        guard packet.count >= 12 else { throw .headerTooShort(length: packet.count) }
        let id = try reader.readUInt16()
        let flags = try reader.readUInt16()
        let qd = try reader.readUInt16()
        let an = try reader.readUInt16()
        let ns = try reader.readUInt16()
        let ar = try reader.readUInt16()
        guard qd == 1 else {
            throw .countExceedsMessage(section: .question, count: Int(qd), offset: 12)
        }
        // The first name of a message cannot validly be compressed (a pointer would have to point
        // into the header), so it is copied label by label.
        var length = 0
        while true {
            let labelOffset = reader.offset
            let n = Int(try reader.readUInt8("a name label"))
            if n == 0 { break }
            if n & 0xC0 == 0xC0 {
                throw .forwardPointer(offset: labelOffset, target: (n & 0x3F) << 8 | Int(try reader.readUInt8()))
            }
            guard n & 0xC0 == 0 else { throw .badLabelType(offset: labelOffset, byte: UInt8(n)) }
            guard length + n + 2 <= DomainName.maxWireLength else { throw .nameTooLong(offset: 12) }
            try reader.need(n, "a name label of \(n) octets")
            nameBuffer[length] = UInt8(n)
            for k in 0..<n {
                nameBuffer[length + 1 + k] = asciiLowercase(packet[reader.offset + k])
            }
            reader.offset += n
            length += n + 1
        }
        nameBuffer[length] = 0
        length += 1
        let type = RecordType(try reader.readUInt16("the question type"))
        let recordClass = RecordClass(try reader.readUInt16("the question class"))
        let questionEnd = reader.offset

        var edns: EDNSSummary? = nil
        let total = Int(an) + Int(ns) + Int(ar)
        guard total * 11 <= reader.remaining else {
            throw .countExceedsMessage(section: .additional, count: total, offset: reader.offset)
        }
        for index in 0..<total {
            let start = reader.offset
            try reader.skipName()
            let rrType = try reader.readUInt16("a record type")
            let classField = try reader.readUInt16("a record class")
            let ttl = try reader.readUInt32("a record TTL")
            let rdLength = Int(try reader.readUInt16("a record RDLENGTH"))
            try reader.need(rdLength, "record data of \(rdLength) bytes")
            if rrType == RecordType.opt.rawValue {
                guard index >= Int(an) + Int(ns) else { throw .badOPT(offset: start, reason: "OPT record outside the additional section") }
                guard edns == nil else { throw .badOPT(offset: start, reason: "more than one OPT record") }
                guard packet[start] == 0 else { throw .badOPT(offset: start, reason: "owner is not the root") }
                // Options must tile RDLENGTH exactly.
                var p = reader.offset
                let end = p + rdLength
                while p < end {
                    guard end - p >= 4 else { throw .badOPT(offset: p, reason: "option header runs past RDLENGTH") }
                    let optionLength = Int(packet[p + 2]) << 8 | Int(packet[p + 3])
                    guard optionLength <= end - p - 4 else {
                        throw .badOPT(offset: p, reason: "option of \(optionLength) bytes runs past RDLENGTH")
                    }
                    p += 4 + optionLength
                }
                edns = EDNSSummary(udpPayloadSize: classField, extendedRCodeBits: UInt8(ttl >> 24),
                                   version: UInt8(ttl >> 16 & 0xFF), isDNSSECOK: ttl & 0x8000 != 0,
                                   optionsLength: rdLength)
            }
            reader.offset += rdLength
        }
        guard reader.remaining == 0 else { throw .trailingBytes(offset: reader.offset, count: reader.remaining) }
        return QueryView(id: id, flags: flags, questionCount: qd, answerCount: an, authorityCount: ns,
                         additionalCount: ar, nameLength: length, type: type, recordClass: recordClass,
                         questionEnd: questionEnd, edns: edns)
    }
}
