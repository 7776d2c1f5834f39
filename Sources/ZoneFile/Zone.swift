public import DNSWire

/// A loaded, checked zone: its origin and records, SOA first, the rest in canonical order
/// (owner, then type, then the order of the file).
public struct Zone: Hashable, Sendable {
    public let origin: DomainName
    public let records: [ResourceRecord]

    /// The apex SOA (a loaded zone always has exactly one).
    public var soa: SOA {
        for record in records { if case .soa(let soa) = record.data { return soa } }
        preconditionFailure("a Zone is only built with its SOA")
    }

    public var serial: UInt32 { soa.serial }

    /// Builds a zone from records, checking them (see `ZoneChecker`).
    public init(origin: DomainName, records: [ResourceRecord]) throws(ZoneFileError) {
        try self.init(origin: origin, records: records.map { ($0, SourceLocation(file: "", line: 0)) })
    }

    init(origin: DomainName, records located: [(ResourceRecord, SourceLocation)]) throws(ZoneFileError) {
        self.origin = origin
        let checked = try ZoneChecker.check(origin: origin, records: located)
        records = checked
    }

    /// The zone in canonical presentation format: `$ORIGIN`, then one record per line with
    /// absolute names. Parsing the output gives back an equal zone.
    public var presentation: String {
        var out = "$ORIGIN \(origin)\n"
        for record in records {
            out += record.description
            out += "\n"
        }
        return out
    }
}

struct SourceLocation: Hashable, Sendable {
    var file: String
    var line: Int
}
