/// Records encoded once, to be written later into replies whose question ends with a zone's
/// apex: the negative answers' SOA of a pre-encoded zone. They are encoded after a question that
/// is the apex itself, as `Message.encode(into:maxSize:questionSuffixLabels:)` writes records
/// after a question whose apex is open to compression; `write` moves each compression pointer
/// into the question by where the apex starts in the real question, and each pointer into the
/// records by where the records start. The result is the general path's bytes for the same
/// records after that question.
public struct RecordTemplate: Sendable {
    /// The records' bytes as encoded after the apex question.
    let bytes: [UInt8]
    /// Where the records started in that message (12 + the apex's wire length + 4).
    let start: Int
    /// Offsets in `bytes` of compression pointers: into the question (`intoQuestion`), or
    /// into the records themselves.
    let pointers: [(offset: Int, intoQuestion: Bool)]
    public let count: Int

    public init(_ records: [ResourceRecord], apex: DomainName) {
        var writer = WireWriter(capacity: 512)
        for _ in 0..<6 { writer.writeUInt16(0) }
        writer.writeQuestionName(apex.lowercased, suffixLabels: apex.labelCount)
        writer.writeUInt32(0)
        let start = writer.count
        for record in records { record.encode(into: &writer) }
        let message = writer.bytes
        var pointers: [(offset: Int, intoQuestion: Bool)] = []
        message.withUnsafeBytes { raw in
            var reader = WireReader(bytes: raw, offset: start)
            func name() throws(WireError) {
                guard let at = try reader.skipNameInPlace() else { return }
                let target = Int(raw[at] & 0x3F) << 8 | Int(raw[at + 1])
                pointers.append((at - start, target < start))
            }
            do {
                for _ in records {
                    try name()
                    let type = RecordType(try reader.readUInt16())
                    reader.offset += 6
                    let length = Int(try reader.readUInt16())
                    let end = reader.offset + length
                    // The types whose names the writer compresses (RFC 3597 §4).
                    switch type {
                    case .soa: try name(); try name()
                    case .ns, .cname, .ptr: try name()
                    case .mx: reader.offset += 2; try name()
                    default: break
                    }
                    reader.offset = end
                }
            } catch {
                pointers = []
            }
        }
        bytes = Array(message[start...])
        self.start = start
        self.pointers = pointers
        count = records.count
    }

    /// Writes the records at `offset` of `buffer`, after a question whose apex begins at
    /// `apexOffset`. Returns the bytes written; nil when `limit` leaves no room.
    public func write(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, apexOffset: Int, limit: Int) -> Int? {
        guard offset + bytes.count <= min(limit, buffer.count) else { return nil }
        bytes.withUnsafeBytes { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let questionShift = apexOffset - 12
        let recordShift = offset - start
        for pointer in pointers {
            let at = offset + pointer.offset
            let old = Int(buffer[at] & 0x3F) << 8 | Int(buffer[at + 1])
            let moved = old + (pointer.intoQuestion ? questionShift : recordShift)
            guard moved < 0x4000 else { return nil }
            buffer[at] = 0xC0 | UInt8(moved >> 8)
            buffer[at + 1] = UInt8(moved & 0xFF)
        }
        return bytes.count
    }
}
