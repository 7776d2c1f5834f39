public import DNSWire

extension Responder {
    /// The fast path for the cluster zone: parses the query without allocating, finds the
    /// pre-encoded answer, and writes the response into `output`. Returns its length, or nil
    /// when the query needs the general path (anything unusual, errors, truncation, pods,
    /// other zones).
    public func fastRespond(to query: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                            transport: Transport, recursionAvailable: Bool = false) -> Int? {
        guard cluster != nil else { return nil }
        return withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { key -> Int? in
            guard let view = try? QueryView.parse(query, nameBuffer: key) else { return nil }
            return fastRespond(to: query, view: view, key: key, into: output, transport: transport, recursionAvailable: recursionAvailable)
        }
    }

    /// The same, for a query already parsed into `view` with its lower-cased name in `key`
    /// (a server that tries other fast paths parses once for all of them).
    public func fastRespond(to query: UnsafeRawBufferPointer, view: QueryView, key: UnsafeMutableRawBufferPointer,
                            into output: UnsafeMutableRawBufferPointer, transport: Transport, recursionAvailable: Bool = false) -> Int? {
        guard let served = cluster?.served else { return nil }
        // A plain standard query, class IN, EDNS version 0 at most, a type we pre-encode.
        guard view.isPlainQuery, view.recordClass == .internet,
              view.type != .axfr, view.type != .ixfr, view.type != .any, view.type != .opt else { return nil }
        let nameLength = view.nameLength
        let apex = served.zone.apexKey
        // In the cluster zone: the name ends with the apex, at a label boundary.
        guard nameLength >= apex.count + 1 else { return nil }
        let apexStart = nameLength - 1 - apex.count
        guard Self.isLabelBoundary(key, apexStart),
              Self.bytesEqual(key, from: apexStart, apex) else { return nil }
        // Names under pod.<zone> are synthesised: general path.
        let pod = served.zone.podKey
        if nameLength - 1 >= pod.count, Self.isLabelBoundary(key, nameLength - 1 - pod.count),
           Self.bytesEqual(key, from: nameLength - 1 - pod.count, pod) { return nil }

        let shape = ReplyShape(view, transport: transport, maxUDPPayload: maxUDPPayload, recursionAvailable: recursionAvailable)
        let limit = shape.limit
        guard output.count >= limit else { return nil }
        var out = OutputCursor(buffer: output, limit: limit)
        let ednsLength = shape.optLength
        let questionEnd = view.questionEnd
        var counts: (UInt16, UInt16, UInt16) = (0, 0, 0)
        // Header and question first; the counts are patched below.
        guard out.write(query[0..<2]), out.write16(0), out.write16(1), out.write16(0), out.write16(0), out.write16(0),
              out.write(query[12..<questionEnd]) else { return nil }
        var truncated = false
        // The compiled keys leave out the apex (every name there ends with it).
        let relative = UnsafeRawBufferPointer(rebasing: key[0..<apexStart])
        let found: Bool? = served.zone.compiled.withAnswer(relative, type: view.type.rawValue) { found in
            switch found {
            case .answer(let bytes, let answerCounts, let leavesZone):
                let room = limit - ednsLength - out.count
                if leavesZone {
                    // A CNAME chain that ends outside the cluster zone (an ExternalName): the
                    // general path follows it into another zone we serve, or upstream for a
                    // client allowed recursion. When neither can happen, the pre-encoded
                    // chain is the whole answer.
                    guard !recursionAvailable, bytes.count <= room else { return nil }
                    let start = out.count
                    guard out.write(bytes),
                          let target = Self.finalTarget(out.written, answersAt: start, count: Int(answerCounts.0)),
                          catalog.authority(for: target) == nil else { return nil }
                    counts = answerCounts
                    return true
                }
                if bytes.count <= room {
                    guard out.write(bytes) else { return nil }
                    counts = answerCounts
                    return true
                }
                // Too big (a large headless service over UDP): the answer records that fit and
                // TC, as the general path cuts (RFC 2181 §9: the client retries over TCP).
                // When every answer record fits and only the additional section does not,
                // the general path decides which whole RRsets stay.
                guard let (length, records) = Self.fittingAnswers(bytes, count: Int(answerCounts.0), room: room),
                      out.write(bytes[0..<length]) else { return nil }
                counts = (UInt16(records), 0, 0)
                truncated = true
                return true
            case .uncompiled:
                return nil
            case .noData:
                guard Self.writeSOA(served.zone, apexOffset: 12 + apexStart, into: &out) else { return nil }
                counts = (0, 1, 0)
                return true
            case nil:
                guard served.zone.isLoaded, Self.writeSOA(served.zone, apexOffset: 12 + apexStart, into: &out) else { return nil }
                counts = (0, 1, 0)
                return false
            }
        }
        guard let found else { return nil }
        guard let written = shape.writeOPT(into: UnsafeMutableRawBufferPointer(rebasing: output[0..<limit]), at: out.count)
        else { return nil }
        out.count += written
        if written > 0 { counts.2 += 1 }
        out.set16(shape.flags(rcode: found ? .noError : .nameError, isAuthoritative: true, isTruncated: truncated), at: 2)
        out.set16(counts.0, at: 6)
        out.set16(counts.1, at: 8)
        out.set16(counts.2, at: 10)
        return out.count
    }

