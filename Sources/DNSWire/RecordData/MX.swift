/// Mail exchange (RFC 1035 §3.3.9).
public struct MX: Hashable, Sendable, CustomStringConvertible {
    public var preference: UInt16
    public var exchange: DomainName

    public init(preference: UInt16, exchange: DomainName) {
        self.preference = preference
        self.exchange = exchange
    }

    init(from reader: inout WireReader) throws(WireError) {
        preference = try reader.readUInt16("MX preference")
        exchange = try reader.readName()
    }

    func encode(into writer: inout WireWriter) {
        writer.writeUInt16(preference)
        writer.writeName(exchange)
    }

    public var description: String { "\(preference) \(exchange)" }
}
