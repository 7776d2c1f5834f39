public import DNSWire

extension Responder {
    /// The fast path for zones with pre-encoded answers (`Authority.precompiled`): parses the
    /// query without allocating, finds the pre-encoded answer, and writes the response into
    /// `output`. Returns its length, or nil when the query needs the general path (anything
    /// unusual, errors, truncation of more than the answer section, synthesised names, zones
    /// without pre-encoded answers).
    public func fastRespond(to query: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                            transport: Transport, recursionAvailable: Bool = false) -> Int? {
        withUnsafeTemporaryAllocation(byteCount: DomainName.maxWireLength, alignment: 1) { key -> Int? in
            guard let view = try? QueryView.parse(query, nameBuffer: key) else { return nil }
            return fastRespond(to: query, view: view, key: key, into: output, transport: transport, recursionAvailable: recursionAvailable)
        }
    }

    /// The same, for a query already parsed into `view` with its lower-cased name in `key`
    /// (a server that tries other fast paths parses once for all of them).
    public func fastRespond(to query: UnsafeRawBufferPointer, view: QueryView, key: UnsafeMutableRawBufferPointer,
                            into output: UnsafeMutableRawBufferPointer, transport: Transport, recursionAvailable: Bool = false) -> Int? {
        // A plain standard query, class IN, EDNS version 0 at most, a type we pre-encode.
        guard view.isPlainQuery, view.recordClass == .internet,
              view.type != .axfr, view.type != .ixfr, view.type != .any, view.type != .opt else { return nil }
        let nameLength = view.nameLength
        let name = UnsafeRawBufferPointer(key)
        guard let (authority, apexStart) = catalog.authority(forKey: name, length: nameLength),
              let precompiled = authority.precompiled,
              !precompiled.inGeneralSubtree(name, length: nameLength) else { return nil }

        let shape = ReplyShape(view, transport: transport, maxUDPPayload: maxUDPPayload, recursionAvailable: recursionAvailable)
        let limit = shape.limit
        guard output.count >= limit else { return nil }
        var out = OutputCursor(buffer: output, limit: limit)
        let ednsLength = shape.optLength
        let questionEnd = view.questionEnd
        var counts: (UInt16, UInt16, UInt16) = (0, 0, 0)
        // The question as the client wrote it; the header is written last, with the counts.
        out.count = 12
        guard out.write(query[12..<questionEnd]) else { return nil }
        var truncated = false
        // The compiled keys leave out the apex (every name there ends with it).
        let relative = UnsafeRawBufferPointer(rebasing: key[0..<apexStart])
        let found: Bool? = precompiled.answers.withAnswer(relative, type: view.type.rawValue) { found in
            switch found {
            case .answer(let bytes, let answerCounts, let leavesZone, let apexLetters):
                let room = limit - ednsLength - out.count
                let start = out.count
                // The question's letters for the apex, where the answer's SRV targets end in it.
                // It captures no `var` (the cursor would be boxed on the heap for every query).
                let answerBase = output.baseAddress! + start
                func copyApexLetters(written: Int) {
                    let apexLength = nameLength - 1 - apexStart
                    apexLetters.forEach { offset in
                        guard offset + apexLength <= written else { return }
                        (answerBase + offset).copyMemory(from: query.baseAddress!.advanced(by: 12 + apexStart), byteCount: apexLength)
                    }
                }
                if leavesZone {
                    // A CNAME chain that ends outside the zone: the general path follows it
                    // into another zone we serve, or upstream for a client allowed recursion.
                    // When neither can happen, the pre-encoded chain is the whole answer.
                    guard !recursionAvailable, bytes.count <= room else { return nil }
                    guard out.write(bytes),
                          let target = ResourceRecord.lastCNAMETarget(in: out.written, recordsAt: start, count: Int(answerCounts.0)),
                          catalog.authority(for: target) == nil else { return nil }
                    counts = answerCounts
                    return true
                }
                if bytes.count <= room {
                    guard out.write(bytes) else { return nil }
                    copyApexLetters(written: bytes.count)
                    counts = answerCounts
                    return true
                }
                // Too big (a large headless service over UDP): the answer records that fit and
                // TC, as the general path cuts (RFC 2181 §9: the client retries over TCP).
                // When every answer record fits and only the additional section does not,
                // the general path decides which whole RRsets stay.
                guard let (length, records) = ResourceRecord.leadingRecords(in: bytes, count: Int(answerCounts.0), fitting: room),
                      out.write(bytes[0..<length]) else { return nil }
                copyApexLetters(written: length)
                counts = (UInt16(records), 0, 0)
                truncated = true
                return true
            case .uncompiled:
                return nil
            case .noData:
                guard writeSOA(precompiled, apexOffset: 12 + apexStart, into: &out) else { return nil }
                counts = (0, 1, 0)
                return true
            case nil:
                guard precompiled.missIsNameError, writeSOA(precompiled, apexOffset: 12 + apexStart, into: &out) else { return nil }
                counts = (0, 1, 0)
                return false
            }
        }
        guard let found else { return nil }
        guard let written = shape.writeOPT(into: UnsafeMutableRawBufferPointer(rebasing: output[0..<limit]), at: out.count)
        else { return nil }
        out.count += written
        shape.writeHeader(into: output, rcode: found ? .noError : .nameError, isAuthoritative: true, isTruncated: truncated,
                          counts: counts)
        return out.count
    }

    /// The pre-encoded answers of the zone of ours that holds the name in `key` (`length`
    /// bytes, lower-cased), as they are now: the version an answer made from the zone belongs
    /// to. Nil outside our zones, or for a zone without them.
    public func precompiled(forKey key: UnsafeRawBufferPointer, length: Int) -> Precompiled? {
        catalog.authority(forKey: key, length: length)?.authority.precompiled
    }

    /// The zone's SOA in the authority section, relocated after the question.
    func writeSOA(_ precompiled: Precompiled, apexOffset: Int, into out: inout OutputCursor) -> Bool {
        guard let written = precompiled.soa.write(into: out.buffer, at: out.count, apexOffset: apexOffset, limit: out.limit)
        else { return false }
        out.count += written
        return true
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

    mutating func write(_ bytes: Slice<UnsafeRawBufferPointer>) -> Bool {
        write(UnsafeRawBufferPointer(rebasing: bytes))
    }

}
