public import DNSAuthority
public import DNSResolver
public import DispatchSockets
public import DNSWire
import NetAddress
import Synchronization

/// What the server does with each query: the cluster's pre-encoded answers, then cached
/// forwarded answers, then the general path (`Responder.resolve`), which may hand a question
/// to the resolver; its answer is sent later from the address the query arrived at.
/// The responder and resolver can be replaced while serving (`replace`): each query takes the
/// current pair once, under a lock, and keeps it to the end.
public final class QueryHandler: Sendable {
    let current: Mutex<QueryPlan>
    public let observer: (any QueryObserver)?

    public init(responder: Responder, resolver: UpstreamResolver? = nil, observer: (any QueryObserver)? = nil) {
        current = Mutex(QueryPlan(responder: responder, resolver: resolver, observer: observer))
        self.observer = observer
    }

    public var responder: Responder { current.withLock { $0.responder } }
    public var resolver: UpstreamResolver? { current.withLock { $0.resolver } }

    /// Serves new queries with `responder` and `resolver`; returns the previous resolver (its
    /// questions in flight still complete).
    @discardableResult
    public func replace(responder: Responder, resolver: UpstreamResolver?) -> UpstreamResolver? {
        let plan = QueryPlan(responder: responder, resolver: resolver, observer: observer)
        return current.withLock { current in
            let old = current.resolver
            current = plan
            return old
        }
    }

    public func udp(_ query: UnsafeRawBufferPointer, _ reply: UnsafeMutableRawBufferPointer, _ origin: borrowing UDPServer.Origin) -> Int {
        current.withLock { $0 }.udp(query, reply, origin)
    }

    public func tcp(_ message: [UInt8], peer: SocketAddress?, later: TCPMessageServer.DeferredReply) -> [[UInt8]]? {
        current.withLock { $0 }.tcp(message, peer: peer, later: later)
    }
}

/// One responder and resolver pair, and the work of answering with them.
final class QueryPlan: Sendable {
    let responder: Responder
    let resolver: UpstreamResolver?
    let observer: (any QueryObserver)?

    init(responder: Responder, resolver: UpstreamResolver?, observer: (any QueryObserver)?) {
        self.responder = responder
        self.resolver = resolver
        self.observer = observer
    }

    func recursionAllowed(_ client: IPAddress?) -> Bool {
        guard resolver != nil, let policy = responder.recursion, let client else { return false }
        return policy.allows(client)
    }

    /// A datagram: the reply's length in `reply`, or 0 (dropped, or answered later). The query
    /// is parsed once (`QueryView`) for every path: the pre-encoded cluster answers, cache hits,
    /// and the general path.
    func udp(_ query: UnsafeRawBufferPointer, _ reply: UnsafeMutableRawBufferPointer, _ origin: borrowing UDPServer.Origin) -> Int {
        let started = observer.map { origin.receivedAt != 0 ? origin.receivedAt : $0.now() }
        // The peer's address only when something needs it (recursion, the query log).
        let peer = resolver != nil || observer?.wantsClient == true ? origin.peer : nil
        let client = resolver == nil && responder.autopath == nil ? nil : (peer ?? origin.peer)?.address
        let recursive = recursionAllowed(client)
        var type: RecordType? = nil
        var chase: ChaseOrigin? = nil
        let resolution = withUnsafeTemporaryAllocation(byteCount: DomainName.maxWireLength, alignment: 1) { key -> Resolved in
            let view = try? QueryView.parse(query, nameBuffer: key)
            type = view?.type
            if let view {
                if let length = responder.fastRespond(to: query, view: view, key: key, into: reply, transport: .udp,
                                                      recursionAvailable: recursive) {
                    // A pod's name that does not exist may be the first of its search path (autopath).
                    guard let autopath = responder.autopath, length > 3, UInt16(reply[3] & 0x0F) == ResponseCode.nameError.rawValue,
                          let client, autopath.pods.clusterSearchPath(of: client) != nil else { return .written(length) }
                    return .resolved(responder.resolve(query, view: view, transport: .udp, client: client))
                }
                if recursive, let resolver {
                    if let length = cachedResponse(query, view: view, key: key, reply, resolver: resolver) { return .written(length) }
                    // Taken before the general path reads the zone: what it answers from may be
                    // kept for the fast path only as long as this is the zone's version.
                    let zone = responder.precompiled(forKey: UnsafeRawBufferPointer(key), length: view.nameLength)
                    chase = zone.map { ChaseOrigin(zone: $0, questionEnd: view.questionEnd) }
                }
            }
            return .resolved(responder.resolve(query, view: view, transport: .udp, client: client))
        }
        switch resolution {
        case .written(let length):
            if let started {
                observer?.answered(reply: UnsafeRawBufferPointer(rebasing: reply[0..<length]), query: query, type: type, transport: .udp,
                                   client: peer, since: started)
            }
            return length
        case .resolved(.drop):
            observer?.dropped()
            return 0
        case .resolved(.response(let response)):
            let count = min(response.count, reply.count)
            reply.copyBytes(from: response[0..<count])
            if let started {
                observer?.answered(reply: UnsafeRawBufferPointer(rebasing: reply[0..<count]), query: query, type: type, transport: .udp,
                                   client: peer, since: started)
            }
            return count
        case .resolved(.forward(let forwarding)):
            let deferred = origin.deferred()
            forward(forwarding, query: Array(query), transport: .udp, client: peer, started: started, chase: chase) { deferred.send($0) }
            return 0
        }
    }

