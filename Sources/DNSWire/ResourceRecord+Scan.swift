extension ResourceRecord {
    /// Writes a TTL field at `offset` of an encoded message (one of `ttlOffsets`).
    @inline(__always)
    public static func setTTL(_ ttl: UInt32, at offset: Int, in message: UnsafeMutableRawBufferPointer) {
        message[offset] = UInt8(ttl >> 24)
        message[offset + 1] = UInt8((ttl >> 16) & 0xFF)
        message[offset + 2] = UInt8((ttl >> 8) & 0xFF)
        message[offset + 3] = UInt8(ttl & 0xFF)
    }

    /// The offset and value of the TTL field of every record after the question of a whole
    /// message (one question, no compression pointer followed); nil when the bytes do not parse.
    public static func ttlOffsets(inMessage message: UnsafeRawBufferPointer) -> [(offset: Int, ttl: UInt32)]? {
        guard message.count >= 12 else { return nil }
        let records = (Int(message[6]) << 8 | Int(message[7])) + (Int(message[8]) << 8 | Int(message[9]))
            + (Int(message[10]) << 8 | Int(message[11]))
        var reader = WireReader(bytes: message, offset: 12)
        var out: [(offset: Int, ttl: UInt32)] = []
        do {
            try reader.skipNameInPlace()
            reader.offset += 4
            for _ in 0..<records {
                try reader.skipNameInPlace()
                let ttlOffset = reader.offset + 4
                try reader.skipRecordFields()
                out.append((ttlOffset, UInt32(message[ttlOffset]) << 24 | UInt32(message[ttlOffset + 1]) << 16
                            | UInt32(message[ttlOffset + 2]) << 8 | UInt32(message[ttlOffset + 3])))
            }
        } catch {
            return nil
        }
        return reader.offset == message.count ? out : nil
    }

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

    /// Where the apex begins in each SRV target of `count` encoded records at `start` of
    /// `message` whose target lies under the apex (`apexKey`: its lower-cased wire form without
    /// the root's zero), as offsets from `start`. SRV targets are written uncompressed (RFC
    /// 2782), so a reply that gives them the question's letters for the apex (as CoreDNS does)
    /// copies those letters there.
    public static func srvTargetApexOffsets(in message: UnsafeRawBufferPointer, recordsAt start: Int, count: Int,
                                            apexKey: [UInt8]) -> [Int] {
        var reader = WireReader(bytes: message, offset: start)
        var offsets: [Int] = []
        do {
            for _ in 0..<count {
                try reader.skipNameInPlace()
                let type = try reader.readUInt16()
                reader.offset += 6
                let length = Int(try reader.readUInt16())
                let end = reader.offset + length
                guard end <= message.count else { return offsets }
                if type == RecordType.srv.rawValue, length > 6 {
                    // The target: labels up to the root's zero, never a pointer.
                    let target = reader.offset + 6
                    let nameEnd = end - 1
                    let apexStart = nameEnd - apexKey.count
                    if apexStart >= target, message[nameEnd] == 0 {
                        var i = target
                        while i < apexStart { i += Int(message[i]) + 1 }
                        if i == apexStart, zip(message[apexStart..<nameEnd], apexKey).allSatisfy({ asciiLowercase($0) == $1 }) {
                            offsets.append(apexStart - start)
                        }
                    }
                }
                reader.offset = end
            }
        } catch {
            return offsets
        }
        return offsets
    }
}
