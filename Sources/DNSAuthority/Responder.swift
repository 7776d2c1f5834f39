public import DNSWire
public import NetAddress

/// The one place where rcodes are decided: a query's bytes in, a response's bytes out (or
/// nothing, for bytes that are not a query at all).
public struct Responder: Sendable {
    public var catalog: Catalog
    /// Answers reverse names of cluster and endpoint IPs wherever they are.
    public var cluster: ClusterAuthority?
    /// The largest UDP response we send, whatever a client offers (RFC 9715's 1232 by default).
    public var maxUDPPayload: Int
    /// Clients allowed to transfer the cluster zone (AXFR over TCP); none by default.
    public var allowTransfer: [IPPrefix]

    public enum Transport: Sendable { case udp, tcp }

    public init(catalog: Catalog, cluster: ClusterAuthority? = nil, maxUDPPayload: Int = 1232, allowTransfer: [IPPrefix] = []) {
        self.catalog = catalog
        self.cluster = cluster
        self.maxUDPPayload = maxUDPPayload
        self.allowTransfer = allowTransfer
    }

    /// The responses to a query over TCP from `client`: a zone transfer (AXFR, and IXFR answered
    /// as AXFR) of the cluster zone for an allowed client, otherwise the one ordinary response.
    public func respondOverTCP(to query: [UInt8], from client: IPAddress?) -> [[UInt8]] {
        if let client, allowTransfer.contains(where: { $0.contains(client) }), let cluster,
           let message = try? Message(decoding: query), message.header.opcode == .query, !message.header.isResponse,
           let question = message.questions.first, message.questions.count == 1,
           question.type == .axfr || question.type == .ixfr, question.name == cluster.origin {
            return Self.transfer(cluster.zone, question: question, id: message.header.id)
        }
        return respond(to: query, transport: .tcp).map { [$0] } ?? []
    }

    /// The zone as AXFR messages (RFC 5936): the SOA, every record, the SOA again, each message
    /// kept under 16 KiB.
    static func transfer(_ zone: ClusterZone, question: Question, id: UInt16) -> [[UInt8]] {
        let records = [zone.soa] + zone.allRecords.filter { $0.type != .soa } + [zone.soa]
        var messages: [[UInt8]] = []
        var current: [ResourceRecord] = []
        var size = 0
        func flush() {
            let message = Message(header: Header(id: id, isResponse: true, isAuthoritative: true),
                                  questions: messages.isEmpty ? [question] : [], answers: current)
            messages.append(message.encoded())
            current = []
            size = 0
        }
        for record in records {
            let estimate = record.name.wireLength + 10 + record.data.wireBytes.count
            if size + estimate > 16_000 && !current.isEmpty { flush() }
            current.append(record)
            size += estimate
        }
        flush()
        return messages
    }

    /// The response to `query`, or nil when it must be dropped: shorter than a header, or a
    /// response itself (answering responses invites loops).
    public func respond(to query: [UInt8], transport: Transport = .udp) -> [UInt8]? {
        var writer = WireWriter(capacity: 512)
        guard respond(to: query, transport: transport, into: &writer) else { return nil }
        return writer.bytes
    }

    public func respond(to query: [UInt8], transport: Transport, into writer: inout WireWriter) -> Bool {
        guard query.count >= 12, query[2] & 0x80 == 0 else { return false }
        let header = Header(id: UInt16(query[0]) << 8 | UInt16(query[1]), flags: UInt16(query[2]) << 8 | UInt16(query[3]))
        var response = Message(header: Header(id: header.id, isResponse: true, opcode: header.opcode,
                                              isRecursionDesired: header.isRecursionDesired,
                                              isCheckingDisabled: header.isCheckingDisabled))
        let message: Message
        do {
            message = try Message(decoding: query)
        } catch {
            // FORMERR, echoing the question if it at least parsed.
            response.questions = Self.firstQuestion(query).map { [$0] } ?? []
            response.rcode = .formatError
            response.encode(into: &writer, maxSize: 512)
            return true
        }
        response.questions = message.questions
        if let edns = message.edns {
            response.edns = EDNS(udpPayloadSize: UInt16(maxUDPPayload))
            if edns.version > 0 {
                response.rcode = .badVersion
                response.questions = []
                response.encode(into: &writer, maxSize: 512)
                return true
            }
        }
        let limit = transport == .tcp ? 65535
            : min(maxUDPPayload, message.edns.map { $0.effectivePayloadSize } ?? 512)
        defer { response.encode(into: &writer, maxSize: limit) }

        guard header.opcode == .query else {
            response.rcode = .notImplemented
            return true
        }
        guard message.questions.count == 1, let question = message.questions.first else {
            response.rcode = .formatError
            return true
        }
        guard question.recordClass == .internet || question.recordClass == .any else {
            response.rcode = .refused
            return true
        }
        if question.type == .axfr || question.type == .ixfr {
            // Transfers go over TCP to allowed clients only (`respondOverTCP`).
            response.rcode = .refused
            return true
        }
        let lookup: Lookup
        var authoritative = true
        if let authority = catalog.authority(for: question.name) {
            lookup = authority.lookup(question)
        } else if let reverse = cluster?.reverseLookup(question) {
            lookup = reverse
        } else {
            // Not a zone we serve (forwarding comes with issue 5).
            lookup = .refused
            authoritative = false
        }
        Self.fill(&response, with: lookup, question: question)
        response.header.isAuthoritative = authoritative && lookup != .refused && lookup != .serverFailure
        return true
    }

    /// Puts a lookup's records in the sections and sets the rcode. Records owned by the
    /// question's name take the question's letters (the answer echoes the query's case).
    static func fill(_ response: inout Message, with lookup: Lookup, question: Question) {
        func echo(_ records: [ResourceRecord]) -> [ResourceRecord] {
            records.map { record in
                var record = record
                if record.name == question.name { record.name = question.name }
                return record
            }
        }
        switch lookup {
        case .answer(let records, let additional):
            response.answers = echo(records)
            response.additionals = additional
        case .noData(let soa):
            response.authorities = [soa]
        case .nameError(let soa, let chain):
            response.answers = echo(chain)
            response.authorities = [soa]
            response.rcode = .nameError
        case .referral(let ns, let glue):
            response.authorities = ns
            response.additionals = glue
        case .serverFailure:
            response.rcode = .serverFailure
        case .refused:
            response.rcode = .refused
        }
    }

    /// The first question of a message whose body did not decode, if that much is readable.
    static func firstQuestion(_ query: [UInt8]) -> Question? {
        guard query.count > 12, query[4] != 0 || query[5] != 0 else { return nil }
        return query.withUnsafeBytes { raw -> Question? in
            var reader = WireReader(bytes: raw, offset: 12)
            return try? Question(from: &reader)
        }
    }
}
