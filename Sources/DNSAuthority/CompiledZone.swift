import DNSWire

/// The cluster zone's answers, pre-encoded when the zone is compiled: for each name and each
/// type it has data for, the bytes that follow the question in the response, with compression
/// pointers into the question (the question is copied from the query, so the answer echoes the
/// query's letters). A query that fits this path is one hash lookup and a few copies.
struct CompiledZone: Sendable {
    struct Answer: Sendable {
        var type: UInt16
        var counts: (answer: UInt16, authority: UInt16, additional: UInt16)
        var bytes: [UInt8]
    }

    let table: NameTable
    /// Per name: its pre-encoded answers; an empty list is a name without data (NODATA for all).
    let answers: [[Answer]]
    /// The apex in lower-cased wire form (without the final zero byte).
    let apexKey: [UInt8]
    let soa: SOA
    let soaTTL: UInt32
    let isLoaded: Bool
    /// Pods are synthesised at lookup time: names under `pod.<zone>` take the general path.
    let podKey: [UInt8]

    static let compiledTypes: [RecordType] = [.a, .aaaa, .srv, .txt, .cname, .soa, .ns, .ptr, .mx]

    init(zone: ClusterZone) {
        var table = NameTable(capacity: zone.nodes.count)
        var answers: [[Answer]] = []
        answers.reserveCapacity(zone.nodes.count)
        var writer = WireWriter(capacity: 512)
        for name in zone.nodes.keys {
            var list: [Answer] = []
            let node = zone.nodes[name]!
            let isCNAME = node.records[.cname] != nil
            for type in Self.compiledTypes where isCNAME || node.records[type] != nil {
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
                                   bytes: Array(writer.bytes[questionEnd...])))
            }
            table.insert(name.lookupKey, value: answers.count)
            answers.append(list)
        }
        self.table = table
        self.answers = answers
        let apex = zone.origin.lookupKey
        apexKey = Array(apex.dropLast())
        if case .soa(let soa) = zone.soa.data { self.soa = soa } else { soa = SOA(mname: .root, rname: .root, serial: 0, refresh: 0, retry: 0, expire: 0, minimum: 0) }
        soaTTL = zone.soa.ttl
        isLoaded = zone.isLoaded
        podKey = Array(zone.podZone.lookupKey.dropLast())
    }
}
