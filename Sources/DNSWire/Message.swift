/// A DNS message (RFC 1035 §4). The OPT pseudo-record lives in `edns`, never in `additionals`.
public struct Message: Hashable, Sendable {
    public var header: Header
    public var questions: [Question]
    public var answers: [ResourceRecord]
    public var authorities: [ResourceRecord]
    public var additionals: [ResourceRecord]
    public var edns: EDNS?

    public init(header: Header = Header(), questions: [Question] = [], answers: [ResourceRecord] = [],
                authorities: [ResourceRecord] = [], additionals: [ResourceRecord] = [], edns: EDNS? = nil) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
        self.edns = edns
    }

    /// The full response code: the header's four bits and, with EDNS, the OPT record's eight.
    public var rcode: ResponseCode {
        get { ResponseCode(rawValue: UInt16(edns?.extendedRCodeBits ?? 0) << 4 | UInt16(header.rcodeBits)) }
        set {
            header.rcodeBits = newValue.headerBits
            edns?.extendedRCodeBits = newValue.extendedBits
        }
    }
}

// MARK: Decoding

extension Message {
    /// Decodes a whole message. Never traps: every inconsistency is a `WireError` with its offset.
    public init(decoding bytes: [UInt8]) throws(WireError) {
        // Array's withUnsafeBytes rethrows untyped errors; the closure throws only WireError.
        do {
            self = try bytes.withUnsafeBytes { raw throws(WireError) in try Message(decoding: raw) }
        } catch let error as WireError {
            throw error
        } catch {
            throw .truncated(offset: 0, what: "a message (\(error))")
        }
    }

    /// Decodes a whole message from borrowed bytes.
    public init(decoding raw: UnsafeRawBufferPointer) throws(WireError) {
        var reader = WireReader(bytes: raw)
        self = try Self.read(from: &reader)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        self = try Self.read(from: &reader)
    }

    static func read(from reader: inout WireReader) throws(WireError) -> Message {
        guard reader.remaining >= 12 else { throw .headerTooShort(length: reader.remaining) }
        let id = try reader.readUInt16()
        let header = Header(id: id, flags: try reader.readUInt16())
        let qdCount = Int(try reader.readUInt16())
        let anCount = Int(try reader.readUInt16())
        let nsCount = Int(try reader.readUInt16())
        let arCount = Int(try reader.readUInt16())

        // A question takes at least 5 bytes and a record at least 11: refuse counts that cannot fit
        // before allocating for them.
        guard qdCount * 5 <= reader.remaining else {
            throw .countExceedsMessage(section: .question, count: qdCount, offset: reader.offset)
        }
        var questions: [Question] = []
        questions.reserveCapacity(qdCount)
        for _ in 0..<qdCount { questions.append(try Question(from: &reader)) }

        var edns: EDNS? = nil
        let answers = try Self.readSection(.answer, count: anCount, from: &reader, edns: &edns)
        let authorities = try Self.readSection(.authority, count: nsCount, from: &reader, edns: &edns)
        let additionals = try Self.readSection(.additional, count: arCount, from: &reader, edns: &edns)
        guard reader.remaining == 0 else {
            throw .trailingBytes(offset: reader.offset, count: reader.remaining)
        }
        return Message(header: header, questions: questions, answers: answers, authorities: authorities,
                       additionals: additionals, edns: edns)
    }

    static func readSection(_ section: WireError.Section, count: Int, from reader: inout WireReader,
                            edns: inout EDNS?) throws(WireError) -> [ResourceRecord] {
        guard count * 11 <= reader.remaining else {
            throw .countExceedsMessage(section: section, count: count, offset: reader.offset)
        }
        var records: [ResourceRecord] = []
        records.reserveCapacity(count)
        for _ in 0..<count {
            let start = reader.offset
            let name = try reader.readName()
            let type = RecordType(try reader.readUInt16("a record type"))
            if type == .opt {
                guard section == .additional else {
                    throw .badOPT(offset: start, reason: "OPT record in the \(section.rawValue) section")
                }
                guard edns == nil else { throw .badOPT(offset: start, reason: "more than one OPT record") }
                guard name.isRoot else { throw .badOPT(offset: start, reason: "owner is \(name), not the root") }
                edns = try EDNS(afterType: &reader, recordOffset: start)
                continue
            }
            let recordClass = RecordClass(try reader.readUInt16("a record class"))
            let ttl = try reader.readUInt32("a record TTL")
            let length = Int(try reader.readUInt16("a record RDLENGTH"))
            let data = try RecordData(type: type, from: &reader, length: length)
            records.append(ResourceRecord(name: name, recordClass: recordClass, ttl: ttl, data: data))
        }
        return records
    }
}

// MARK: Encoding

