/// A bounds-checked cursor over a DNS message. Every read checks the remaining length and throws
/// `WireError` instead of trapping. `read…` moves the cursor, `get…` does not.
///
/// The reader borrows the bytes: use it inside `withUnsafeBytes` of the message's storage.
public struct WireReader {
    public let bytes: UnsafeRawBufferPointer
    public var offset: Int
    /// The end of the region currently being read (the whole message, or one RDATA).
    public var limit: Int

    /// Cap on compression pointers followed in one name. A valid name of at most 255 octets has at
    /// most 127 labels, and pointers must go strictly backwards, so this is generous.
    public static let maxPointerHops = 64

    public init(bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
        self.limit = bytes.count
    }

    public var remaining: Int { limit - offset }

    @inline(__always)
    func need(_ count: Int, _ what: @autoclosure () -> String) throws(WireError) {
        if count > limit - offset { throw .truncated(offset: offset, what: what()) }
    }

    @inline(__always)
    public mutating func readUInt8(_ what: @autoclosure () -> String = "a byte") throws(WireError) -> UInt8 {
        try need(1, what())
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    public mutating func readUInt16(_ what: @autoclosure () -> String = "a 16-bit field") throws(WireError) -> UInt16 {
        try need(2, what())
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    @inline(__always)
    public mutating func readUInt32(_ what: @autoclosure () -> String = "a 32-bit field") throws(WireError) -> UInt32 {
        try need(4, what())
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    public mutating func readBytes(_ count: Int, _ what: @autoclosure () -> String = "bytes") throws(WireError) -> [UInt8] {
        try need(count, what())
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Reads a possibly compressed name. Pointers must point strictly backwards and not into the
    /// header; at most `maxPointerHops` are followed; the decoded name may not exceed 255 octets.
    /// Pointer targets may lie outside the current `limit` (an RDATA can point into earlier records).
    public mutating func readName() throws(WireError) -> DomainName {
        var storage: [UInt8] = []
        try walkName { label in storage.append(contentsOf: label) }
        return DomainName(uncheckedStorage: storage, isAbsolute: true)
    }

    /// Skips a name, validating it exactly as `readName` does, without building it.
    public mutating func skipName() throws(WireError) {
        try walkName { _ in }
    }

    /// Walks a name, calling `body` with each label including its length byte.
    @inline(__always)
    mutating func walkName(_ body: (UnsafeRawBufferPointer) -> Void) throws(WireError) {
        let start = offset
        var position = offset
        var end = limit
        var jumped = false
        var hops = 0
        var length = 1
        // Pointers must land strictly before the lowest position seen so far.
        var floor = offset
        while true {
            guard position < end else {
                if !jumped { offset = position }
                throw .truncated(offset: position, what: "a name label")
            }
            let byte = bytes[position]
            switch byte & 0xC0 {
            case 0x00:
                if byte == 0 {
                    if !jumped { offset = position + 1 }
                    return
                }
                let n = Int(byte)
                guard position + 1 + n <= end else {
                    throw .truncated(offset: position, what: "a name label of \(n) octets")
                }
                length += n + 1
                guard length <= DomainName.maxWireLength else { throw .nameTooLong(offset: start) }
                body(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + 1 + n)]))
                position += n + 1
            case 0xC0:
                guard position + 2 <= end else {
                    throw .truncated(offset: position, what: "a compression pointer")
                }
                let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                if target == position { throw .pointerLoop(offset: position) }
                guard target >= 12, target < floor else {
                    if target < position && target >= floor && target >= 12 {
                        throw .pointerLoop(offset: position)
                    }
                    throw .forwardPointer(offset: position, target: target)
                }
                hops += 1
                guard hops <= Self.maxPointerHops else { throw .tooManyPointers(offset: start) }
                if !jumped {
                    offset = position + 2
                    jumped = true
                }
                floor = target
                position = target
                // Once a pointer has been followed, labels may come from anywhere before it.
                end = bytes.count
            default:
                throw .badLabelType(offset: position, byte: byte)
            }
        }
    }
}
