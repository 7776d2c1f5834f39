/// Start of authority (RFC 1035 §3.3.13).
public struct SOA: Hashable, Sendable, CustomStringConvertible {
    public var mname: DomainName
    public var rname: DomainName
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    /// The negative-caching TTL (RFC 2308 §4).
    public var minimum: UInt32

    public init(mname: DomainName, rname: DomainName, serial: UInt32, refresh: UInt32, retry: UInt32,
                expire: UInt32, minimum: UInt32) {
        self.mname = mname
        self.rname = rname
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimum = minimum
    }

    init(from reader: inout WireReader) throws(WireError) {
        mname = try reader.readName()
        rname = try reader.readName()
        serial = try reader.readUInt32("SOA serial")
        refresh = try reader.readUInt32("SOA refresh")
        retry = try reader.readUInt32("SOA retry")
        expire = try reader.readUInt32("SOA expire")
        minimum = try reader.readUInt32("SOA minimum")
    }

    func encode(into writer: inout WireWriter) {
        writer.writeName(mname)
        writer.writeName(rname)
        writer.writeUInt32(serial)
        writer.writeUInt32(refresh)
        writer.writeUInt32(retry)
        writer.writeUInt32(expire)
        writer.writeUInt32(minimum)
    }

    public var description: String {
        "\(mname) \(rname) \(serial) \(refresh) \(retry) \(expire) \(minimum)"
    }
}
