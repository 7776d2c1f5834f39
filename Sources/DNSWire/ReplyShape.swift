/// What every reply to one query shares, derived once from the parsed query and the transport it
/// came over: the header bits it copies (ID, opcode, RD, CD), the RA bit the server grants, the
/// OPT record it carries (our payload size and the query's DO bit, RFC 3225; none when the query
/// had none), and the size it must fit in (the EDNS payload size, 512 without EDNS, at most our
/// own UDP maximum; 65535 over TCP).
///
/// Every writer of replies takes these from here: the pre-encoded fast paths write the header
/// word and the OPT bytes through `flags(...)` and `writeOPT(...)`, the general path builds its
/// `Message` from `message(...)`. A reply bit or an OPT field is decided in this one place.
public struct ReplyShape: Hashable, Sendable {
    public enum Transport: Hashable, Sendable { case udp, tcp }

    /// The reply's OPT record: our payload size, the query's DO bit.
    public struct OPT: Hashable, Sendable {
        public var payloadSize: UInt16
        public var isDNSSECOK: Bool
    }

    public var id: UInt16
    /// The query's OPCODE, RD and CD bits, in their places in the flags word.
    public var copiedFlags: UInt16
    public var isRecursionAvailable: Bool
    /// Nil when the query carried no OPT record: the reply carries none either.
    public var opt: OPT?
    /// The most bytes the reply may take.
    public var limit: Int

    /// Bytes of the OPT record the reply ends with.
    public var optLength: Int { opt == nil ? 0 : Self.optRecordLength }
    public static let optRecordLength = 11
    public var isDNSSECOK: Bool { opt?.isDNSSECOK ?? false }
    public var isCheckingDisabled: Bool { copiedFlags & 0x0010 != 0 }
    public var isRecursionDesired: Bool { copiedFlags & 0x0100 != 0 }

    /// `queryFlags`: the query's flags word. `payloadSize`/`isDNSSECOK`: its OPT record's
    /// fields, nil payload for no OPT. `maxUDPPayload`: the largest UDP reply we send.
    public init(id: UInt16, queryFlags: UInt16, payloadSize: UInt16?, isDNSSECOK: Bool, transport: Transport,
                maxUDPPayload: Int, recursionAvailable: Bool) {
        self.id = id
        copiedFlags = queryFlags & 0x7910  // OPCODE, RD, CD
        isRecursionAvailable = recursionAvailable
        opt = payloadSize.map { _ in OPT(payloadSize: UInt16(clamping: maxUDPPayload), isDNSSECOK: isDNSSECOK) }
        switch transport {
        case .tcp: limit = 65535
        case .udp: limit = min(max(512, maxUDPPayload), max(512, Int(payloadSize ?? 512)))
        }
    }

    /// The shape of the replies to a query parsed by `QueryView`.
    public init(_ view: QueryView, transport: Transport, maxUDPPayload: Int, recursionAvailable: Bool) {
        self.init(id: view.id, queryFlags: view.flags, payloadSize: view.edns?.udpPayloadSize,
                  isDNSSECOK: view.edns?.isDNSSECOK ?? false, transport: transport,
                  maxUDPPayload: maxUDPPayload, recursionAvailable: recursionAvailable)
    }

    /// The shape of the replies to a decoded query.
    public init(_ query: Message, transport: Transport, maxUDPPayload: Int, recursionAvailable: Bool) {
        self.init(id: query.header.id, queryFlags: query.header.flags, payloadSize: query.edns?.udpPayloadSize,
                  isDNSSECOK: query.edns?.isDNSSECOK ?? false, transport: transport,
                  maxUDPPayload: maxUDPPayload, recursionAvailable: recursionAvailable)
    }

    /// The reply's flags word: QR, the copied bits, RA as granted, and the rest as given
    /// (the low four bits of `rcode`).
    @inline(__always)
    public func flags(rcode: ResponseCode, isAuthoritative: Bool, isTruncated: Bool = false,
                      isAuthenticData: Bool = false) -> UInt16 {
        0x8000 | copiedFlags | (isRecursionAvailable ? 0x0080 : 0) | (isAuthoritative ? 0x0400 : 0)
            | (isTruncated ? 0x0200 : 0) | (isAuthenticData ? 0x0020 : 0) | UInt16(rcode.rawValue & 0x0F)
    }