    enum Resolved {
        case written(Int)
        case resolved(Responder.Resolution)
    }

    /// A message over TCP: its replies now, or nil when they come through `later`.
    func tcp(_ message: [UInt8], peer: SocketAddress?, later: TCPMessageServer.DeferredReply) -> [[UInt8]]? {
        let started = observer?.now()
        if let replies = responder.transfer(message, from: peer?.address) {
            if let started, let first = replies.first { report(first, query: message, transport: .tcp, client: peer, since: started) }
            return replies
        }
        switch responder.resolve(message, transport: .tcp, client: peer?.address) {
        case .drop:
            observer?.dropped()
            return []
        case .response(let response):
            if let started { report(response, query: message, transport: .tcp, client: peer, since: started) }
            return [response]
        case .forward(let forwarding):
            forward(forwarding, query: message, transport: .tcp, client: peer, started: started) { later.send([$0]) }
            return nil
        }
    }

    func report(_ response: [UInt8], query: [UInt8], transport: Responder.Transport, client: SocketAddress?, since started: UInt64) {
        response.withUnsafeBytes { r in
            query.withUnsafeBytes { q in observer?.answered(reply: r, query: q, type: nil, transport: transport, client: client, since: started) }
        }
    }

    /// A cache hit written straight into `reply`, for a plain query of a name outside our zones.
    func cachedResponse(_ query: UnsafeRawBufferPointer, view: QueryView, key: UnsafeMutableRawBufferPointer,
                        _ reply: UnsafeMutableRawBufferPointer, resolver: UpstreamResolver) -> Int? {
        guard view.isPlainQuery, view.type != .axfr, view.type != .ixfr, view.type != .opt else { return nil }
        let shape = ReplyShape(view, transport: .udp, maxUDPPayload: responder.maxUDPPayload, recursionAvailable: true)
        let now = resolver.cache.now()
        let name = UnsafeRawBufferPointer(rebasing: key[0..<view.nameLength])
        let responder = self.responder
        guard let (length, entry) = resolver.cache.respond(
            to: query, view: view, name: name, into: reply, shape: shape, now: now,
            isCurrent: { $0 === responder.precompiled(forKey: name, length: name.count) }) else { return nil }
        resolver.noteHit(entry, now: now)
        return length
    }

