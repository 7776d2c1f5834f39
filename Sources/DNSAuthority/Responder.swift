public import DNSWire
public import NetAddress

/// The one place where rcodes are decided: a query's bytes in, a response's bytes out (or
/// nothing, for bytes that are not a query at all).
public struct Responder: Sendable {
    public var catalog: Catalog
    /// The largest UDP response we send, whatever a client offers (RFC 9715's 1232 by default).
    public var maxUDPPayload: Int
    /// Clients allowed to transfer our zones (AXFR over TCP); none by default.
    public var allowTransfer: [IPPrefix]
    /// Who may recurse and which names go upstream; nil: an authoritative-only server.
    public var recursion: RecursionPolicy?
    /// Server-side search path completion for pods; nil: off.
    public var autopath: Autopath?

    public typealias Transport = ReplyShape.Transport

    public init(catalog: Catalog, maxUDPPayload: Int = 1232, allowTransfer: [IPPrefix] = [], recursion: RecursionPolicy? = nil,
                autopath: Autopath? = nil) {
        self.catalog = catalog
        self.recursion = recursion
        self.autopath = autopath
        self.maxUDPPayload = maxUDPPayload
        self.allowTransfer = allowTransfer
    }

    /// The messages of a zone transfer (AXFR, and IXFR answered as AXFR) of a zone whose
    /// authority offers one (`Authority.transferRecords`), when `query` asks for it over TCP
    /// from a client allowed to transfer; nil for every other query, which takes the ordinary
    /// path (`resolve`) whoever sends it.
    public func transfer(_ query: [UInt8], from client: IPAddress?) -> [[UInt8]]? {
        guard let client, allowTransfer.contains(where: { $0.contains(client) }),
              let message = try? Message(decoding: query), message.header.opcode == .query, !message.header.isResponse,
              let question = message.questions.first, message.questions.count == 1,
              question.type == .axfr || question.type == .ixfr,
              let records = catalog.authority(zone: question.name)?.transferRecords(), !records.isEmpty else { return nil }
        return Self.transfer(records, question: question, id: message.header.id)
    }

