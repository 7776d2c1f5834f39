/// An EDNS(0) option code (RFC 6891 §6.1.2).
public struct EDNSOptionCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let nsid = EDNSOptionCode(rawValue: 3)
    public static let clientSubnet = EDNSOptionCode(rawValue: 8)
    public static let expire = EDNSOptionCode(rawValue: 9)
    public static let cookie = EDNSOptionCode(rawValue: 10)
    public static let tcpKeepalive = EDNSOptionCode(rawValue: 11)
    public static let padding = EDNSOptionCode(rawValue: 12)
    public static let extendedError = EDNSOptionCode(rawValue: 15)

    public var description: String {
        switch self {
        case .nsid: "NSID"
        case .clientSubnet: "ECS"
        case .expire: "EXPIRE"
        case .cookie: "COOKIE"
        case .tcpKeepalive: "KEEPALIVE"
        case .padding: "PADDING"
        case .extendedError: "EDE"
        default: "OPT\(rawValue)"
        }
    }
}

/// One option of the OPT record, its data kept as bytes.
public struct EDNSOption: Hashable, Sendable {
    public var code: EDNSOptionCode
    public var data: [UInt8]

    public init(code: EDNSOptionCode, data: [UInt8]) {
        self.code = code
        self.data = data
    }
}

/// The OPT pseudo-record (RFC 6891): what a message says about EDNS.
public struct EDNS: Hashable, Sendable {
    /// The requestor's UDP payload size; values below 512 are treated as 512 by `effectivePayloadSize`.
    public var udpPayloadSize: UInt16
    /// The upper eight bits of the 12-bit response code.
    public var extendedRCodeBits: UInt8
    public var version: UInt8
    /// The DO bit (RFC 3225).
    public var isDNSSECOK: Bool
    /// The remaining 15 flag bits, kept for an exact round trip.
    public var zFlags: UInt16
    public var options: [EDNSOption]

    public init(udpPayloadSize: UInt16 = 1232, extendedRCodeBits: UInt8 = 0, version: UInt8 = 0,
                isDNSSECOK: Bool = false, zFlags: UInt16 = 0, options: [EDNSOption] = []) {
        self.udpPayloadSize = udpPayloadSize
        self.extendedRCodeBits = extendedRCodeBits
        self.version = version
        self.isDNSSECOK = isDNSSECOK
        self.zFlags = zFlags & 0x7FFF
        self.options = options
    }

    public var effectivePayloadSize: Int { max(512, Int(udpPayloadSize)) }

    /// The OPT record's TTL field: extended RCODE, version, DO, Z.
    var ttlField: UInt32 {
        UInt32(extendedRCodeBits) << 24 | UInt32(version) << 16 | (isDNSSECOK ? 0x8000 : 0) | UInt32(zFlags & 0x7FFF)
    }

    /// Bytes the OPT record takes on the wire.
    public var wireLength: Int { 11 + options.reduce(0) { $0 + 4 + $1.data.count } }

    func encode(into writer: inout WireWriter) {
        writer.writeUInt8(0)
        writer.writeUInt16(RecordType.opt.rawValue)
        writer.writeUInt16(udpPayloadSize)
        writer.writeUInt32(ttlField)
        writer.writeUInt16(UInt16(wireLength - 11))
        for option in options {
            writer.writeUInt16(option.code.rawValue)
            writer.writeUInt16(UInt16(option.data.count))
            writer.writeBytes(option.data)
        }
    }

    /// Decodes the part after the owner and type: CLASS (payload), TTL, RDLENGTH, options.
    init(afterType reader: inout WireReader, recordOffset: Int) throws(WireError) {
        udpPayloadSize = try reader.readUInt16("the OPT payload size")
        let ttl = try reader.readUInt32("the OPT flags")
        extendedRCodeBits = UInt8(ttl >> 24)
        version = UInt8(ttl >> 16 & 0xFF)
        isDNSSECOK = ttl & 0x8000 != 0
        zFlags = UInt16(ttl & 0x7FFF)
        let length = Int(try reader.readUInt16("the OPT RDLENGTH"))
        guard length <= reader.remaining else {
            throw .truncated(offset: reader.offset, what: "OPT record data of \(length) bytes")
        }
        let end = reader.offset + length
        var options: [EDNSOption] = []
        while reader.offset < end {
            guard end - reader.offset >= 4 else {
                throw .badOPT(offset: reader.offset, reason: "option header runs past RDLENGTH")
            }
            let code = try reader.readUInt16()
            let optionLength = Int(try reader.readUInt16())
            guard optionLength <= end - reader.offset else {
                throw .badOPT(offset: reader.offset - 4, reason: "option \(code) of \(optionLength) bytes runs past RDLENGTH")
            }
            options.append(EDNSOption(code: EDNSOptionCode(rawValue: code), data: try reader.readBytes(optionLength)))
        }
        self.options = options
    }
}
