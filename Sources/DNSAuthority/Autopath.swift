import Dispatch
public import DNSWire
public import NetAddress
import Synchronization

/// Which clients are pods, and the cluster's part of their search path: what autopath walks for
/// them. The cluster zone answers it from the pod addresses it already indexes.
public protocol SearchPathSource: Sendable {
    /// `<ns>.svc.<zone>`, `svc.<zone>`, `<zone>` for a pod at `client` that resolves through
    /// the cluster's search path; nil for every other client.
    func clusterSearchPath(of client: IPAddress) -> [DomainName]?
}

/// Server-side search path completion (CoreDNS's `autopath @kubernetes`): a pod's query for
/// `<name>.<ns>.svc.<zone>` that does not exist is answered with the first name of the pod's
/// search path that does, behind a CNAME from the name asked, so that the pod's resolver stops
/// after one round trip instead of walking its search path itself.
public struct Autopath: Sendable {
    public var pods: any SearchPathSource
    /// The node's search domains: kubelet puts them after the cluster's in a pod's resolv.conf.
    public var hostDomains: [DomainName]
    public let counters: Counters
    /// What recent walks found.
    public let memo: Memo

    /// `now`: nanoseconds on a monotonic clock (default: uptime), what ages the memo; give it the
    /// response cache's clock, so that a remembered walk and the cached answers it skipped age together.
    public init(pods: any SearchPathSource, hostDomains: [DomainName], counters: Counters = Counters(),
                memoCapacity: Int = 10_000, now: (@Sendable () -> UInt64)? = nil) {
        self.pods = pods
        self.hostDomains = hostDomains
        self.counters = counters
        self.memo = Memo(capacity: memoCapacity, now: now ?? { DispatchTime.now().uptimeNanoseconds })
    }

    /// What autopath has done, for metrics.
    public final class Counters: Sendable {
        let hitCount = Atomic<Int>(0)
        let missCount = Atomic<Int>(0)
        let stepCount = Atomic<Int>(0)
        let savedCount = Atomic<Int>(0)
        let recalledCount = Atomic<Int>(0)
        let aheadCount = Atomic<Int>(0)
        public init() {}

        /// Walks that found a name: the client got it in one round trip.
        public var hits: Int { hitCount.load(ordering: .relaxed) }
        /// Walks that found nothing: the client got the ordinary answer and walks on itself.
        public var misses: Int { missCount.load(ordering: .relaxed) }
        /// Names looked up for walks, beyond the name asked.
        public var steps: Int { stepCount.load(ordering: .relaxed) }
        /// Queries the clients did not have to send: for a hit at the search path's n-th name
        /// after the one asked, n.
        public var roundTripsSaved: Int { savedCount.load(ordering: .relaxed) }
        /// Walks that went straight to what an earlier walk found (`Memo`).
        public var recalled: Int { recalledCount.load(ordering: .relaxed) }
        /// Upstream names asked ahead of the walk (`Responder.Forwarding.ahead`).
        public var askedAhead: Int { aheadCount.load(ordering: .relaxed) }
    }

    /// What recent walks found, so that a repeated lookup goes straight to the name that answered
    /// (one cache hit behind the alias) or to the ordinary answer, instead of asking every name
    /// before it again. The key is what the client wrote before its search path's first name and
    /// the type: the path after that name is the same for every pod, so one pod's walk serves
    /// all. An entry lasts as long as the shortest negative answer the walk passed over
    /// (RFC 2308: the time the absence of those names may be believed), at most
    /// `maximumLifetime`; the answer it points to is looked up again every time.
    public final class Memo: Sendable {
        struct Key: Hashable {
            /// The labels before the search path, lower-cased, in wire form.
            var base: [UInt8]
            var type: RecordType
            var recordClass: RecordClass
            /// Clients allowed recursion walk upstream names; the others pass over them.
            var recursive: Bool
        }

        enum Outcome: Equatable {
            /// The name that answered is the search path's name after `skipping` others.
            case found(skipping: Int)
            /// No name answered: the ordinary answer.
            case nothing
        }

        struct Entry {
            var outcome: Outcome
            var expires: UInt64
        }

        /// A name that starts to exist upstream is seen within this many seconds, whatever the
        /// negative TTLs of the names before it.
        public static let maximumLifetime: UInt32 = 300
        let entries = Mutex<[Key: Entry]>([:])
        let capacity: Int
        let now: @Sendable () -> UInt64

        init(capacity: Int, now: @escaping @Sendable () -> UInt64) {
            self.capacity = capacity
            self.now = now
        }

        /// How many walks are remembered (expired ones included until they are swept).
        public var count: Int { entries.withLock { $0.count } }

        static func key(base labels: [ArraySlice<UInt8>], question: Question, recursive: Bool) -> Key {
            var base: [UInt8] = []
            for label in labels {
                base.append(UInt8(label.count))
                for byte in label { base.append(byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte) }
            }
            return Key(base: base, type: question.type, recordClass: question.recordClass, recursive: recursive)
        }