    /// The zone as AXFR messages (RFC 5936): the SOA, every record, the SOA again, each message
    /// kept under 16 KiB. `records` starts with the SOA.
    static func transfer(_ records: [ResourceRecord], question: Question, id: UInt16) -> [[UInt8]] {
        let all = records + [records[0]]
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
        for record in all {
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
        let prepared = query.withUnsafeBytes { raw in
            Self.withView(raw) { view in prepare(raw, view: view, transport: transport, client: nil) }
        }
        switch prepared {
        case .drop:
            return false
        case .done(let response, let shape, let suffix):
            shape.encode(response, into: &writer, questionSuffixLabels: suffix)
            return true
        case .forward(let forwarding):
            // Without a client address there is no recursion (never reached: `recursion` needs one).
            forwarding.shape.encode(complete(forwarding, upstream: nil, overloaded: true), into: &writer,
                                    questionSuffixLabels: forwarding.questionSuffixLabels)
            return true
        }
    }

    /// What the server does with a query: drop it, send a response, or forward a question
    /// upstream and complete the response with the upstream's answer (`complete`).
    public enum Resolution: Sendable {
        case drop
        case response([UInt8])
        case forward(Forwarding)
    }

    /// A response waiting for an upstream's answer.
    public struct Forwarding: Sendable {
        /// The response so far: header, question, EDNS, and any CNAME chain from our own zones.
        public var response: Message
        /// What to ask upstream: the client's question, or the target of the last CNAME.
        public var target: Question
        /// The reply's header bits, OPT record and size limit.
        public var shape: ReplyShape
        /// See `Message.encode(into:maxSize:questionSuffixLabels:)`.
        public var questionSuffixLabels: Int?
        /// Set when `target` is a step of a search path walk (autopath): the rest of the walk.
        public var walk: SearchWalk? = nil
        /// The walk's later names that would be asked upstream too, should `target` not exist:
        /// asked at the same time, so that each step after it is a cache hit or already in
        /// flight instead of another round trip upstream.
        public var ahead: [Question] = []

        /// The largest response the client takes.
        public var limit: Int { shape.limit }
        public var dnssecOK: Bool { shape.isDNSSECOK }
        public var checkingDisabled: Bool { shape.isCheckingDisabled }
    }

    /// The general path: a response, a drop, or a question to forward. `client` decides
    /// recursion (`recursion.allowed`); without it, names outside our zones are REFUSED.
    public func resolve(_ query: [UInt8], transport: Transport, client: IPAddress?) -> Resolution {
        query.withUnsafeBytes { raw in
            Self.withView(raw) { view in resolve(raw, view: view, transport: transport, client: client) }
        }
    }

    /// The same for a query the server has already parsed into `view` (nil when that parse
    /// failed): the query is not parsed again.
    public func resolve(_ query: UnsafeRawBufferPointer, view: QueryView?, transport: Transport, client: IPAddress?) -> Resolution {
        switch prepare(query, view: view, transport: transport, client: client) {
        case .drop: return .drop
        case .done(let response, let shape, let suffix):
            var writer = WireWriter(capacity: 512)
            shape.encode(response, into: &writer, questionSuffixLabels: suffix)
            return .response(writer.bytes)
        case .forward(let forwarding): return .forward(forwarding)
        }
    }

    /// The response to a forwarded question: the chain so far followed by the upstream's
    /// answer (its rcode, sections and TC bit), SERVFAIL when no upstream answered, REFUSED
    /// when too many questions were already waiting upstream.
    public func complete(_ forwarding: Forwarding, upstream: Message?, overloaded: Bool = false) -> Message {
        var response = forwarding.response
        guard let upstream else {
            response.rcode = overloaded ? .refused : .serverFailure
            return response
        }
        let target = forwarding.target.name
        func echo(_ records: [ResourceRecord]) -> [ResourceRecord] {
            records.map { record in
                var record = record
                if record.name == target { record.name = target }
                return record
            }
        }
        response.answers += echo(upstream.answers)
        if forwarding.response.answers.isEmpty {
            response.authorities = upstream.authorities
            response.additionals = upstream.additionals
        } else if upstream.answers.isEmpty {
            // After a chain of ours (an ExternalName), a negative answer keeps only its SOA
            // (RFC 2308: what it is cached by).
            response.authorities = upstream.authorities.filter { $0.type == .soa }
        }
        // Otherwise the upstream's answer records only, as CoreDNS joins them: its authority
        // and additional sections describe its zone, not the name asked.
        response.rcode = upstream.rcode
        response.header.isTruncated = upstream.header.isTruncated
        response.header.isAuthenticData = upstream.header.isAuthenticData && forwarding.response.answers.isEmpty
        if forwarding.walk != nil { Self.settleAliasTTL(&response) }
        return response
    }

    public func completeBytes(_ forwarding: Forwarding, upstream: Message?, overloaded: Bool = false) -> [UInt8] {
        Self.encode(complete(forwarding, upstream: upstream, overloaded: overloaded), shape: forwarding.shape,
                    questionSuffixLabels: forwarding.questionSuffixLabels)
    }

    static func encode(_ response: Message, shape: ReplyShape, questionSuffixLabels: Int?) -> [UInt8] {
        var writer = WireWriter(capacity: 512)
        shape.encode(response, into: &writer, questionSuffixLabels: questionSuffixLabels)
        return writer.bytes
    }

    enum Prepared {
        case drop
        case done(Message, ReplyShape, questionSuffixLabels: Int?)
        case forward(Forwarding)
    }

    /// Calls `body` with the query parsed by `QueryView` (nil when it does not parse).
    static func withView<R>(_ query: UnsafeRawBufferPointer, _ body: (QueryView?) -> R) -> R {
        withUnsafeTemporaryAllocation(byteCount: DomainName.maxWireLength, alignment: 1) { key in
            body(try? QueryView.parse(query, nameBuffer: key))
        }
    }

    func prepare(_ query: UnsafeRawBufferPointer, view: QueryView?, transport: Transport, client: IPAddress?) -> Prepared {
        guard let header = Header(prefixOf: query), !header.isResponse else { return .drop }
        let recursive = recursion.map { policy in client.map { policy.allows($0) } ?? false } ?? false
        let shape: ReplyShape
        let question: Question
        let ednsVersion: UInt8
        if let view, let first = Self.firstQuestion(query) {
            shape = ReplyShape(view, transport: transport, maxUDPPayload: maxUDPPayload, recursionAvailable: recursive)
            question = first
            ednsVersion = view.edns?.version ?? 0
        } else {
            // What the allocation-free parse refuses is decoded whole, for the precise error.
            let message: Message
            do {
                message = try Message(decoding: Array(query))
            } catch {
                // FORMERR, echoing the question if it at least parsed.
                let shape = ReplyShape(id: header.id, queryFlags: header.flags, payloadSize: nil, isDNSSECOK: false,
                                       transport: transport, maxUDPPayload: maxUDPPayload, recursionAvailable: recursive)
                var response = shape.message(questions: Self.firstQuestion(query).map { [$0] } ?? [])
                response.rcode = .formatError
                return .done(response, shape, questionSuffixLabels: nil)
            }
            shape = ReplyShape(message, transport: transport, maxUDPPayload: maxUDPPayload, recursionAvailable: recursive)
            var response = shape.message(questions: message.questions)
            if let version = message.edns?.version, version > 0 {
                response.rcode = .badVersion
                response.questions = []
                return .done(response, shape, questionSuffixLabels: nil)
            }
            guard message.header.opcode == .query else {
                response.rcode = .notImplemented
                return .done(response, shape, questionSuffixLabels: nil)
            }
            guard message.questions.count == 1, let first = message.questions.first else {
                response.rcode = .formatError
                return .done(response, shape, questionSuffixLabels: nil)
            }
            question = first
            ednsVersion = 0
        }
        var response = shape.message(questions: [question])
        if ednsVersion > 0 {
            response.rcode = .badVersion
            response.questions = []
            return .done(response, shape, questionSuffixLabels: nil)
        }
        guard header.opcode == .query else {
            response.rcode = .notImplemented
            return .done(response, shape, questionSuffixLabels: nil)
        }
        guard question.recordClass == .internet || question.recordClass == .any else {
            response.rcode = .refused
            return .done(response, shape, questionSuffixLabels: nil)
        }
        if question.type == .axfr || question.type == .ixfr {
            // Transfers go over TCP to allowed clients only (`transfer`).
            response.rcode = .refused
            return .done(response, shape, questionSuffixLabels: nil)
        }
        var suffix: Int? = nil
        let authority = catalog.authority(for: question.name)
        let lookup = authority?.lookup(question) ?? .fallThrough
        if lookup == .fallThrough {
            if recursive, recursion!.forwards(question.name) {
                return .forward(Forwarding(response: response, target: question, shape: shape, questionSuffixLabels: nil))
            }
            response.rcode = .refused
            return .done(response, shape, questionSuffixLabels: nil)
        }
        if let authority, authority.namesTakeOnlyTheApexLetters { suffix = authority.origin.labelCount }
        Self.fill(&response, with: lookup, question: question)
        var authoritative = true
        if case .referral = lookup { authoritative = false }
        response.header.isAuthoritative = authoritative && lookup != .refused && lookup != .serverFailure
        if case .nameError(_, let chain) = lookup, chain.isEmpty, let autopath, let client,
           let walk = autopath.walk(for: question, client: client, ordinary: response, questionSuffixLabels: suffix,
                                   recursive: recursive) {
            return self.walk(walk, shape: shape, recursive: recursive)
        }
        if case .answer = lookup, question.type != .cname, question.type != .any {
            return follow(response, question: question, shape: shape, recursive: recursive, questionSuffixLabels: suffix)
        }
        return finish(response, shape: shape, questionSuffixLabels: suffix)
    }

    /// A CNAME chain that leaves our zone: followed through the other zones we serve, then
    /// upstream when the client may recurse.
    func follow(_ response: Message, question: Question, shape: ReplyShape, recursive: Bool, questionSuffixLabels suffix: Int?) -> Prepared {
        var response = response
        var hops = 0
        while let last = response.answers.last, case .cname(let target) = last.data, hops < 8,
              !response.answers.dropLast().contains(where: { $0.name == target }) {
            hops += 1
            let next = Question(name: target, type: question.type, recordClass: question.recordClass)
            if let chained = catalog.authority(for: target)?.lookup(next), chained != .fallThrough {
                var extra = Message(header: response.header)
                Self.fill(&extra, with: chained, question: next)
                if case .referral = chained { break }
                if case .answer = chained {} else {
                    // The target's NXDOMAIN/NODATA with its zone's SOA.
                    response.answers += extra.answers
                    response.authorities = extra.authorities
                    response.rcode = extra.rcode
                    break
                }
                let before = response.answers.count
                response.answers += extra.answers.filter { !response.answers.contains($0) }
                response.additionals += extra.additionals
                if response.answers.count == before { break }
                continue
            }
            if recursive, recursion!.forwards(target) {
                response.header.isAuthoritative = false
                response.additionals = []
                return .forward(Forwarding(response: response, target: next, shape: shape, questionSuffixLabels: suffix))
            }
            break
        }
        return finish(response, shape: shape, questionSuffixLabels: suffix)
    }

    func finish(_ response: Message, shape: ReplyShape, questionSuffixLabels suffix: Int?) -> Prepared {
        var response = response
        if let suffix { Self.apexLettersOfSRVTargets(&response, apexLabels: suffix) }
        return .done(response, shape, questionSuffixLabels: suffix)
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
        case .refused, .fallThrough:
            response.rcode = .refused
        }
    }

