/// A resource record: owner, class, TTL and data; the type comes from the data.
public struct ResourceRecord: Hashable, Sendable, CustomStringConvertible {
    public var name: DomainName
    public var recordClass: RecordClass
    public var ttl: UInt32
    public var data: RecordData

    public var type: RecordType { data.type }

    public init(name: DomainName, recordClass: RecordClass = .internet, ttl: UInt32, data: RecordData) {
        self.name = name
        self.recordClass = recordClass
        self.ttl = ttl
        self.data = data
    }

    /// Same owner, type and class.
    public func isSameRRset(as other: ResourceRecord) -> Bool {
        type == other.type && recordClass == other.recordClass && name == other.name
    }

    /// Encodes the record where it lies, field by field, without copying it out first.
    static func encode(_ record: UnsafePointer<ResourceRecord>, into writer: inout WireWriter) {
        writer.writeName(record.pointee.name)
        writer.writeUInt16(record.pointee.data.type.rawValue)
        writer.writeUInt16(record.pointee.recordClass.rawValue)
        writer.writeUInt32(record.pointee.ttl)
        let lengthOffset = writer.count
        writer.writeUInt16(0)
        record.pointee.data.encode(into: &writer)
        writer.setUInt16(UInt16(writer.count - lengthOffset - 2), at: lengthOffset)
    }

    public func encode(into writer: inout WireWriter) {
        withUnsafePointer(to: self) { Self.encode($0, into: &writer) }
    }

    /// Zone-file presentation: `owner TTL CLASS TYPE RDATA`, single spaces. Unknown types and
    /// classes use the RFC 3597 forms (`TYPE65280 \# 4 0a000001`).
    public var description: String {
        "\(name) \(ttl) \(recordClass) \(type) \(data.presentation)"
    }
}