    /// Writes the reply's header at the start of `buffer` (at least 12 bytes): the ID, the flags
    /// word (`flags(...)`), one question, and the three record counts, the OPT record counted
    /// in the additional section when the reply carries one.
    @inline(__always)
    public func writeHeader(into buffer: UnsafeMutableRawBufferPointer, rcode: ResponseCode, isAuthoritative: Bool,
                            isTruncated: Bool = false, isAuthenticData: Bool = false,
                            counts: (answer: UInt16, authority: UInt16, additional: UInt16)) {
        let flags = flags(rcode: rcode, isAuthoritative: isAuthoritative, isTruncated: isTruncated, isAuthenticData: isAuthenticData)
        let additional = counts.additional + (opt == nil ? 0 : 1)
        for (i, word) in [id, flags, 1, counts.answer, counts.authority, additional].enumerated() {
            buffer[2 * i] = UInt8(word >> 8)
            buffer[2 * i + 1] = UInt8(word & 0xFF)
        }
    }

    /// Writes the reply's OPT record at `offset` (extended RCODE bits zero: the fast paths
    /// answer NOERROR and NXDOMAIN only). Returns the bytes written: 0 without OPT, nil when
    /// `buffer` has no room.
    @inline(__always)
    public func writeOPT(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int? {
        guard let opt else { return 0 }
        guard offset + Self.optRecordLength <= buffer.count else { return nil }
        buffer[offset] = 0                                          // owner: the root
        buffer[offset + 1] = 0; buffer[offset + 2] = 41              // TYPE OPT
        buffer[offset + 3] = UInt8(opt.payloadSize >> 8)            // CLASS: payload size
        buffer[offset + 4] = UInt8(opt.payloadSize & 0xFF)
        buffer[offset + 5] = 0; buffer[offset + 6] = 0               // extended RCODE, version
        buffer[offset + 7] = opt.isDNSSECOK ? 0x80 : 0; buffer[offset + 8] = 0  // DO, Z
        buffer[offset + 9] = 0; buffer[offset + 10] = 0              // RDLENGTH
        return Self.optRecordLength
    }

    /// The reply as a `Message` with no records yet: the header (AA clear, NOERROR) and the OPT
    /// record, to be filled and encoded with `encode(_:into:)`.
    public func message(questions: [Question]) -> Message {
        Message(header: Header(id: id, flags: flags(rcode: .noError, isAuthoritative: false)), questions: questions,
                edns: opt.map { EDNS(udpPayloadSize: $0.payloadSize, isDNSSECOK: $0.isDNSSECOK) })
    }

    /// A reply written in this shape as a cache keeps it, for any client's shape to write again
    /// (`writeHeader`, `writeOPT`, the client's question copied over): the ID zero, the
    /// question's letters lower-cased, the OPT record the shape ended it with removed and
    /// not counted. Nil for a reply that does not end in that record, or is truncated.
    public func unshaped(_ reply: [UInt8], questionEnd: Int) -> [UInt8]? {
        // A question is at least the root's zero, a type and a class.
        guard questionEnd >= 17, reply.count >= questionEnd, reply[2] & 0x02 == 0 else { return nil }
        var stored = reply
        if opt != nil {
            let additional = Int(reply[10]) << 8 | Int(reply[11])
            guard additional > 0, reply.count >= questionEnd + Self.optRecordLength,
                  reply[reply.count - Self.optRecordLength] == 0,
                  reply[reply.count - Self.optRecordLength + 2] == 41 else { return nil }
            stored.removeLast(Self.optRecordLength)
            stored[10] = UInt8((additional - 1) >> 8)
            stored[11] = UInt8((additional - 1) & 0xFF)
        }
        stored[0] = 0
        stored[1] = 0
        // The name's letters (a label's length byte is at most 63, below every letter).
        for i in 12..<(questionEnd - 4) where stored[i] >= 0x41 && stored[i] <= 0x5A { stored[i] |= 0x20 }
        return stored
    }

    /// Encodes `reply` within the limit (see `Message.encode(into:maxSize:questionSuffixLabels:)`).
    @discardableResult
    public func encode(_ reply: Message, into writer: inout WireWriter, questionSuffixLabels: Int? = nil) -> Bool {
        reply.encode(into: &writer, maxSize: limit, questionSuffixLabels: questionSuffixLabels)
    }
}
