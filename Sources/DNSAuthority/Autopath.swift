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

    public init(pods: any SearchPathSource, hostDomains: [DomainName], counters: Counters = Counters()) {
        self.pods = pods
        self.hostDomains = hostDomains
        self.counters = counters
    }

    /// What autopath has done, for metrics.
    public final class Counters: Sendable {
        let hitCount = Atomic<Int>(0)
        let missCount = Atomic<Int>(0)
        let stepCount = Atomic<Int>(0)
        let savedCount = Atomic<Int>(0)
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
    }

    /// The walk for a query of `question` from `client` whose ordinary answer is `ordinary`
    /// (NXDOMAIN); nil when autopath does not apply: the client is not a pod, or the name is not
    /// below the first name of its search path. CNAME and ANY questions are answered as asked:
    /// the alias autopath adds would be mistaken for the data they ask for.
    func walk(for question: Question, client: IPAddress, ordinary: Message, questionSuffixLabels: Int?) -> SearchWalk? {
        guard question.type != .cname, question.type != .any,
              let cluster = pods.clusterSearchPath(of: client), let first = cluster.first,
              question.name.labelCount > first.labelCount, question.name.isSubdomain(of: first) else { return nil }
        let base = Array(question.name.labels.dropLast(first.labelCount))
        return SearchWalk(asked: question, base: base, rest: (cluster.dropFirst() + hostDomains + [.root])[...],
                          ordinary: ordinary, questionSuffixLabels: questionSuffixLabels)
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
            case .nameError(_, let chain) where chain.isEmpty:
                continue
            case .fallThrough:
                guard recursive, recursion!.forwards(candidate) else { continue }
                var response = shape.message(questions: [walk.asked])
                response.answers = [walk.alias(to: candidate)]
                return .forward(Forwarding(response: response, target: question, shape: shape,
                                           questionSuffixLabels: walk.questionSuffixLabels, walk: walk))
            case .answer, .noData, .nameError:
                counters?.hitCount.add(1, ordering: .relaxed)
                counters?.savedCount.add(walk.step, ordering: .relaxed)
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
                break steps
            }
        }
        counters?.missCount.add(1, ordering: .relaxed)
        return .done(walk.ordinary, shape, questionSuffixLabels: walk.questionSuffixLabels)
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
            return .response(completeBytes(forwarding, upstream: upstream))
        case .nameError?:
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
