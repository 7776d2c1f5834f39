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
        // Per owner: whether it has a CNAME, whether it has other data, where it first appeared.
        var ownerData: [DomainName: (hasCNAME: Bool, hasOther: Bool, location: SourceLocation)] = [:]
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
            if record.type == .cname {
                ownerData[record.name, default: (false, false, location)].hasCNAME = true
            } else {
                ownerData[record.name, default: (false, false, location)].hasOther = true
            }
        }
        guard soaLocation != nil else {
            throw fail("zone \(origin) has no SOA record at its apex", nil)
        }
        guard apexNS else { throw fail("zone \(origin) has no NS records at its apex", soaLocation) }

        for (owner, entry) in ownerData where entry.hasCNAME {
            if entry.hasOther {
                let others = Set(unique.lazy.filter { $0.0.name == owner && $0.0.type != .cname }.map(\.0.type))
                    .sorted().map(\.description).joined(separator: ", ")
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
        // SOA first, then canonical order; ties keep file order (records of one RRset). Indices
        // are sorted rather than records, so that the sort moves integers only.
        let names = unique.map(\.0.name)
        let types = unique.map(\.0.type)
        let order = unique.indices.sorted { i, j in
            if (types[i] == .soa) != (types[j] == .soa) { return types[i] == .soa }
            let byName = names[i].canonicalCompare(names[j])
            if byName != 0 { return byName < 0 }
            if types[i] != types[j] { return types[i] < types[j] }
            return i < j
        }
        return order.map { unique[$0].0 }
    }
}
