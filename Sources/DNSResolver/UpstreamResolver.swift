import Dispatch
public import DNSWire
public import DispatchSockets
import Synchronization

/// How the next upstream is chosen.
public enum UpstreamPolicy: String, Sendable, CaseIterable {
    case random
    case roundRobin = "round_robin"
    case sequential
}

/// A set of upstream resolvers for a domain (the root for the default upstreams, or a stub
/// domain's suffix).
public struct UpstreamGroup: Sendable {
    public var domain: DomainName
    public var servers: [SocketAddress]

    public init(domain: DomainName = .root, servers: [SocketAddress]) {
        self.domain = domain
        self.servers = servers
    }
}

/// Why a forwarded question got no answer.
public enum ForwardError: Error, Hashable, Sendable {
    /// `maxConcurrent` questions are already waiting upstream.
    case overloaded
    /// No upstream answered before the deadline.
    case failed
    /// No upstream is configured for the name.
    case noUpstream
}

/// Forwards questions to upstream resolvers, with a cache.
///
/// Per question: the cache first; identical questions in flight share one upstream query; the
/// group of the longest matching stub domain (else the default upstreams); upstreams in policy
/// order, healthy ones first, each tried (at most twice) with a read timeout until the overall
/// deadline. An upstream failing `maxFails` times in a row is marked down and probed (`. NS`) until it answers.
/// Every upstream query has a random ID and source port, and its (ID, question) is remembered
/// while in flight so that a query arriving back at our own server is recognised as a loop.
public final class UpstreamResolver: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var groups: [UpstreamGroup]
        public var policy: UpstreamPolicy = .random
        public var maxFails: Int = 2
        public var healthCheckInterval: Duration = .milliseconds(500)
        public var readTimeout: Duration = .seconds(2)
        public var deadline: Duration = .seconds(5)
        public var maxConcurrent: Int = 1000
        public var cache = ResponseCache.Configuration()
        /// The UDP payload size we advertise upstream.
        public var udpPayloadSize: UInt16 = 1232

        public init(groups: [UpstreamGroup]) { self.groups = groups }
    }

    /// An upstream's health; state lives on the resolver's queue.
    final class Upstream: @unchecked Sendable {
        let address: SocketAddress
        var fails = 0
        /// While the upstream is down: when it is next asked `. NS` (on the resolver's clock);
        /// nil while it is up or a probe is in flight.
        var nextProbe: UInt64?
        var probing = false
        var queries = 0
        var failures = 0

        init(address: SocketAddress) { self.address = address }
    }

    struct Group {
        var domain: DomainName
        var upstreams: [Upstream]
        var next = 0
    }

    /// The result of a resolution: the upstream's message (TTLs as the client should see them).
    public enum Outcome: Sendable {
        case answer(Message)
        /// An expired cache entry served because the upstreams failed (RFC 8767).
        case stale(Message)
        case failure(ForwardError)
    }

    public typealias Completion = @Sendable (Outcome) -> Void

    public let configuration: Configuration
    public let cache: ResponseCache
    let queue = DispatchQueue(label: "clusterdns.resolver")
    // On `queue`:
    var groups: [Group]
    var waiting: [ResponseCache.Key: [Completion]] = [:]
    var inFlight = 0
    var stopped = false
    /// (ID, lower-cased name, type) of every upstream query in flight.
    let outstanding = Mutex<Set<LoopKey>>([])
    /// Watches the armed sockets.
    let loop = EventLoop(label: "clusterdns.upstreams")
    /// Pre-opened sockets per upstream (on `queue`).
    var armed: [SocketAddress: [ArmedSocket]] = [:]
    static let armedPerUpstream = 4
    /// Exchanges in flight, for the deadline sweep (on `queue`).
    var exchanges: [ObjectIdentifier: Exchange] = [:]
    /// Upstreams that are down, for the probe sweep (on `queue`).
    var down: [ObjectIdentifier: Upstream] = [:]
    var sweeper: (any DispatchSourceTimer)?
    /// When the sweeper fires next, on the clock (nil while it is not set).
    var sweepDue: UInt64?
    /// Sweeps are at least this far apart: many deadlines close together share one.
    static let sweepInterval: UInt64 = 10_000_000
    /// Times the cache, every timeout and deadline, and the health probes.
    let clock: any MonotonicClock
    let mismatchCount = Atomic<Int>(0)
    let loopCount = Atomic<Int>(0)
    /// Called on the resolver's queue after every upstream exchange (for metrics); set it
    /// before the first question.
    public nonisolated(unsafe) var observer: (@Sendable (_ upstream: SocketAddress, _ seconds: Double, _ success: Bool) -> Void)? = nil

    struct LoopKey: Hashable {
        var id: UInt16
        var type: UInt16
        var name: [UInt8]
    }

    /// `clock` decides everything timed: the cache's ages (TTLs, expiry, prefetch, the stale
    /// window), read timeouts, the deadline and the health probes' interval. A timer looks at it
    /// when the earliest of them is due (at most every 10 ms); tests advance a `ManualClock` and
    /// call `sweep()`.
    public init(configuration: Configuration, clock: any MonotonicClock = SystemClock()) {
        self.configuration = configuration
        self.clock = clock
        cache = ResponseCache(configuration: configuration.cache, clock: clock)
        groups = configuration.groups.map { Group(domain: $0.domain, upstreams: $0.servers.map(Upstream.init)) }
        queue.setSpecific(key: Self.queueKey, value: ObjectIdentifier(self))
        loop.start()
    }

    /// Stops health probes; questions in flight still finish.
    public func stop() {
        queue.async { [self] in
            stopped = true
            for sockets in armed.values { for socket in sockets { socket.discard() } }
            armed = [:]
            loop.stop()
        }
    }

    /// What an upstream has seen so far.
    public struct UpstreamStatus: Sendable {
        public var address: SocketAddress
        public var queries: Int
        public var failures: Int
        public var isHealthy: Bool
    }

    public var upstreams: [UpstreamStatus] {
        queue.sync {
            groups.flatMap(\.upstreams).map {
                UpstreamStatus(address: $0.address, queries: $0.queries, failures: $0.failures, isHealthy: $0.fails < configuration.maxFails)
            }
        }
    }
    /// Replies from upstreams ignored for a wrong ID or question.
    public var mismatches: Int { mismatchCount.load(ordering: .relaxed) }
    public var loopsDetected: Int { loopCount.load(ordering: .relaxed) }
    public var pending: Int { queue.sync { inFlight } }

    /// True when `query` is one of our own upstream queries come back: the resolvers we forward
    /// to (directly or through others) send it to us again. Answering it by forwarding would loop.
    public func isOwnQuery(id: UInt16, type: RecordType, lowercasedName: UnsafeRawBufferPointer) -> Bool {
        outstanding.withLock { set in
            guard !set.isEmpty else { return false }
            return set.contains(LoopKey(id: id, type: type.rawValue, name: Array(lowercasedName)))
        }
    }

    public func noteLoop() { loopCount.add(1, ordering: .relaxed) }

    /// Resolves `question` through the cache and the upstreams; `completion` runs on the
    /// resolver's queue (or at once, on a cache hit). The upstream query is sent from the
    /// caller's thread (`queue.sync` runs the block there when the queue is free): no thread
    /// hand-off before the query leaves. A completion may ask the next question (a search path
    /// walk does): on the queue already, it is asked there.
    public func resolve(_ question: Question, dnssecOK: Bool = false, checkingDisabled: Bool = false,
                        completion: @escaping Completion) {
        let key = ResponseCache.Key(question, dnssecOK: dnssecOK, checkingDisabled: checkingDisabled)
        let now = cache.now()
        if let entry = cache.fresh(key, now: now) {
            completion(.answer(entry.aged(at: now)))
            maybePrefetch(entry, now: now)
            return
        }
        onQueue { [self] in
            if var list = waiting[key] {
                list.append(completion)
                waiting[key] = list
                return
            }
            guard inFlight < configuration.maxConcurrent else {
                completion(.failure(.overloaded))
                return
            }
            start(question, key: key, waiting: [completion])
        }
    }

    /// Runs `body` on the resolver's queue: at once when already there, else waiting for it.
    func onQueue(_ body: () -> Void) {
        if DispatchQueue.getSpecific(key: Self.queueKey) == ObjectIdentifier(self) {
            body()
        } else {
            queue.sync(execute: body)
        }
    }

    static let queueKey = DispatchSpecificKey<ObjectIdentifier>()

    /// Sends `question` upstream with the questions waiting for it; later identical questions
    /// join them until the answer (or the failure) is handed to all. On `queue`.
    func start(_ question: Question, key: ResponseCache.Key, waiting completions: [Completion]) {
        waiting[key] = completions
        inFlight += 1
        forward(question, key: key) { [self] outcome in
            inFlight -= 1
            for completion in waiting.removeValue(forKey: key) ?? [] { completion(outcome) }
        }
    }

    /// Refreshes an entry ahead of its expiry when it is popular and nearly expired.
    func maybePrefetch(_ entry: ResponseCache.Entry, now: UInt64) {
        let c = configuration.cache
        guard c.prefetchFraction > 0, entry.hits.load(ordering: .relaxed) >= c.prefetchHits,
              Double(entry.remaining(at: now)) <= Double(entry.lifetime) * c.prefetchFraction,
              entry.prefetching.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let key = entry.key
        let question = entry.question
        queue.async { [self] in
            guard waiting[key] == nil, inFlight < configuration.maxConcurrent else { return }
            start(question, key: key, waiting: [])
        }
    }

    /// Prefetch hook for the fast path (which found `entry` fresh): a composed answer's hit
    /// counts for the upstream's entry it ends in, the one to refresh.
    public func noteHit(_ entry: ResponseCache.Entry, now: UInt64) {
        if let source = entry.source {
            source.hits.add(1, ordering: .relaxed)
            maybePrefetch(source, now: now)
        } else {
            maybePrefetch(entry, now: now)
        }
    }

    /// The upstreams to try for `name`, in order: the longest matching group, healthy first.
    func candidates(for name: DomainName) -> [Upstream] {
        var best: Int? = nil
        for (index, group) in groups.enumerated() where name.isSubdomain(of: group.domain) && !group.upstreams.isEmpty {
            if best == nil || group.domain.labelCount > groups[best!].domain.labelCount { best = index }
        }
        guard let index = best else { return [] }
        var list = groups[index].upstreams
        switch configuration.policy {
        case .random:
            list.shuffle()
        case .roundRobin:
            let start = groups[index].next % list.count
            groups[index].next &+= 1
            list = Array(list[start...] + list[..<start])
        case .sequential:
            break
        }
        let maxFails = configuration.maxFails
        return list.filter { $0.fails < maxFails } + list.filter { $0.fails >= maxFails }
    }

    /// Queries the upstreams in turn until one answers, the deadline passes or each was asked
    /// twice; on `queue`.
    func forward(_ question: Question, key: ResponseCache.Key,
                 completion: @escaping (Outcome) -> Void) {
        let candidates = self.candidates(for: question.name)
        guard !candidates.isEmpty else {
            completion(.failure(.noUpstream))
            return
        }
        let deadline = clock.now() + configuration.deadline.wholeNanoseconds
        // Each upstream is asked at most twice per question: one that refuses at once is not
        // hammered until the deadline.
        let attempts = candidates.count * 2
        var attempt = 0
        func next() {
            let now = clock.now()
            guard now < deadline, attempt < attempts else {
                if let stale = cache.stale(key) {
                    completion(.stale(stale.aged(at: cache.now(), fixed: configuration.cache.staleTTL)))
                } else {
                    completion(.failure(.failed))
                }
                return
            }
            let upstream = candidates[attempt % candidates.count]
            attempt += 1
            let timeout = min(deadline, now + configuration.readTimeout.wholeNanoseconds)
            send(question, dnssecOK: key.dnssecOK, checkingDisabled: key.checkingDisabled, to: upstream,
                 until: timeout) { [self] result in
                switch result {
                case .success(let message):
                    let now = cache.now()
                    if let entry = cache.store(message, for: question, key: key, now: now) {
                        completion(.answer(entry.aged(at: now)))
                    } else {
                        completion(.answer(message))
                    }
                case .failure:
                    next()
                }
            }
        }
        next()
    }

    /// One exchange with one upstream, with health bookkeeping.
    func send(_ question: Question, dnssecOK: Bool, checkingDisabled: Bool, to upstream: Upstream,
              until deadline: UInt64, completion: @escaping (Result<Message, ExchangeError>) -> Void) {
        let id = UInt16.random(in: 0...UInt16.max)
        var header = Header(id: id, isRecursionDesired: true)
        header.isCheckingDisabled = checkingDisabled
        let message = Message(header: header, questions: [question],
                              edns: EDNS(udpPayloadSize: configuration.udpPayloadSize, isDNSSECOK: dnssecOK))
        let loopKey = LoopKey(id: id, type: question.type.rawValue, name: question.name.lookupKey)
        outstanding.withLock { _ = $0.insert(loopKey) }
        let started = clock.now()
        upstream.queries += 1
        let exchange = Exchange(query: message.encoded(), id: id, question: question, upstream: upstream.address,
                                deadline: deadline, queue: queue,
                                onMismatch: { [self] in mismatchCount.add(1, ordering: .relaxed) }) { [self] result in
            // The pool is topped up after the answer has gone on (below), here on `queue`: on
            // the loop's thread when the reply woke it, which then registers the new socket
            // itself; no other thread is woken for it.
            defer { refillNow(upstream.address) }
            outstanding.withLock { _ = $0.remove(loopKey) }
            let seconds = Double(clock.now() &- started) / 1e9
            switch result {
            case .success(let (message, _)):
                upstream.fails = 0
                observer?(upstream.address, seconds, true)
                completion(.success(message))
            case .failure(let error):
                upstream.failures += 1
                upstream.fails += 1
                observer?(upstream.address, seconds, false)
                if upstream.fails >= configuration.maxFails { startProbing(upstream) }
                completion(.failure(error))
            }
        }
        exchange.armed = takeArmed(upstream.address) ?? ArmedSocket(upstream: upstream.address, loop: loop, queue: queue)
        track(exchange)
    }

    /// A pre-opened socket for `address`, if one is ready; on `queue`.
    func takeArmed(_ address: SocketAddress) -> ArmedSocket? {
        guard var list = armed[address], !list.isEmpty else {
            refill(address)
            return nil
        }
        let socket = list.removeLast()
        armed[address] = list
        return socket
    }

    /// Tops the pool of `address` up, after the current work on `queue`.
    func refill(_ address: SocketAddress) {
        queue.async { [self] in refillNow(address) }
    }

    /// Tops the pool of `address` up now; on `queue`.
    func refillNow(_ address: SocketAddress) {
        guard !stopped else { return }
        var list = armed[address] ?? []
        while list.count < Self.armedPerUpstream, let socket = ArmedSocket(upstream: address, loop: loop, queue: queue) { list.append(socket) }
        armed[address] = list
    }

    /// Starts an exchange and keeps it until it ends. On `queue`.
    func track(_ exchange: Exchange) {
        exchange.start()
        guard !exchange.isFinished else { return }
        let key = ObjectIdentifier(exchange)
        exchanges[key] = exchange
        exchange.onFinish = { [unowned self] in exchanges.removeValue(forKey: key) }
        sweep(by: exchange.deadline)
    }

    /// One timer for every exchange's deadline and every probe, set for the earliest of them:
    /// no tick while nothing is due. Makes it fire by `instant` on the clock. On `queue`.
    func sweep(by instant: UInt64) {
        if let due = sweepDue, due <= instant { return }
        let timer: any DispatchSourceTimer
        if let sweeper {
            timer = sweeper
        } else {
            timer = DispatchSource.makeTimerSource(queue: queue)
            timer.setEventHandler { [self] in sweepNow() }
            timer.resume()
            sweeper = timer
        }
        let now = clock.now()
        timer.schedule(deadline: .now() + .nanoseconds(Int(clamping: instant > now ? instant - now : 0)), leeway: .milliseconds(2))
        sweepDue = instant
    }

    /// Ends the exchanges whose deadline has passed on the clock and probes the down upstreams
    /// that are due; the timer does this when the first is due, tests after advancing a
    /// `ManualClock`. Returns once done.
    public func sweep() { queue.sync { sweepNow() } }

    func sweepNow() {
        let now = clock.now()
        for (id, exchange) in exchanges {
            exchange.expire(now: now)
            if exchange.isFinished { exchanges.removeValue(forKey: id) }
        }
        for upstream in down.values {
            if let due = upstream.nextProbe, now >= due { probe(upstream) }
        }
        // The next sweep: when the earliest of what is left is due.
        sweepDue = nil
        let deadlines = exchanges.values.lazy.map(\.deadline)
        let probes = down.values.lazy.compactMap(\.nextProbe)
        guard let next = [deadlines.min(), probes.min()].compactMap({ $0 }).min() else {
            sweeper?.cancel()
            sweeper = nil
            return
        }
        sweep(by: max(next, now + Self.sweepInterval))
    }

    /// While an upstream is down, asks it `. IN NS` every `healthCheckInterval` until it answers.
    func startProbing(_ upstream: Upstream) {
        guard !upstream.probing, !stopped else { return }
        upstream.probing = true
        scheduleProbe(upstream)
    }

    func scheduleProbe(_ upstream: Upstream) {
        upstream.nextProbe = clock.now() + configuration.healthCheckInterval.wholeNanoseconds
        down[ObjectIdentifier(upstream)] = upstream
        sweep(by: upstream.nextProbe!)
    }

    func probe(_ upstream: Upstream) {
        upstream.nextProbe = nil
        guard !stopped, upstream.fails >= configuration.maxFails else {
            upstream.probing = false
            down.removeValue(forKey: ObjectIdentifier(upstream))
            return
        }
        let id = UInt16.random(in: 0...UInt16.max)
        let question = Question(name: .root, type: .ns)
        let query = Message(header: Header(id: id, isRecursionDesired: false), questions: [question]).encoded()
        let exchange = Exchange(query: query, id: id, question: question, upstream: upstream.address,
                                deadline: clock.now() + configuration.readTimeout.wholeNanoseconds, queue: queue) { [self] result in
            if case .success = result {
                upstream.fails = 0
                upstream.probing = false
                down.removeValue(forKey: ObjectIdentifier(upstream))
                return
            }
            scheduleProbe(upstream)
        }
        exchange.armed = ArmedSocket(upstream: upstream.address, loop: loop, queue: queue)
        track(exchange)
    }
}
