#if canImport(Glibc)
import Glibc
#endif
public import DNSWire

/// A zone's answers pre-encoded for the fast path, as the zone is at one moment (NSD
/// precompiles every zone; the cluster zone and static zones both do here). Immutable: a zone
/// that changes publishes a new one.
public final class Precompiled: Sendable {
    /// The answers by name and type.
    public let answers: CompiledZone
    /// The zone's SOA as negative answers carry it.
    public let soa: RecordTemplate
    /// Subtrees whose names only the general path answers (names synthesised at lookup, like
    /// pod names and wildcards, and delegations): their apexes as lower-cased wire keys
    /// without the root's zero.
    public let generalSubtrees: [[UInt8]]
    /// Whether a name missing from `answers` is NXDOMAIN; false: the general path decides (a
    /// registry still loading answers SERVFAIL).
    public let missIsNameError: Bool

    public init(answers: CompiledZone, soa: RecordTemplate, generalSubtrees: [DomainName] = [], missIsNameError: Bool = true) {
        self.answers = answers
        self.soa = soa
        self.generalSubtrees = generalSubtrees.map { Array($0.lookupKey.dropLast()) }
        self.missIsNameError = missIsNameError
    }

    /// True when a label starts at `offset` of the wire name in `key`.
    static func isLabelBoundary(_ key: UnsafeRawBufferPointer, _ offset: Int) -> Bool {
        var i = 0
        while i < offset { i += Int(key[i]) + 1 }
        return i == offset
    }

    @inline(__always)
    static func bytesEqual(_ key: UnsafeRawBufferPointer, from start: Int, _ expected: [UInt8]) -> Bool {
        expected.withUnsafeBytes { expected in
            expected.count == 0 || memcmp(key.baseAddress! + start, expected.baseAddress!, expected.count) == 0
        }
    }

    /// Whether the name in `key` (`length` bytes with the root's zero) lies in one of the
    /// general path's subtrees.
    func inGeneralSubtree(_ key: UnsafeRawBufferPointer, length: Int) -> Bool {
        for subtree in generalSubtrees where length - 1 >= subtree.count {
            let start = length - 1 - subtree.count
            if Self.isLabelBoundary(key, start), Self.bytesEqual(key, from: start, subtree) { return true }
        }
        return false
    }
}

extension CompiledZone {
    /// The pre-encoded answers of one name for each of `types` the general path answers with
    /// records: what `lookup` says for the name, put in the sections and encoded exactly as the
    /// general path does, so that the fast path's bytes are the general path's. An answer whose
    /// chain ends in a CNAME is marked as leaving the zone (the general path follows it into
    /// other zones or upstream); so is a chain to a name of the zone that does not exist
    /// (`dangling`: the general path adds the target's NXDOMAIN).
    /// A zone's apex as the compilation of its names needs it, made once per zone.
    public struct Apex: Sendable {
        /// Its labels: the question's last labels names in answers may point to.
        public let labels: Int
        /// Its lower-cased wire form without the root's zero.
        let key: [UInt8]

        public init(_ origin: DomainName) {
            labels = origin.labelCount
            key = Array(origin.lookupKey.dropLast())
        }
    }

    /// `apex`: names in answers copy only the apex's letters from the question
    /// (`Authority.namesTakeOnlyTheApexLetters`); nil: any suffix of the question.
    public static func answers(for name: DomainName, types: [RecordType], apex: Apex?,
                               lookup: (Question) -> Lookup) -> [Answer] {
        var list: [Answer] = []
        let apexLabels = apex?.labels
        // The question's name in storage of its own (`lowercased` copies), as a client's
        // question has: only the owners that echo it may point at it whole
        // (`WireWriter.writeQuestionName`), not every record of the zone that names it.
        let questionName = name.lowercased
        var writer = WireWriter(capacity: 512)
        for type in types {
            let question = Question(name: questionName, type: type)
            let lookup = lookup(question)
            var dangling = false
            switch lookup {
            case .answer: break
            case .nameError(_, let chain) where !chain.isEmpty && type != .cname: dangling = true
            case .serverFailure where type != .cname: dangling = true
            default: continue
            }
            var message = Message(header: Header(isResponse: true), questions: [question])
            Responder.fill(&message, with: lookup, question: question)
            message.encode(into: &writer, questionSuffixLabels: apexLabels)
            let questionEnd = 12 + name.wireLength + 4
            // SRV targets under the apex take the question's letters there (see
            // `Responder.apexLettersOfSRVTargets`): where, in the answer's bytes. The fast path
            // copies them from the question, so the targets are not rewritten here.
            let letters = type == .srv && apex != nil
                ? writer.withUnsafeBytes { ResourceRecord.srvTargetApexOffsets(in: $0, recordsAt: questionEnd, count: message.answers.count,
                                                                                apexKey: apex!.key) }
                : []
            list.append(Answer(type: type.rawValue,
                               counts: (UInt16(message.answers.count), UInt16(message.authorities.count),
                                        UInt16(message.additionals.count)),
                               bytes: Array(writer.bytes[questionEnd...]),
                               leavesZone: dangling || (type != .cname && message.answers.last?.type == .cname),
                               apexLetters: letters))
        }
        return list
    }
}