    /// The length and number of the leading answer records of a pre-encoded answer that fit in
    /// `room` bytes; nil when all `count` of them fit (what overflows is after them) or the
    /// bytes do not parse.
    static func fittingAnswers(_ bytes: UnsafeRawBufferPointer, count: Int, room: Int) -> (length: Int, records: Int)? {
        var end = 0
        for record in 0..<count {
            // The owner: labels up to a zero or a compression pointer.
            var i = end
            while true {
                guard i < bytes.count else { return nil }
                let length = Int(bytes[i])
                if length == 0 { i += 1; break }
                if length & 0xC0 == 0xC0 { i += 2; break }
                i += 1 + length
            }
            // Type, class, TTL, RDLENGTH, RDATA.
            guard i + 10 <= bytes.count else { return nil }
            i += 10 + (Int(bytes[i + 8]) << 8 | Int(bytes[i + 9]))
            guard i <= bytes.count else { return nil }
            if i > room { return (end, record) }
            end = i
        }
        return nil
    }

    /// The target of the last of `count` answer records starting at `start` of `message`,
    /// when that record is a CNAME; nil otherwise or when the bytes do not parse.
    static func finalTarget(_ message: UnsafeRawBufferPointer, answersAt start: Int, count: Int) -> DomainName? {
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

    /// True when a label starts at `offset` of the wire name in `key`.
    static func isLabelBoundary(_ key: UnsafeMutableRawBufferPointer, _ offset: Int) -> Bool {
        var i = 0
        while i < offset { i += Int(key[i]) + 1 }
        return i == offset
    }

    static func bytesEqual(_ key: UnsafeMutableRawBufferPointer, from start: Int, _ expected: [UInt8]) -> Bool {
        for (j, byte) in expected.enumerated() where key[start + j] != byte { return false }
        return true
    }

    /// The zone's SOA in the authority section, its owner a pointer to the apex inside the
    /// question, its names compressed against it: the zone's template with the pointers set.
    static func writeSOA(_ zone: ClusterZone, apexOffset: Int, into out: inout OutputCursor) -> Bool {
        let start = out.count
        guard out.write(zone.soaTemplate.bytes) else { return false }
        for at in zone.soaTemplate.pointers { out.set16(0xC000 | UInt16(apexOffset), at: start + at) }
        return true
    }
}

extension ClusterZone {
    /// The SOA record as the fast path writes it, with the offsets of the two-byte pointers to
    /// the apex (owner, and the SOA's names that lie under the apex) still to be filled in.
    static func soaTemplate(_ soa: ResourceRecord, apexKey: [UInt8]) -> (bytes: [UInt8], pointers: [Int]) {
        guard case .soa(let data) = soa.data else { return ([], []) }
        var bytes: [UInt8] = []
        var pointers: [Int] = []
        func put16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
        func put32(_ v: UInt32) { put16(UInt16(v >> 16)); put16(UInt16(v & 0xFFFF)) }
        func putName(_ name: DomainName) {
            let wire = name.wireBytes
            let lowered = name.lookupKey
            if lowered.count > apexKey.count + 1, lowered.dropLast().suffix(apexKey.count).elementsEqual(apexKey) {
                let prefix = wire.count - 1 - apexKey.count
                var i = 0
                while i < prefix { i += Int(wire[i]) + 1 }
                if i == prefix {
                    bytes += wire[0..<prefix]
                    pointers.append(bytes.count)
                    put16(0)
                    return
                }
            }
            bytes += wire
        }
        pointers.append(0)
        put16(0)
        put16(RecordType.soa.rawValue)
        put16(RecordClass.internet.rawValue)
        put32(soa.ttl)
        let lengthAt = bytes.count
        put16(0)
        putName(data.mname)
        putName(data.rname)
        for v in [data.serial, data.refresh, data.retry, data.expire, data.minimum] { put32(v) }
        let length = UInt16(bytes.count - lengthAt - 2)
        bytes[lengthAt] = UInt8(length >> 8)
        bytes[lengthAt + 1] = UInt8(length & 0xFF)
        return (bytes, pointers)
    }
}

/// Writes into a fixed buffer, refusing (false) anything past the limit.
struct OutputCursor {
    let buffer: UnsafeMutableRawBufferPointer
    let limit: Int
    var count = 0

    /// What has been written so far.
    var written: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[0..<count]) }

    mutating func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard count + bytes.count <= limit else { return false }
        if let source = bytes.baseAddress {
            buffer.baseAddress!.advanced(by: count).copyMemory(from: source, byteCount: bytes.count)
        }
        count += bytes.count
        return true
    }

    mutating func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write($0) }
    }

    mutating func write(_ bytes: Slice<UnsafeRawBufferPointer>) -> Bool {
        write(UnsafeRawBufferPointer(rebasing: bytes))
    }

    mutating func write8(_ v: UInt8) -> Bool {
        guard count + 1 <= limit else { return false }
        buffer[count] = v
        count += 1
        return true
    }

    mutating func write16(_ v: UInt16) -> Bool {
        guard count + 2 <= limit else { return false }
        buffer[count] = UInt8(v >> 8)
        buffer[count + 1] = UInt8(v & 0xFF)
        count += 2
        return true
    }

    mutating func write32(_ v: UInt32) -> Bool {
        write16(UInt16(v >> 16)) && write16(UInt16(v & 0xFFFF))
    }

    func set16(_ v: UInt16, at offset: Int) {
        buffer[offset] = UInt8(v >> 8)
        buffer[offset + 1] = UInt8(v & 0xFF)
    }
}