extension Message {
    /// Encodes the message in at most `maxSize` bytes (at least 512 is used).
    ///
    /// When everything does not fit, the largest valid message that does is built: records are
    /// kept in order; if answer or authority data is cut, TC is set and nothing after it is
    /// written (RFC 2181 §9 allows the partial RRset, and a stub that cannot retry over TCP gets
    /// the most data); additional RRsets that do not fit whole are left out without TC. The OPT
    /// record is always kept. Returns whether TC was set.
    ///
    /// `questionSuffixLabels`: later names may point only to the question's last that many
    /// labels, or to the whole question for names that echo it (`WireWriter.writeQuestionName`);
    /// nil: to any suffix of it.
    @discardableResult
    public func encode(into writer: inout WireWriter, maxSize: Int = 65535, questionSuffixLabels: Int? = nil) -> Bool {
        writer.reset()
        let limit = max(512, min(maxSize, 65535)) - (edns?.wireLength ?? 0)
        var header = header
        writer.writeUInt16(header.id)
        writer.writeUInt16(header.flags)
        writer.writeUInt16(0)
        writer.writeUInt16(0)
        writer.writeUInt16(0)
        writer.writeUInt16(0)

        var counts = (0, 0, 0, 0)
        var truncated = false
        for question in questions {
            let mark = writer.count
            question.encode(into: &writer, suffixLabels: questionSuffixLabels)
            if writer.count > limit {
                writer.rollBack(to: mark)
                truncated = true
                break
            }
            counts.0 += 1
        }
        if !truncated {
            let (n, cut) = Self.writeSection(answers, into: &writer, limit: limit, wholeRRsets: false)
            counts.1 = n
            truncated = cut
        }
        if !truncated {
            let (n, cut) = Self.writeSection(authorities, into: &writer, limit: limit, wholeRRsets: false)
            counts.2 = n
            truncated = cut
        }
        if !truncated {
            counts.3 = Self.writeSection(additionals, into: &writer, limit: limit, wholeRRsets: true).written
        }
        if let edns {
            var edns = edns
            edns.extendedRCodeBits = rcode.extendedBits
            edns.encode(into: &writer)
            counts.3 += 1
        }
        if truncated {
            header.isTruncated = true
            writer.setUInt16(header.flags, at: 2)
        }
        writer.setUInt16(UInt16(counts.0), at: 4)
        writer.setUInt16(UInt16(counts.1), at: 6)
        writer.setUInt16(UInt16(counts.2), at: 8)
        writer.setUInt16(UInt16(counts.3), at: 10)
        return truncated
    }

    /// Writes records in order until one does not fit. With `wholeRRsets`, a partly written
    /// RRset is removed again (for the additional section, where no TC bit tells the reader that
    /// something is missing); otherwise every record that fits stays, TC telling the rest.
    static func writeSection(_ records: [ResourceRecord], into writer: inout WireWriter,
                             limit: Int, wholeRRsets: Bool) -> (written: Int, truncated: Bool) {
        // Through the buffer, each record is borrowed where it lies instead of copied out first.
        records.withUnsafeBufferPointer { records in
            var written = 0
            var rrsetStart = (offset: writer.count, count: 0)
            for index in records.indices {
                if wholeRRsets && index > 0 && !records[index].isSameRRset(as: records[index - 1]) {
                    rrsetStart = (writer.count, written)
                }
                let mark = writer.count
                ResourceRecord.encode(records.baseAddress! + index, into: &writer)
                if writer.count > limit {
                    if wholeRRsets {
                        writer.rollBack(to: rrsetStart.offset)
                        return (rrsetStart.count, true)
                    }
                    writer.rollBack(to: mark)
                    return (written, true)
                }
                written += 1
            }
            return (written, false)
        }
    }

    /// Encodes into a new array (convenience; servers reuse a `WireWriter`).
    public func encoded(maxSize: Int = 65535) -> [UInt8] {
        var writer = WireWriter(capacity: 512)
        encode(into: &writer, maxSize: maxSize)
        return writer.bytes
    }
}

// MARK: Presentation

extension Message: CustomStringConvertible {
    /// A dig-like rendering: header line, flags, then each section in zone-file syntax.
    public var description: String {
        var flagNames: [String] = []
        if header.isResponse { flagNames.append("qr") }
        if header.isAuthoritative { flagNames.append("aa") }
        if header.isTruncated { flagNames.append("tc") }
        if header.isRecursionDesired { flagNames.append("rd") }
        if header.isRecursionAvailable { flagNames.append("ra") }
        if header.isAuthenticData { flagNames.append("ad") }
        if header.isCheckingDisabled { flagNames.append("cd") }
        var lines = [
            ";; opcode: \(header.opcode), status: \(rcode), id: \(header.id)",
            ";; flags: \(flagNames.joined(separator: " ")); QUERY: \(questions.count), ANSWER: \(answers.count), AUTHORITY: \(authorities.count), ADDITIONAL: \(additionals.count + (edns == nil ? 0 : 1))",
        ]
        if let edns {
            lines.append(";; EDNS: version: \(edns.version), flags:\(edns.isDNSSECOK ? " do" : ""); udp: \(edns.udpPayloadSize)")
            for option in edns.options {
                lines.append(";; \(option.code): \(RecordData.genericPresentation(option.data))")
            }
        }
        if !questions.isEmpty {
            lines.append(";; QUESTION SECTION:")
            lines += questions.map { ";\($0)" }
        }
        for (title, records) in [("ANSWER", answers), ("AUTHORITY", authorities), ("ADDITIONAL", additionals)]
        where !records.isEmpty {
            lines.append(";; \(title) SECTION:")
            lines += records.map(\.description)
        }
        return lines.joined(separator: "\n")
    }
}
