extension ResourceRecord {
    /// The length and number of the leading records of `count` encoded records in `bytes`
    /// that fit in `room` bytes; nil when all of them fit (what overflows comes after them) or
    /// the bytes do not parse. Names may end in compression pointers (to anywhere: they are
    /// not followed).
    public static func leadingRecords(in bytes: UnsafeRawBufferPointer, count: Int, fitting room: Int) -> (length: Int, records: Int)? {
        var reader = WireReader(bytes: bytes)
        var end = 0
        do {
            for record in 0..<count {
                try reader.skipRecord()
                if reader.offset > room { return (end, record) }
                end = reader.offset
            }
        } catch {
            return nil
        }
        return nil
    }

    /// The target of the last of `count` records starting at `start` of `message`, when that
    /// record is a CNAME; nil otherwise or when the bytes do not parse.
    public static func lastCNAMETarget(in message: UnsafeRawBufferPointer, recordsAt start: Int, count: Int) -> DomainName? {
        var reader = WireReader(bytes: message, offset: start)
        do {
            for record in 0..<count {
                try reader.skipName()
                let type = try reader.readUInt16()
                reader.offset += 6  // class, TTL
                let length = Int(try reader.readUInt16())
                guard reader.remaining >= length else { return nil }
                if record == count - 1 {
                    guard type == RecordType.cname.rawValue else { return nil }
                    return try reader.readName()
                }
                reader.offset += length
            }
        } catch {
            return nil
        }
        return nil
    }
}
