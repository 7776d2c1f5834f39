/// Service location (RFC 2782). The target is never compressed when written.
public struct SRV: Hashable, Sendable, CustomStringConvertible {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    public var target: DomainName

    public init(priority: UInt16, weight: UInt16, port: UInt16, target: DomainName) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
    }

    init(from reader: inout WireReader) throws(WireError) {
        priority = try reader.readUInt16("SRV priority")
        weight = try reader.readUInt16("SRV weight")
        port = try reader.readUInt16("SRV port")
        // Senders must not compress it, but a pointer is still read (RFC 2782 asks receivers to be lenient).
        target = try reader.readName()
    }

    func encode(into writer: inout WireWriter) {
        writer.writeUInt16(priority)
        writer.writeUInt16(weight)
        writer.writeUInt16(port)
        writer.writeName(target, compress: false)
    }

    public var description: String { "\(priority) \(weight) \(port) \(target)" }
}
