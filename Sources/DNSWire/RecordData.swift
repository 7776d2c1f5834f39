public import NetAddress

/// The RDATA of a resource record. Types this library does not model are kept verbatim as
/// `.unknown` (RFC 3597), and so are types it models when the record says so explicitly.
public enum RecordData: Hashable, Sendable {
    case a(IPv4Address)
    case aaaa(IPv6Address)
    case ns(DomainName)
    case cname(DomainName)
    case ptr(DomainName)
    case soa(SOA)
    case mx(MX)
    case txt(TXT)
    case srv(SRV)
    case caa(CAA)
    case unknown(type: RecordType, data: [UInt8])

    public var type: RecordType {
        switch self {
        case .a: .a
        case .aaaa: .aaaa
        case .ns: .ns
        case .cname: .cname
        case .ptr: .ptr
        case .soa: .soa
        case .mx: .mx
        case .txt: .txt
        case .srv: .srv
        case .caa: .caa
        case .unknown(let type, _): type
        }
    }

    /// Writes the RDATA (without RDLENGTH). Names are compressed only where RFC 3597 §4 allows:
    /// NS, CNAME, PTR, SOA and MX; never the SRV target or inside unknown data.
    public func encode(into writer: inout WireWriter) {
        switch self {
        case .a(let address): address.encode(into: &writer)
        case .aaaa(let address): address.encode(into: &writer)
        case .ns(let name), .cname(let name), .ptr(let name): writer.writeName(name, compress: true)
        case .soa(let soa): soa.encode(into: &writer)
        case .mx(let mx): mx.encode(into: &writer)
        case .txt(let txt): txt.encode(into: &writer)
        case .srv(let srv): srv.encode(into: &writer)
        case .caa(let caa): caa.encode(into: &writer)
        case .unknown(_, let data): writer.writeBytes(data)
        }
    }

    /// Decodes the RDATA of `type` occupying exactly `length` bytes at the reader's offset.
    public init(type: RecordType, from reader: inout WireReader, length: Int) throws(WireError) {
        let start = reader.offset
        guard length <= reader.remaining else {
            throw .truncated(offset: start, what: "\(type) record data of \(length) bytes")
        }
        let savedLimit = reader.limit
        reader.limit = start + length
        defer { reader.limit = savedLimit }
        func fail(_ reason: String) -> WireError {
            .badRDataLength(type: type, offset: start, length: length, reason: reason)
        }
        do throws(WireError) {
            switch type {
            case .a:
                guard length == 4 else { throw fail("an A record has 4 bytes") }
                self = .a(IPv4Address(rawValue: try reader.readUInt32()))
            case .aaaa:
                guard length == 16 else { throw fail("an AAAA record has 16 bytes") }
                let high = UInt64(try reader.readUInt32()) << 32 | UInt64(try reader.readUInt32())
                let low = UInt64(try reader.readUInt32()) << 32 | UInt64(try reader.readUInt32())
                self = .aaaa(IPv6Address(high: high, low: low))
            case .ns: self = .ns(try reader.readName())
            case .cname: self = .cname(try reader.readName())
            case .ptr: self = .ptr(try reader.readName())
            case .soa: self = .soa(try SOA(from: &reader))
            case .mx: self = .mx(try MX(from: &reader))
            case .txt: self = .txt(try TXT(from: &reader))
            case .srv: self = .srv(try SRV(from: &reader))
            case .caa: self = .caa(try CAA(from: &reader))
            default: self = .unknown(type: type, data: try reader.readBytes(length))
            }
        } catch .truncated(_, let what) {
            throw fail("ends inside \(what)")
        }
        guard reader.offset == start + length else {
            throw fail("\(start + length - reader.offset) bytes left over")
        }
    }

    /// The RDATA in presentation format, as it appears after the type in a zone file.
    public var presentation: String {
        switch self {
        case .a(let address): address.description
        case .aaaa(let address): address.description
        case .ns(let name), .cname(let name), .ptr(let name): name.description
        case .soa(let soa): soa.description
        case .mx(let mx): mx.description
        case .txt(let txt): txt.description
        case .srv(let srv): srv.description
        case .caa(let caa): caa.description
        case .unknown(_, let data): Self.genericPresentation(data)
        }
    }

    /// RFC 3597 §5: `\# LENGTH HEX`.
    public static func genericPresentation(_ data: [UInt8]) -> String {
        if data.isEmpty { return "\\# 0" }
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(data.count * 2)
        for byte in data {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return "\\# \(data.count) " + String(decoding: hex, as: UTF8.self)
    }

    /// The uncompressed wire form of this RDATA.
    public var wireBytes: [UInt8] {
        var writer = WireWriter(capacity: 64)
        switch self {
        case .ns(let name), .cname(let name), .ptr(let name): writer.writeName(name, compress: false)
        default: encode(into: &writer)
        }
        return writer.bytes
    }
}

extension IPv4Address {
    func encode(into writer: inout WireWriter) { writer.writeUInt32(rawValue) }
}

extension IPv6Address {
    func encode(into writer: inout WireWriter) {
        writer.writeUInt32(UInt32(truncatingIfNeeded: high >> 32))
        writer.writeUInt32(UInt32(truncatingIfNeeded: high))
        writer.writeUInt32(UInt32(truncatingIfNeeded: low >> 32))
        writer.writeUInt32(UInt32(truncatingIfNeeded: low))
    }
}
