/// A resource record TYPE (RFC 1035 §3.2.2 and successors). Unknown values survive a round trip.
public struct RecordType: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = RecordType(1)
    public static let ns = RecordType(2)
    public static let cname = RecordType(5)
    public static let soa = RecordType(6)
    public static let ptr = RecordType(12)
    public static let hinfo = RecordType(13)
    public static let mx = RecordType(15)
    public static let txt = RecordType(16)
    public static let aaaa = RecordType(28)
    public static let srv = RecordType(33)
    public static let naptr = RecordType(35)
    public static let dname = RecordType(39)
    public static let opt = RecordType(41)
    public static let ds = RecordType(43)
    public static let rrsig = RecordType(46)
    public static let nsec = RecordType(47)
    public static let dnskey = RecordType(48)
    public static let tlsa = RecordType(52)
    public static let svcb = RecordType(64)
    public static let https = RecordType(65)
    public static let ixfr = RecordType(251)
    public static let axfr = RecordType(252)
    public static let any = RecordType(255)
    public static let caa = RecordType(257)

    static let mnemonics: [(RecordType, String)] = [
        (.a, "A"), (.ns, "NS"), (.cname, "CNAME"), (.soa, "SOA"), (.ptr, "PTR"), (.hinfo, "HINFO"),
        (.mx, "MX"), (.txt, "TXT"), (.aaaa, "AAAA"), (.srv, "SRV"), (.naptr, "NAPTR"),
        (.dname, "DNAME"), (.opt, "OPT"), (.ds, "DS"), (.rrsig, "RRSIG"), (.nsec, "NSEC"),
        (.dnskey, "DNSKEY"), (.tlsa, "TLSA"), (.svcb, "SVCB"), (.https, "HTTPS"),
        (.ixfr, "IXFR"), (.axfr, "AXFR"), (.any, "ANY"), (.caa, "CAA"),
    ]

    /// The mnemonic (`A`, `SRV`) or the RFC 3597 generic form (`TYPE65280`).
    public var description: String {
        for (type, name) in Self.mnemonics where type == self { return name }
        return "TYPE\(rawValue)"
    }

    static let mnemonicCodes: [(UInt16, [UInt8])] = mnemonics.map { ($0.0.rawValue, Array($0.1.utf8)) }

    /// Parses a mnemonic (any letter case) or `TYPEnnn`.
    public init?(mnemonic text: some StringProtocol) {
        self.init(mnemonicBytes: Array(text.utf8))
    }

    /// Parses a mnemonic (any letter case) or `TYPEnnn` from bytes, without allocating.
    public init?(mnemonicBytes text: some Collection<UInt8>) {
        guard let value = parseMnemonic(text, Self.mnemonicCodes, generic: Self.typePrefix) else { return nil }
        self.init(value)
    }

    static let typePrefix = Array("TYPE".utf8)

    public static func < (lhs: RecordType, rhs: RecordType) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A resource record CLASS.
public struct RecordClass: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let internet = RecordClass(1)
    public static let chaos = RecordClass(3)
    public static let hesiod = RecordClass(4)
    public static let none = RecordClass(254)
    public static let any = RecordClass(255)

    public var description: String {
        switch self {
        case .internet: "IN"
        case .chaos: "CH"
        case .hesiod: "HS"
        case .none: "NONE"
        case .any: "ANY"
        default: "CLASS\(rawValue)"
        }
    }

    static let mnemonicCodes: [(UInt16, [UInt8])] = [
        (RecordClass.internet.rawValue, Array("IN".utf8)), (RecordClass.chaos.rawValue, Array("CH".utf8)),
        (RecordClass.hesiod.rawValue, Array("HS".utf8)), (RecordClass.none.rawValue, Array("NONE".utf8)),
        (RecordClass.any.rawValue, Array("ANY".utf8)),
    ]
    static let classPrefix = Array("CLASS".utf8)

    public init?(mnemonic text: some StringProtocol) {
        self.init(mnemonicBytes: Array(text.utf8))
    }

    /// Parses a mnemonic (any letter case) or `CLASSnnn` from bytes, without allocating.
    public init?(mnemonicBytes text: some Collection<UInt8>) {
        guard let value = parseMnemonic(text, Self.mnemonicCodes, generic: Self.classPrefix) else { return nil }
        self.init(value)
    }
}

