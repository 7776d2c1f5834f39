import DNSWire

/// The checks a zone must pass before it is served (RFC 1034 §4.2, RFC 2181 §10.1):
/// one SOA at the apex, NS at the apex, no CNAME beside other data, no data outside the zone,
/// nothing but address glue below a delegation. Duplicate records are dropped.
enum ZoneChecker {
    static func check(origin: DomainName, records: [(ResourceRecord, SourceLocation)]) throws(ZoneFileError) -> [ResourceRecord] {
        func fail(_ message: String, _ location: SourceLocation?) -> ZoneFileError {
            ZoneFileError(file: location?.file ?? "", line: location?.line ?? 0, column: 1, message: message)
        }
        var soaLocation: SourceLocation? = nil
        var apexNS = false
        var seen = Set<ResourceRecord>()
        var unique: [(ResourceRecord, SourceLocation)] = []
        unique.reserveCapacity(records.count)
        var typesByOwner: [DomainName: (types: Set<RecordType>, location: SourceLocation)] = [:]
        var cuts = Set<DomainName>()
        struct RRsetKey: Hashable {
            var name: DomainName
            var type: RecordType
        }
        var rrsetTTL: [RRsetKey: (ttl: UInt32, line: Int)] = [:]

        for (record, location) in records {
            guard record.name.isSubdomain(of: origin) else {
                throw fail("\(record.name) is outside the zone \(origin)", location)
            }
            if record.type == .soa {
                guard record.name == origin else {
                    throw fail("SOA record at \(record.name), not at the zone apex \(origin)", location)
                }
                if let first = soaLocation {
                    throw fail("more than one SOA record (the first is at line \(first.line))", location)
                }
                soaLocation = location
            }
            if record.type == .ns {
                if record.name == origin { apexNS = true } else { cuts.insert(record.name) }
            }
            let key = RRsetKey(name: record.name, type: record.type)
            if let first = rrsetTTL[key] {
                guard first.ttl == record.ttl else {
                    throw fail("TTL \(record.ttl) differs from the TTL \(first.ttl) of the same \(record.type) RRset at line \(first.line) (RFC 2181 §5.2)", location)
                }
            } else {
                rrsetTTL[key] = (record.ttl, location.line)
            }
            guard seen.insert(record).inserted else { continue }
            unique.append((record, location))
            typesByOwner[record.name, default: ([], location)].types.insert(record.type)
        }
        guard soaLocation != nil else {
            throw fail("zone \(origin) has no SOA record at its apex", nil)
        }
        guard apexNS else { throw fail("zone \(origin) has no NS records at its apex", soaLocation) }

        for (owner, entry) in typesByOwner where entry.types.contains(.cname) {
            if entry.types.count > 1 {
                let others = entry.types.subtracting([.cname]).sorted().map(\.description).joined(separator: ", ")
                throw fail("CNAME at \(owner) beside other data (\(others))", entry.location)
            }
            if owner == origin { throw fail("CNAME at the zone apex \(origin)", entry.location) }
        }
        if !cuts.isEmpty {
            for (record, location) in unique {
                // Walk the owner's ancestors below the apex: is one of them a delegation?
                var name = record.name
                while name != origin {
                    if cuts.contains(name) {
                        let isCutItself = name == record.name && (record.type == .ns || record.type == .ds)
                        let isGlue = record.type == .a || record.type == .aaaa
                        if !isCutItself && !isGlue {
                            throw fail("\(record.type) record at \(record.name) lies below the delegation at \(name) (only address glue may)", location)
                        }
                        break
                    }
                    guard let parent = name.parent else { break }
                    name = parent
                }
            }
        }
        // SOA first, then canonical order; the sort is stable for records of one RRset.
        var indexed = unique.enumerated().map { ($0.offset, $0.element.0) }
        indexed.sort { lhs, rhs in
            let (l, r) = (lhs.1, rhs.1)
            if (l.type == .soa) != (r.type == .soa) { return l.type == .soa }
            if l.name != r.name { return l.name < r.name }
            if l.type != r.type { return l.type < r.type }
            return lhs.0 < rhs.0
        }
        return indexed.map(\.1)
    }
}