        func recall(_ key: Key) -> Outcome? {
            let now = now()
            return entries.withLock { entries in
                guard let entry = entries[key] else { return nil }
                guard entry.expires > now else {
                    entries[key] = nil
                    return nil
                }
                return entry.outcome
            }
        }

        /// Keeps what `walk` found for as long as every name it passed over may be taken not to
        /// exist. A full table is swept of expired entries, and emptied if that frees nothing:
        /// the memo saves round trips, it never holds the only copy of an answer.
        func remember(_ walk: SearchWalk, _ outcome: Outcome) {
            guard walk.validFor > 0, outcome != .found(skipping: 0) else { return }
            let now = now()
            let expires = now + UInt64(min(walk.validFor, Self.maximumLifetime)) * 1_000_000_000
            let key = walk.memoKey
            entries.withLock { entries in
                if entries.count >= capacity, entries[key] == nil {
                    entries = entries.filter { $0.value.expires > now }
                    if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
                }
                entries[key] = Entry(outcome: outcome, expires: expires)
            }
        }
    }

    /// The walk for a query of `question` from `client` whose ordinary answer is `ordinary`
    /// (NXDOMAIN); nil when autopath does not apply: the client is not a pod, or the name is not
    /// below the first name of its search path. CNAME and ANY questions are answered as asked:
    /// the alias autopath adds would be mistaken for the data they ask for.
    func walk(for question: Question, client: IPAddress, ordinary: Message, questionSuffixLabels: Int?,
              recursive: Bool) -> SearchWalk? {
        guard question.type != .cname, question.type != .any,
              let cluster = pods.clusterSearchPath(of: client), let first = cluster.first,
              question.name.labelCount > first.labelCount, question.name.isSubdomain(of: first) else { return nil }
        let base = Array(question.name.labels.dropLast(first.labelCount))
        var walk = SearchWalk(asked: question, base: base, rest: (cluster.dropFirst() + hostDomains + [.root])[...],
                              ordinary: ordinary, questionSuffixLabels: questionSuffixLabels,
                              memoKey: Memo.key(base: base, question: question, recursive: recursive))
        if let outcome = memo.recall(walk.memoKey) {
            counters.recalledCount.add(1, ordering: .relaxed)
            walk.resume(after: outcome)
        }
        return walk
    }
}

/// A search path being walked for one query: the names still to try, and the ordinary answer
/// to give when none of them exists.
public struct SearchWalk: Sendable {
    /// The question as the client wrote it.
    let asked: Question
    /// The labels the client put before its search path's first name, in its letters.
    let base: [ArraySlice<UInt8>]
    /// The suffixes still to try, in the search path's order; the root (the name itself) last.
    var rest: ArraySlice<DomainName>
    /// How many names have been looked up after the one asked.
    var step = 0
    let ordinary: Message
    let questionSuffixLabels: Int?
    /// Seconds for which every name passed over so far may be taken not to exist: the least
    /// negative TTL met. 0 once that is not known (a remembered walk, an answer without an SOA).
    var validFor: UInt32 = .max
    /// Its later upstream names have been asked ahead (once per walk).
    var lookedAhead = false
    /// Where the memo keeps what this walk finds, made once per walk.
    let memoKey: Autopath.Memo.Key

    /// Goes to where an earlier walk of the same names ended. Its names before that are not
    /// looked up, so how long their absence holds is not known here: nothing is remembered again.
    /// The name found is expected to answer: the names after it are not asked ahead.
    mutating func resume(after outcome: Autopath.Memo.Outcome) {
        validFor = 0
        lookedAhead = true
        switch outcome {
        case .found(let skipping):
            let count = min(skipping, rest.count)
            rest = rest.dropFirst(count)
            step += count
        case .nothing:
            step += rest.count
            rest = rest.suffix(0)
        }
    }

    /// A name passed over does not exist for `ttl` seconds (the negative TTL of its SOA,
    /// RFC 2308 §5; nil: no SOA came with it).
    mutating func passed(over soa: ResourceRecord?) {
        guard case .soa(let data)? = soa?.data, let ttl = soa?.ttl else {
            validFor = 0
            return
        }
        validFor = min(validFor, ttl, data.minimum)
    }

    /// The next name to try and its place in the walk; nil once the search path is exhausted.
    /// Names that would be too long are passed over, as a stub resolver does.
    mutating func next() -> DomainName? {
        while let suffix = rest.first {
            rest = rest.dropFirst()
            step += 1
            if let name = try? DomainName(labels: base + suffix.labels) { return name }
        }
        return nil
    }

    /// A CNAME from the name asked to `target`; its TTL is set once the target's answer is known
    /// (`Responder.settleAliasTTL`).
    func alias(to target: DomainName) -> ResourceRecord {
        ResourceRecord(name: asked.name, ttl: 0, data: .cname(target))
    }
}

