/// A bounds-checked cursor over a DNS message. Every read checks the remaining length and throws
/// `WireError` instead of trapping. `read…` moves the cursor, `get…` does not.
///
/// The reader borrows the bytes: use it inside `withUnsafeBytes` of the message's storage.
public struct WireReader: ~Copyable {
    public let bytes: UnsafeRawBufferPointer
    public var offset: Int
    /// The end of the region currently being read (the whole message, or one RDATA).
    public var limit: Int

    /// Cap on compression pointers followed in one name. A valid name of at most 255 octets has at
    /// most 127 labels, and pointers must go strictly backwards, so this is generous.
    public static let maxPointerHops = 64

    /// Names recently read in full, by the offset they start at: a name that is nothing but a
    /// pointer to one of them is that very name, so its storage is shared instead of copied
    /// (in a typical response every owner is a pointer to the question).
    var recent: (DomainName?, DomainName?, DomainName?, DomainName?) = (nil, nil, nil, nil)
    var recentOffsets: (Int, Int, Int, Int) = (-1, -1, -1, -1)
    var recentNext = 0

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
        let start = offset
        if offset + 1 < limit, bytes[offset] & 0xC0 == 0xC0 {
            let target = Int(bytes[offset] & 0x3F) << 8 | Int(bytes[offset + 1])
            if target >= 12 && target < offset, let cached = cachedName(at: target) {
                offset += 2
                return cached
            }
        }
        let name = try readNameUncached()
        remember(name, at: start)
        return name
    }

    func cachedName(at target: Int) -> DomainName? {
        if recentOffsets.0 == target { return recent.0 }
        if recentOffsets.1 == target { return recent.1 }
        if recentOffsets.2 == target { return recent.2 }
        if recentOffsets.3 == target { return recent.3 }
        return nil
    }

    mutating func remember(_ name: DomainName, at start: Int) {
        switch recentNext {
        case 0: recent.0 = name; recentOffsets.0 = start
        case 1: recent.1 = name; recentOffsets.1 = start
        case 2: recent.2 = name; recentOffsets.2 = start
        default: recent.3 = name; recentOffsets.3 = start
        }
        recentNext = (recentNext + 1) & 3
    }

    mutating func readNameUncached() throws(WireError) -> DomainName {
        // Labels are gathered on the stack, then copied into one exactly sized array. The walk
        // is static so that the closure captures locals only, never the reader itself.
        let bytes = self.bytes
        let start = offset
        let limit = self.limit
        let (end, storage) = try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) {
            (buffer) throws(WireError) -> (Int, [UInt8]) in
            var count = 0
            let end = try Self.walkName(in: bytes, at: start, limit: limit) { label in
                UnsafeMutableRawPointer(buffer.baseAddress! + count).copyMemory(from: label.baseAddress!, byteCount: label.count)
                count += label.count
            }
            return (end, Array(UnsafeBufferPointer(rebasing: buffer[0..<count])))
        }
        offset = end
        return DomainName(uncheckedStorage: storage, isAbsolute: true)
    }

    /// Skips a name, validating it exactly as `readName` does, without building it.
    public mutating func skipName() throws(WireError) {
        offset = try Self.walkName(in: bytes, at: offset, limit: limit) { _ in }
    }

    /// Moves past the name here without following its compression pointer, if it ends in one
    /// (records cut out of a message: the pointer's target is not in these bytes). Returns
    /// the offset of that pointer, or nil when the name ends in a zero.
    @discardableResult
    public mutating func skipNameInPlace() throws(WireError) -> Int? {
        while true {
            let at = offset
            let length = try readUInt8("a name label")
            if length == 0 { return nil }
            if length & 0xC0 == 0xC0 {
                _ = try readUInt8("a compression pointer")
                return at
            }
            guard length & 0xC0 == 0 else { throw .badLabelType(offset: at, byte: length) }
            try need(Int(length), "a name label of \(length) octets")
            offset += Int(length)
        }
    }

    /// Moves past one record (owner, type, class, TTL, RDATA) without decoding it; the owner's
    /// pointer, if any, is not followed.
    public mutating func skipRecord() throws(WireError) {
        try skipNameInPlace()
        try skipRecordFields()
    }

    /// Moves past a record's type, class, TTL and RDATA (its owner already read).
    public mutating func skipRecordFields() throws(WireError) {
        try need(10, "a record's fixed fields")
        offset += 8
        let length = Int(try readUInt16("a record RDLENGTH"))
        try need(length, "record data of \(length) bytes")
        offset += length
    }

    /// Walks the name at `start`, calling `body` with each label including its length byte.
    /// Returns the offset just past the name where it was found (after its first pointer, if any).
    @inline(__always)
    static func walkName(in bytes: UnsafeRawBufferPointer, at start: Int, limit: Int,
                         _ body: (UnsafeRawBufferPointer) -> Void) throws(WireError) -> Int {
        var offset = start
        var position = start
        var end = limit
        var jumped = false
        var hops = 0
        var length = 1
        // Pointers must land strictly before the lowest position seen so far.
        var floor = start
        while true {
            guard position < end else {
                throw .truncated(offset: position, what: "a name label")
            }
            let byte = bytes[position]
            switch byte & 0xC0 {
            case 0x00:
                if byte == 0 {
                    if !jumped { offset = position + 1 }
                    return offset
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
