#if canImport(Glibc)
import Glibc
#endif
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
    /// Not this authority's name after all: the responder goes on as if no zone held it
    /// (forwards it for a client allowed recursion, REFUSED otherwise). The cluster's reverse
    /// names do this for addresses it does not know outside its service ranges, as CoreDNS's
    /// `fallthrough in-addr.arpa ip6.arpa`.
    case fallThrough
}

/// A zone the server answers for: the cluster zone from the registry (`KubernetesDNS`), its
/// reverse zones, a static zone from a zone file, or an embedder's own.
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
    /// The zone's answers pre-encoded for the fast path, as they are now; nil: every question
    /// takes the general path (`lookup`).
    var precompiled: Precompiled? { get }
    /// Every record of the zone for a transfer (AXFR), the SOA first; nil: not transferable.
    func transferRecords() -> [ResourceRecord]?
}

extension Authority {
    public var namesTakeOnlyTheApexLetters: Bool { false }
    public var precompiled: Precompiled? { nil }
    public func transferRecords() -> [ResourceRecord]? { nil }
}

/// Routes a name to the authority of the longest matching zone, by labels (never by string
/// suffix: `evilcluster.local` is not in `cluster.local`). Zones can be added, replaced and
/// removed while queries are answered (zone reloads): readers take the current table under a
/// lock and walk it without one.
public final class Catalog: Sendable {
    struct Table: Sendable {
        var byOrigin: [DomainName: any Authority] = [:]
        /// The zones by their apex keys, for the fast path.
        var byKey = KeyTable([:])

        init(_ authorities: [any Authority]) {
            for authority in authorities { byOrigin[authority.origin] = authority }
            byKey = KeyTable(byOrigin)
        }
    }

    /// Every zone's apex as a lower-cased wire key (without the root's zero), longest first,
    /// the keys back to back in one array: the fast path finds a query's zone on its key with
    /// no allocation and no reference counted per zone looked at.
    final class KeyTable: Sendable {
        let keys: [UInt8]
        let ranges: [Range<Int>]
        let authorities: [any Authority]

        init(_ zones: [DomainName: any Authority]) {
            let sorted = zones.map { (Array($0.key.lookupKey.dropLast()), $0.value) }.sorted { $0.0.count > $1.0.count }
            var keys: [UInt8] = []
            var ranges: [Range<Int>] = []
            for (key, _) in sorted {
                ranges.append(keys.count..<(keys.count + key.count))
                keys += key
            }
            self.keys = keys
            self.ranges = ranges
            authorities = sorted.map(\.1)
        }

        /// The index of the longest zone whose apex ends the name in `key` (`length` bytes
        /// with the root's zero), and where that apex starts.
        func find(_ key: UnsafeRawBufferPointer, length: Int) -> (index: Int, apexStart: Int)? {
            keys.withUnsafeBytes { keys in
                ranges.withUnsafeBufferPointer { ranges in
                    for (index, range) in ranges.enumerated() {
                        guard length - 1 >= range.count else { continue }
                        let start = length - 1 - range.count
                        // The bytes first (most zones differ at once), the label boundary on a match.
                        guard range.isEmpty || memcmp(key.baseAddress! + start, keys.baseAddress! + range.lowerBound, range.count) == 0,
                              Precompiled.isLabelBoundary(key, start) else { continue }
                        return (index, start)
                    }
                    return nil
                }
            }
        }
    }

    let table: Mutex<Table>

    public init(_ authorities: [any Authority] = []) {
        table = Mutex(Table(authorities))
    }

    /// Adds an authority, replacing any for the same zone.
    public func add(_ authority: any Authority) {
        table.withLock {
            $0.byOrigin[authority.origin] = authority
            $0.byKey = KeyTable($0.byOrigin)
        }
    }

    public func remove(_ origin: DomainName) {
        table.withLock {
            _ = $0.byOrigin.removeValue(forKey: origin)
            $0.byKey = KeyTable($0.byOrigin)
        }
    }

    public var zones: [DomainName] { table.withLock { $0.byOrigin.keys.sorted() } }

    public func authority(zone origin: DomainName) -> (any Authority)? { table.withLock { $0.byOrigin[origin] } }

    /// The authority of the closest enclosing zone, or nil when no zone encloses `name`.
    public func authority(for name: DomainName) -> (any Authority)? {
        let table = self.table.withLock { $0.byOrigin }
        for candidate in name.selfAndAncestors {
            if let authority = table[candidate] { return authority }
        }
        return nil
    }

    /// The authority of the closest enclosing zone of a name given as its lower-cased wire form
    /// (`QueryView`'s key, with the root's zero), and where its apex starts in the key.
    func authority(forKey key: UnsafeRawBufferPointer, length: Int) -> (authority: any Authority, apexStart: Int)? {
        let zones = table.withLock { $0.byKey }
        guard let (index, start) = zones.find(key, length: length) else { return nil }
        return (zones.authorities[index], start)
    }
}
