public import DNSWire
public import ZoneFile

/// A static zone from a zone file, answered authoritatively: exact matches, CNAME chains inside
/// the zone, wildcards (RFC 4592), delegations with glue, NXDOMAIN and NODATA with the SOA
/// (negative TTL per RFC 2308: the smaller of the SOA's TTL and its MINIMUM). Everything is
/// indexed when the zone is loaded; a lookup walks the question's labels once.
public struct StaticAuthority: Authority {
    public let zone: Zone
    public var origin: DomainName { zone.origin }
    /// RRsets by owner, then type, in zone order.
    let nodes: [DomainName: [RecordType: [ResourceRecord]]]
    /// Every owner and every empty non-terminal between an owner and the apex.
    let names: Set<DomainName>
    /// The SOA as it goes in negative answers.
    let negativeSOA: ResourceRecord
    /// Every answer pre-encoded for the fast path, made once when the zone is loaded.
    public private(set) var precompiled: Precompiled?

    static let maxChain = 8

    public init(zone: Zone) {
        self.zone = zone
        var nodes: [DomainName: [RecordType: [ResourceRecord]]] = [:]
        var names: Set<DomainName> = [zone.origin]
        for record in zone.records {
            nodes[record.name, default: [:]][record.type, default: []].append(record)
            for ancestor in record.name.selfAndAncestors {
                if !names.insert(ancestor).inserted || ancestor == zone.origin { break }
            }
        }
        self.nodes = nodes
        self.names = names
        let soaRecord = zone.records.first { $0.type == .soa }!
        var negative = soaRecord
        negative.ttl = min(soaRecord.ttl, zone.soa.minimum)
        negativeSOA = negative
        precompiled = nil
        precompiled = compile()
    }

    public var namesTakeOnlyTheApexLetters: Bool { true }

    public func transferRecords() -> [ResourceRecord]? { zone.records }

    /// The answers of every name for the fast path. Names below a delegation (referrals) and
    /// below a wildcard's parent (synthesised at lookup) are left to the general path whole.
    func compile() -> Precompiled {
        var general: [DomainName] = []
        for (name, types) in nodes {
            if name != origin, types[.ns] != nil { general.append(name) }
            if name.labels.first.map({ $0.elementsEqual([UInt8(ascii: "*")]) }) == true, let parent = name.parent { general.append(parent) }
        }
        var builder = CompiledZone.Builder(suffixLength: origin.wireLength)
        let apex = CompiledZone.Apex(origin)
        for name in names where !general.contains(where: { name.isSubdomain(of: $0) }) {
            let node = nodes[name] ?? [:]
            let types = node[.cname] != nil ? CompiledZone.compiledTypes : CompiledZone.compiledTypes.filter { node[$0] != nil }
            var answers = CompiledZone.answers(for: name, types: types, apex: apex) { lookup($0) }
            // Records of a type not compiled: questions for types this name lacks go to the
            // general path (it answers those records, and NODATA for the rest).
            if node.keys.contains(where: { !CompiledZone.compiledTypes.contains($0) }) { answers.append(CompiledZone.otherTypes) }
            builder.add(name, answers: answers)
        }
        return Precompiled(answers: builder.finish(), soa: RecordTemplate([negativeSOA], apex: origin), generalSubtrees: general)
    }

    public func lookup(_ question: Question) -> Lookup {
        var chain: [ResourceRecord] = []
        var name = question.name
        var visited: Set<DomainName> = []
        while true {
            if let cut = delegation(above: name, question: question) {
                // A referral after a CNAME is still an answer for the client: the chain so far.
                if !chain.isEmpty { return .answer(chain, additional: []) }
                return cut
            }
            let node = nodes[name]
            guard let found = node ?? wildcard(for: name) else {
                if names.contains(name) {
                    return chain.isEmpty ? .noData(soa: negativeSOA) : .answer(chain, additional: [])
                }
                return .nameError(soa: negativeSOA, answer: chain)
            }
            let owned = node == nil ? found.mapValues { $0.map { Self.renamed($0, to: name) } } : found
            if question.type == .any {
                let all = owned.values.flatMap { $0 }
                return .answer(chain + all, additional: [])
            }
            if let records = owned[question.type] {
                return .answer(chain + records, additional: additional(for: records))
            }
            if let cname = owned[.cname]?.first, case .cname(let target) = cname.data {
                chain.append(cname)
                visited.insert(name)
                // Leaving the zone (or looping, or too long a chain) ends the answer here; the
                // responder decides whether to follow the target elsewhere.
                guard target.isSubdomain(of: origin), !visited.contains(target), chain.count < Self.maxChain else {
                    return .answer(chain, additional: [])
                }
                name = target
                continue
            }
            return chain.isEmpty ? .noData(soa: negativeSOA) : .answer(chain, additional: [])
        }
    }

    /// A referral when `name` is at or below a delegation point (other than the apex). A DS
    /// question at the cut itself belongs to the parent side.
    func delegation(above name: DomainName, question: Question) -> Lookup? {
        // From the name up to (not including) the apex, the highest cut wins.
        var cut: [ResourceRecord]? = nil
        for ancestor in name.selfAndAncestors {
            if ancestor == origin { break }
            if let ns = nodes[ancestor]?[.ns] {
                if ancestor == name && question.type == .ds { continue }
                cut = ns
            }
        }
        guard let ns = cut else { return nil }
        var glue: [ResourceRecord] = []
        for record in ns {
            guard case .ns(let host) = record.data, host.isSubdomain(of: origin) else { continue }
            glue += nodes[host]?[.a] ?? []
            glue += nodes[host]?[.aaaa] ?? []
        }
        return .referral(ns: ns, glue: glue)
    }

    /// The wildcard RRsets that synthesise `name` (RFC 4592): `*.` at the closest encloser,
    /// provided no name between the closest encloser and `name` exists.
    func wildcard(for name: DomainName) -> [RecordType: [ResourceRecord]]? {
        guard name.isSubdomain(of: origin), name != origin else { return nil }
        var encloser = name.parent
        while let candidate = encloser {
            if names.contains(candidate) {
                guard let star = try? candidate.prepending(label: [UInt8(ascii: "*")]) else { return nil }
                return nodes[star]
            }
            if candidate == origin { return nil }
            encloser = candidate.parent
        }
        return nil
    }

    /// Address records of in-zone targets of MX, SRV and NS data (RFC 1035 additional processing).
    func additional(for records: [ResourceRecord]) -> [ResourceRecord] {
        var out: [ResourceRecord] = []
        for record in records {
            let target: DomainName
            switch record.data {
            case .mx(let mx): target = mx.exchange
            case .srv(let srv): target = srv.target
            case .ns(let host): target = host
            default: continue
            }
            guard target.isSubdomain(of: origin), delegation(above: target, question: Question(name: target, type: .a)) == nil
                  || record.type == .ns else { continue }
            out += nodes[target]?[.a] ?? []
            out += nodes[target]?[.aaaa] ?? []
        }
        return out
    }

    static func renamed(_ record: ResourceRecord, to name: DomainName) -> ResourceRecord {
        var record = record
        record.name = name
        return record
    }
}
