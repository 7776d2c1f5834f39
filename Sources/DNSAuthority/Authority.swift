public import DNSWire
import Synchronization

/// What an authority says about one question. Rcodes are not decided here: the `Responder`
/// turns a lookup into a response.
public enum Lookup: Hashable, Sendable {
    /// Records for the name and type (possibly a CNAME chain), with additional records (glue).
    case answer([ResourceRecord], additional: [ResourceRecord])
    /// The name exists but has no data of the type: NOERROR with the SOA in authority.
    case noData(soa: ResourceRecord)
    /// The name does not exist: NXDOMAIN with the SOA in authority. `answer` holds a CNAME
    /// chain that led there, if any.
    case nameError(soa: ResourceRecord, answer: [ResourceRecord])
    /// A delegation: NS records in authority, glue in additional (static zones).
    case referral(ns: [ResourceRecord], glue: [ResourceRecord])
    /// The authority cannot answer yet (the registry is still loading).
    case serverFailure
    /// Not for us (transfers, classes we do not serve).
    case refused
}

/// A zone the server answers for: the cluster zone from the registry, a static zone, or (issue 5)
/// forwarding to upstreams.
public protocol Authority: Sendable {
    /// The apex of the zone this authority answers for.
    var origin: DomainName { get }
    /// Answers a question whose name is at or below `origin`.
    func lookup(_ question: Question) -> Lookup
    /// Whether names in answers copy the question's letters for the zone's apex only (and the
    /// question's own name where they echo it), as CoreDNS answers the cluster zone: the
    /// labels below the apex read as the zone wrote them. False: a name may copy any suffix
    /// of the question it shares.
    var namesTakeOnlyTheApexLetters: Bool { get }
}

extension Authority {
    public var namesTakeOnlyTheApexLetters: Bool { false }
}

/// Routes a name to the authority of the longest matching zone, by labels (never by string
/// suffix: `evilcluster.local` is not in `cluster.local`). Zones can be added, replaced and
/// removed while queries are answered (zone reloads): readers take the current table under a
/// lock and walk it without one.
public final class Catalog: Sendable {
    let table: Mutex<[DomainName: any Authority]>

    public init(_ authorities: [any Authority] = []) {
        var table: [DomainName: any Authority] = [:]
        for authority in authorities { table[authority.origin] = authority }
        self.table = Mutex(table)
    }

    /// Adds an authority, replacing any for the same zone.
    public func add(_ authority: any Authority) { table.withLock { $0[authority.origin] = authority } }

    public func remove(_ origin: DomainName) { table.withLock { _ = $0.removeValue(forKey: origin) } }

    public var zones: [DomainName] { table.withLock { $0.keys.sorted() } }

    public func authority(zone origin: DomainName) -> (any Authority)? { table.withLock { $0[origin] } }

    /// The authority of the closest enclosing zone, or nil when no zone encloses `name`.
    public func authority(for name: DomainName) -> (any Authority)? {
        let table = self.table.withLock { $0 }
        for candidate in name.selfAndAncestors {
            if let authority = table[candidate] { return authority }
        }
        return nil
    }
}
