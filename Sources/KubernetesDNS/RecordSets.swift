import DNSAuthority
import DNSWire

/// The records of one name by type, as one array ordered by type (records of one type in the
/// order they were added). A name has records of one or two types: a dictionary per name cost
/// about a hundred bytes more than this, on 128,000 names at 10,000 services.
struct RecordSets: Hashable, Sendable {
    private var records: [ResourceRecord] = []

    /// Every record, ordered by type.
    var all: [ResourceRecord] { records }

    var isEmpty: Bool { records.isEmpty }

    /// The records of `type`, nil when there are none.
    subscript(type: RecordType) -> [ResourceRecord]? {
        let found = records.filter { $0.type == type }
        return found.isEmpty ? nil : found
    }

    func contains(type: RecordType) -> Bool { records.contains { $0.type == type } }

    func contains(_ record: ResourceRecord) -> Bool { records.contains(record) }

    /// The types present, in order, those the fast path pre-encodes only.
    var types: [RecordType] {
        var out: [RecordType] = []
        for record in records where out.last != record.type && CompiledZone.compiledTypes.contains(record.type) {
            out.append(record.type)
        }
        return out
    }

    /// Adds a record after the others of its type.
    mutating func append(_ record: ResourceRecord) {
        let type = record.type
        // Records mostly come in type order: then it is an append (a service's thousand
        // endpoint addresses would otherwise cost a scan each).
        if records.last.map({ $0.type <= type }) ?? true {
            records.append(record)
            return
        }
        let at = records.lastIndex { $0.type <= type }.map { $0 + 1 } ?? 0
        records.insert(record, at: at)
    }

    /// Adds records not already here, in order (a set finds the duplicates).
    mutating func appendNew(_ new: [ResourceRecord]) {
        // A service's glue is a few records (its cluster IPs): compared one by one, without
        // hashing every record; a large headless service's through a set.
        if records.count + new.count <= 16 {
            for record in new where !records.contains(record) { append(record) }
            return
        }
        var seen = Set(records)
        for record in new where seen.insert(record).inserted { append(record) }
    }
}