    func forward(_ forwarding: Responder.Forwarding, query: [UInt8], transport: Responder.Transport, client: SocketAddress?, started: UInt64?,
                 chase: ChaseOrigin? = nil, send: @escaping @Sendable ([UInt8]) -> Void) {
        guard let resolver else {
            send(responder.completeBytes(forwarding, upstream: nil, overloaded: true))
            return
        }
        // One of our own upstream queries come back to us: answering it by forwarding would loop.
        let target = forwarding.target
        let id = forwarding.shape.id
        let isLoop = target.name.lookupKey.withUnsafeBytes { resolver.isOwnQuery(id: id, type: target.type, lowercasedName: $0) }
        if isLoop {
            resolver.noteLoop()
            send(responder.completeBytes(forwarding, upstream: nil))
            return
        }
        let responder = self.responder
        let observer = self.observer
        resolver.resolve(target, dnssecOK: forwarding.dnssecOK, checkingDisabled: forwarding.checkingDisabled) { [self] outcome in
            let next: Responder.Resolution
            switch outcome {
            case .answer(let message):
                next = responder.resume(forwarding, upstream: message)
                if let chase, case .response = next { keep(forwarding, from: chase, resolver: resolver) }
            case .stale(let message):
                next = responder.resume(forwarding, upstream: message)
            case .failure(let error):
                next = responder.resume(forwarding, upstream: nil, overloaded: error == .overloaded)
            }
            let bytes: [UInt8]
            switch next {
            case .response(let response):
                bytes = response
            case .forward(let step):
                // The next name of a search path walk.
                forward(step, query: query, transport: transport, client: client, started: started, send: send)
                return
            case .drop:
                observer?.dropped()
                return
            }
            if let started, let observer {
                bytes.withUnsafeBytes { r in
                    query.withUnsafeBytes { q in observer.answered(reply: r, query: q, type: nil, transport: transport, client: client, since: started) }
                }
            }
            send(bytes)
        }
        // The walk's later upstream names, asked now: answers wait in the cache (or in flight)
        // for the steps that need them.
        for question in forwarding.ahead {
            resolver.resolve(question, dnssecOK: forwarding.dnssecOK, checkingDisabled: forwarding.checkingDisabled) { _ in }
        }
    }
}

/// Where a UDP query that the general path forwards came from in our zones: the version of
/// the zone it was answered from, and where its question ends.
struct ChaseOrigin: Sendable {
    let zone: Precompiled
    let questionEnd: Int
}

extension QueryPlan {
    /// Keeps the answer to a name of ours that ended upstream (an ExternalName: our CNAME, then
    /// the upstream's records for its target) for the fast path, as the general path wrote it,
    /// made again from the upstream's entry as stored, so that each later client's TTLs age from
    /// there. It answers while that entry is fresh and the zone is the version it came from.
    func keep(_ forwarding: Responder.Forwarding, from chase: ChaseOrigin, resolver: UpstreamResolver) {
        guard forwarding.walk == nil, !forwarding.response.answers.isEmpty, let question = forwarding.response.questions.first else { return }
        let upstreamKey = ResponseCache.Key(forwarding.target, dnssecOK: forwarding.dnssecOK, checkingDisabled: forwarding.checkingDisabled)
        guard let upstream = resolver.cache.entry(for: upstreamKey), upstream.source == nil,
              upstream.remaining(at: resolver.cache.now()) > 0 else { return }
        let bytes = responder.completeBytes(forwarding, upstream: upstream.message)
        guard let wire = forwarding.shape.unshaped(bytes, questionEnd: chase.questionEnd) else { return }
        resolver.cache.storeComposed(wire, for: question,
                                     key: ResponseCache.Key(question, dnssecOK: forwarding.dnssecOK, checkingDisabled: forwarding.checkingDisabled),
                                     fixedRecords: forwarding.response.answers.count, upstream: upstream, token: chase.zone)
    }
}

/// Receives every answered query (for metrics and query logs); called on the serving threads,
/// so it must be cheap.
public protocol QueryObserver: Sendable {
    /// A timestamp (monotonic nanoseconds) taken when a query arrives; over UDP, once for each
    /// batch of datagrams received (`UDPServer.Origin.receivedAt`).
    func now() -> UInt64
    /// `type`: the question's type when the server has parsed the query already (nil: read
    /// it from `query` if needed).
    func answered(reply: UnsafeRawBufferPointer, query: UnsafeRawBufferPointer, type: RecordType?, transport: Responder.Transport,
                  client: SocketAddress?, since started: UInt64)
    /// Whether `answered` wants the client's address (finding it costs a little per query).
    var wantsClient: Bool { get }
    func dropped()
}