/// The 4-bit OPCODE of the header.
public struct OpCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    public static let query = OpCode(rawValue: 0)
    public static let inverseQuery = OpCode(rawValue: 1)
    public static let status = OpCode(rawValue: 2)
    public static let notify = OpCode(rawValue: 4)
    public static let update = OpCode(rawValue: 5)
    public static let dso = OpCode(rawValue: 6)

    public var description: String {
        switch self {
        case .query: "QUERY"
        case .inverseQuery: "IQUERY"
        case .status: "STATUS"
        case .notify: "NOTIFY"
        case .update: "UPDATE"
        case .dso: "DSO"
        default: "OPCODE\(rawValue)"
        }
    }
}

/// A response code; 12 bits when extended through the OPT record (RFC 6891 §6.1.3).
public struct ResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let noError = ResponseCode(rawValue: 0)
    public static let formatError = ResponseCode(rawValue: 1)
    public static let serverFailure = ResponseCode(rawValue: 2)
    public static let nameError = ResponseCode(rawValue: 3)
    public static let notImplemented = ResponseCode(rawValue: 4)
    public static let refused = ResponseCode(rawValue: 5)
    public static let yxDomain = ResponseCode(rawValue: 6)
    public static let yxRRSet = ResponseCode(rawValue: 7)
    public static let nxRRSet = ResponseCode(rawValue: 8)
    public static let notAuth = ResponseCode(rawValue: 9)
    public static let notZone = ResponseCode(rawValue: 10)
    public static let badVersion = ResponseCode(rawValue: 16)
    public static let badCookie = ResponseCode(rawValue: 23)

    /// The low four bits that go in the header.
    public var headerBits: UInt8 { UInt8(rawValue & 0x0F) }
    /// The high eight bits that go in the OPT record's TTL field.
    public var extendedBits: UInt8 { UInt8(rawValue >> 4) }

    public var description: String {
        switch self {
        case .noError: "NOERROR"
        case .formatError: "FORMERR"
        case .serverFailure: "SERVFAIL"
        case .nameError: "NXDOMAIN"
        case .notImplemented: "NOTIMP"
        case .refused: "REFUSED"
        case .yxDomain: "YXDOMAIN"
        case .yxRRSet: "YXRRSET"
        case .nxRRSet: "NXRRSET"
        case .notAuth: "NOTAUTH"
        case .notZone: "NOTZONE"
        case .badVersion: "BADVERS"
        case .badCookie: "BADCOOKIE"
        default: "RCODE\(rawValue)"
        }
    }
}

/// A code from its mnemonic (any letter case, from `table`) or its generic form (`TYPE65280`,
/// `CLASS42`: `generic` then decimal digits), without allocating.
func parseMnemonic(_ text: some Collection<UInt8>, _ table: [(UInt16, [UInt8])], generic: [UInt8]) -> UInt16? {
    // Callers in other modules reach this unspecialised; contiguous bytes take one concrete path.
    if let code = text.withContiguousStorageIfAvailable({ parseMnemonic(UnsafeRawBufferPointer($0), table, generic: generic) }) {
        return code
    }
    return Array(text).withUnsafeBytes { parseMnemonic($0, table, generic: generic) }
}

func parseMnemonic(_ text: UnsafeRawBufferPointer, _ table: [(UInt16, [UInt8])], generic: [UInt8]) -> UInt16? {
    for (code, name) in table where equalsUppercase(text, name) { return code }
    guard text.count > generic.count, equalsUppercase(text.prefix(generic.count), generic) else { return nil }
    return decimal16(bytes: text.dropFirst(generic.count))
}

/// Parses 1-5 decimal digits into a UInt16 (for `TYPEnnn` and `CLASSnnn`).
func decimal16(bytes text: some Collection<UInt8>) -> UInt16? {
    guard !text.isEmpty, text.count <= 5 else { return nil }
    var value: UInt32 = 0
    for c in text {
        guard c >= 48 && c <= 57 else { return nil }
        value = value * 10 + UInt32(c - 48)
    }
    return value <= 0xFFFF ? UInt16(value) : nil
}

/// True when `text`, upper-cased (ASCII), equals `upper`.
func equalsUppercase(_ text: some Collection<UInt8>, _ upper: [UInt8]) -> Bool {
    guard text.count == upper.count else { return false }
    var j = 0
    for c in text {
        let u = c &- 0x61 < 26 ? c & 0xDF : c
        if u != upper[j] { return false }
        j += 1
    }
    return true
}
