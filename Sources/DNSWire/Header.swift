/// The fixed 12-byte header (RFC 1035 §4.1.1), without the section counts, which a `Message`
/// derives from its sections.
public struct Header: Hashable, Sendable {
    public var id: UInt16
    public var isResponse: Bool
    public var opcode: OpCode
    public var isAuthoritative: Bool
    public var isTruncated: Bool
    public var isRecursionDesired: Bool
    public var isRecursionAvailable: Bool
    /// The reserved Z bit; kept so that a round trip is exact.
    public var zBit: Bool
    public var isAuthenticData: Bool
    public var isCheckingDisabled: Bool
    /// The low four bits of the response code.
    public var rcodeBits: UInt8

    public init(id: UInt16 = 0, isResponse: Bool = false, opcode: OpCode = .query,
                isAuthoritative: Bool = false, isTruncated: Bool = false,
                isRecursionDesired: Bool = false, isRecursionAvailable: Bool = false,
                zBit: Bool = false, isAuthenticData: Bool = false, isCheckingDisabled: Bool = false,
                rcodeBits: UInt8 = 0) {
        self.id = id
        self.isResponse = isResponse
        self.opcode = opcode
        self.isAuthoritative = isAuthoritative
        self.isTruncated = isTruncated
        self.isRecursionDesired = isRecursionDesired
        self.isRecursionAvailable = isRecursionAvailable
        self.zBit = zBit
        self.isAuthenticData = isAuthenticData
        self.isCheckingDisabled = isCheckingDisabled
        self.rcodeBits = rcodeBits & 0x0F
    }

    /// The second 16-bit word: QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE.
    public var flags: UInt16 {
        get {
            var f = UInt16(opcode.rawValue) << 11 | UInt16(rcodeBits & 0x0F)
            if isResponse { f |= 0x8000 }
            if isAuthoritative { f |= 0x0400 }
            if isTruncated { f |= 0x0200 }
            if isRecursionDesired { f |= 0x0100 }
            if isRecursionAvailable { f |= 0x0080 }
            if zBit { f |= 0x0040 }
            if isAuthenticData { f |= 0x0020 }
            if isCheckingDisabled { f |= 0x0010 }
            return f
        }
        set {
            isResponse = newValue & 0x8000 != 0
            opcode = OpCode(rawValue: UInt8(newValue >> 11 & 0x0F))
            isAuthoritative = newValue & 0x0400 != 0
            isTruncated = newValue & 0x0200 != 0
            isRecursionDesired = newValue & 0x0100 != 0
            isRecursionAvailable = newValue & 0x0080 != 0
            zBit = newValue & 0x0040 != 0
            isAuthenticData = newValue & 0x0020 != 0
            isCheckingDisabled = newValue & 0x0010 != 0
            rcodeBits = UInt8(newValue & 0x000F)
        }
    }

    public init(id: UInt16, flags: UInt16) {
        self.init(id: id)
        self.flags = flags
    }

    /// The header at the start of a message's bytes; nil when there are fewer than 12.
    @inline(__always)
    public init?(prefixOf bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 12 else { return nil }
        self.init(id: UInt16(bytes[0]) << 8 | UInt16(bytes[1]), flags: UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
    }
}