extension Responder {
    /// Walks the search path on from `walk`'s next name: the first that exists answers behind a
    /// CNAME from the name asked; a name outside our zones is asked upstream (the walk goes on in
    /// `resume` when it does not exist there either); when none exists, the ordinary answer.
    func walk(_ walk: SearchWalk, shape: ReplyShape, recursive: Bool) -> Prepared {
        var walk = walk
        let counters = autopath?.counters
        steps: while let candidate = walk.next() {
            counters?.stepCount.add(1, ordering: .relaxed)
            let question = Question(name: candidate, type: walk.asked.type, recordClass: walk.asked.recordClass)
            let found = catalog.authority(for: candidate)?.lookup(question) ?? .fallThrough
            switch found {
            case .nameError(let soa, let chain) where chain.isEmpty:
                walk.passed(over: soa)
                continue
            case .fallThrough:
                guard recursive, recursion!.forwards(candidate) else { continue }
                var response = shape.message(questions: [walk.asked])
                response.answers = [walk.alias(to: candidate)]
                var forwarding = Forwarding(response: response, target: question, shape: shape,
                                            questionSuffixLabels: walk.questionSuffixLabels, walk: walk)
                if !walk.lookedAhead {
                    forwarding.ahead = upstreamNames(after: walk)
                    forwarding.walk?.lookedAhead = true
                    counters?.aheadCount.add(forwarding.ahead.count, ordering: .relaxed)
                }
                return .forward(forwarding)
            case .answer, .noData, .nameError:
                counters?.hitCount.add(1, ordering: .relaxed)
                counters?.savedCount.add(walk.step, ordering: .relaxed)
                autopath?.memo.remember(walk, .found(skipping: walk.step - 1))
                var response = shape.message(questions: [walk.asked])
                response.header.isAuthoritative = true
                var target = Message(header: response.header)
                Self.fill(&target, with: found, question: question)
                response.answers = [walk.alias(to: candidate)] + target.answers
                response.authorities = target.authorities
                response.additionals = target.additionals
                response.rcode = target.rcode
                Self.settleAliasTTL(&response)
                if case .answer = found { return follow(response, question: question, shape: shape, recursive: recursive,
                                                        questionSuffixLabels: walk.questionSuffixLabels) }
                return finish(response, shape: shape, questionSuffixLabels: walk.questionSuffixLabels)
            case .referral, .serverFailure, .refused:
                // A delegated or failing zone: the walk cannot say what the name is; the client's
                // own walk asks it and gets that answer.
                walk.validFor = 0
                break steps
            }
        }
        if walk.rest.isEmpty { autopath?.memo.remember(walk, .nothing) }
        counters?.missCount.add(1, ordering: .relaxed)
        return .done(walk.ordinary, shape, questionSuffixLabels: walk.questionSuffixLabels)
    }

    /// The questions for the names left in `walk` that are in none of our zones and forwarded:
    /// what its next upstream steps will ask.
    func upstreamNames(after walk: SearchWalk) -> [Question] {
        var walk = walk
        var names: [Question] = []
        while let candidate = walk.next() {
            guard catalog.authority(for: candidate) == nil, recursion?.forwards(candidate) == true else { continue }
            names.append(Question(name: candidate, type: walk.asked.type, recordClass: walk.asked.recordClass))
        }
        return names
    }

    /// The alias takes the TTL of what it leads to: the target's first record, or for a
    /// negative answer its SOA's (how long the absence may be cached, RFC 2308).
    static func settleAliasTTL(_ response: inout Message) {
        guard !response.answers.isEmpty else { return }
        if let ttl = response.answers.dropFirst().first?.ttl ?? response.authorities.first(where: { $0.type == .soa })?.ttl {
            response.answers[0].ttl = ttl
        }
    }

    /// What follows an upstream's answer to `forwarding`: its completed response, or for a step of
    /// a search path walk that found nothing there, the walk's next step (or its ordinary answer).
    /// `upstream` nil: no upstream answered (`overloaded`: too many questions were waiting).
    public func resume(_ forwarding: Forwarding, upstream: Message?, overloaded: Bool = false) -> Resolution {
        guard let walk = forwarding.walk else { return .response(completeBytes(forwarding, upstream: upstream, overloaded: overloaded)) }
        let counters = autopath?.counters
        switch upstream?.rcode {
        case .noError?:
            counters?.hitCount.add(1, ordering: .relaxed)
            counters?.savedCount.add(walk.step, ordering: .relaxed)
            autopath?.memo.remember(walk, .found(skipping: walk.step - 1))
            return .response(completeBytes(forwarding, upstream: upstream))
        case .nameError?:
            var walk = walk
            walk.passed(over: upstream?.authorities.first { $0.type == .soa })
            switch self.walk(walk, shape: forwarding.shape, recursive: true) {
            case .drop: return .drop
            case .forward(let next): return .forward(next)
            case .done(let response, let shape, let suffix): return .response(Self.encode(response, shape: shape, questionSuffixLabels: suffix))
            }
        default:
            // The upstream failed: what the name would be is not known, so the client gets the
            // true answer to what it asked and its own walk meets the failure as it would have.
            counters?.missCount.add(1, ordering: .relaxed)
            return .response(Self.encode(walk.ordinary, shape: forwarding.shape, questionSuffixLabels: walk.questionSuffixLabels))
        }
    }
}