    /// SRV targets under the question's apex (its last `apexLabels` labels) take the
    /// question's letters for the apex, as CoreDNS writes them (the labels below stay the
    /// zone's): SRV targets are never compressed, so unlike other names they cannot copy the
    /// letters through a pointer.
    static func apexLettersOfSRVTargets(_ message: inout Message, apexLabels: Int) {
        guard var apex = message.questions.first?.name, apex.labelCount >= apexLabels else { return }
        while apex.labelCount > apexLabels, let parent = apex.parent { apex = parent }
        for i in message.answers.indices {
            guard case .srv(var srv) = message.answers[i].data, srv.target.isSubdomain(of: apex),
                  let target = try? DomainName(labels: Array(srv.target.labels.dropLast(apexLabels)) + apex.labels) else { continue }
            srv.target = target
            message.answers[i].data = .srv(srv)
        }
    }

    /// The first question of a query, read from its bytes; nil when it does not parse.
    static func firstQuestion(_ query: UnsafeRawBufferPointer) -> Question? {
        guard query.count > 12, query[4] != 0 || query[5] != 0 else { return nil }
        var reader = WireReader(bytes: query, offset: 12)
        return try? Question(from: &reader)
    }
}

/// Who may recurse through us, and for which names we have upstreams.
public struct RecursionPolicy: Sendable {
    /// Clients allowed recursion; others get REFUSED for names outside our zones (never an
    /// open resolver).
    public var allowed: [IPPrefix]
    /// Suffixes with upstreams: the root for default upstreams, stub domains otherwise.
    public var domains: [DomainName]

    /// Loopback, RFC 1918, RFC 6598 shared space, IPv6 unique-local and link-local.
    public static let privateRanges: [IPPrefix] = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                   "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10"].map { try! IPPrefix(parsing: $0) }

    public init(allowed: [IPPrefix] = RecursionPolicy.privateRanges, domains: [DomainName] = [.root]) {
        self.allowed = allowed
        self.domains = domains
    }

    public func allows(_ client: IPAddress) -> Bool {
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let address = client.unmappedIPv4 ?? client
        return allowed.contains { $0.contains(address) }
    }

    public func forwards(_ name: DomainName) -> Bool { domains.contains { name.isSubdomain(of: $0) } }
}
