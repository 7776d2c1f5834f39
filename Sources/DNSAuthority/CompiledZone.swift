import DNSWire
import HashTreeCollections

/// The cluster zone's answers, pre-encoded: for each name and each type it has data for, the
/// bytes that follow the question in the response, with compression pointers into the question
/// (the question is copied from the query, so the answer echoes the query's letters).
///
/// Kept in a persistent map from the hash of the lower-cased wire name to the few names with
/// that hash, so that it is updated per name when the zone changes, and looked up by the
/// query's bytes without allocating.
struct CompiledZone: Sendable {
    struct Answer: Sendable {
        var type: UInt16
        var counts: (answer: UInt16, authority: UInt16, additional: UInt16)
        var bytes: [UInt8]
        /// The chain ends in a CNAME out of the zone: the general path follows it (other zones,
        /// upstream), so the fast path leaves it alone.
        var leavesZone = false
    }

    struct Entry: Sendable {
        /// The lower-cased wire name, with its terminating zero.
        var key: [UInt8]
        /// An empty list is a name without data of any compiled type (NODATA).
        var answers: [Answer]
    }

    private var buckets: TreeDictionary<UInt32, [Entry]> = [:]

    static let compiledTypes: [RecordType] = [.a, .aaaa, .srv, .txt, .cname, .soa, .ns, .mx]

    static func hash(_ key: UnsafeRawBufferPointer) -> UInt32 {
        // FNV-1a.
        var h: UInt32 = 2_166_136_261
        for byte in key {
            h ^= UInt32(byte)
            h &*= 16_777_619
        }
        return h
    }

    mutating func set(_ name: DomainName, answers: [Answer]) {
        let key = name.lookupKey
        let h = key.withUnsafeBytes { Self.hash($0) }
        var bucket = buckets[h] ?? []
        if let i = bucket.firstIndex(where: { $0.key == key }) { bucket[i].answers = answers } else { bucket.append(Entry(key: key, answers: answers)) }
        buckets[h] = bucket
    }

    mutating func remove(_ name: DomainName) {
        let key = name.lookupKey
        let h = key.withUnsafeBytes { Self.hash($0) }
        guard var bucket = buckets[h] else { return }
        bucket.removeAll { $0.key == key }
        buckets[h] = bucket.isEmpty ? nil : bucket
    }

    /// The answers of a name given as lower-cased wire bytes; nil when the name does not exist.
    func find(_ key: UnsafeRawBufferPointer) -> [Answer]? {
        guard let bucket = buckets[Self.hash(key)] else { return nil }
        for entry in bucket where entry.key.count == key.count {
            let equal = entry.key.withUnsafeBytes { memcmp($0.baseAddress!, key.baseAddress!, key.count) == 0 }
            if equal { return entry.answers }
        }
        return nil
    }

    /// Pre-encodes the answers of one name for every compiled type it answers.
    static func answers(for name: DomainName, node: ClusterZone.Node, in zone: ClusterZone) -> [Answer] {
        var list: [Answer] = []
        var writer = WireWriter(capacity: 512)
        let isCNAME = node.records[.cname] != nil
        for type in compiledTypes where isCNAME || node.records[type] != nil {
            let question = Question(name: name, type: type)
            let lookup = zone.lookup(question)
            guard case .answer = lookup else { continue }
            var message = Message(header: Header(isResponse: true), questions: [question])
            Responder.fill(&message, with: lookup, question: question)
            message.encode(into: &writer)
            let questionEnd = 12 + name.wireLength + 4
            list.append(Answer(type: type.rawValue,
                               counts: (UInt16(message.answers.count), UInt16(message.authorities.count),
                                        UInt16(message.additionals.count)),
                               bytes: Array(writer.bytes[questionEnd...]),
                               leavesZone: type != .cname && message.answers.last?.type == .cname))
        }
        return list
    }
}

#if canImport(Glibc)
import Glibc
#endif
