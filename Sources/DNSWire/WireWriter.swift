#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds a DNS message in a buffer it owns. Names are compressed against earlier names by
/// case-insensitive suffix matching (RFC 1035 §4.1.4). A writer is reset and reused between
/// messages: after its first use it does not allocate.
///
/// It is not copyable: exactly one owner writes into the buffer, and the buffer is freed with it.
public struct WireWriter: ~Copyable, @unchecked Sendable {
    @usableFromInline var buffer: UnsafeMutablePointer<UInt8>
    @usableFromInline var capacity: Int
    public private(set) var count: Int
    /// Offsets of label starts written so far that a pointer can reach (< 0x4000).
    var targets: UnsafeMutablePointer<UInt16>
    var targetCount: Int
    static let maxTargets = 1024
    /// The last few whole names written with compression, by their storage, and the offset they
    /// start at. A name sharing that storage (a decoded message's owners share the question's, a
    /// zone's records share their owner's) becomes a pointer without any search. The storage is
    /// held while it is remembered, so it cannot be freed and reused for other bytes.
    var recentNames: UnsafeMutablePointer<(storage: [UInt8], offset: Int)>
    var recentNext: Int
    static let recentCount = 4
    /// A question written with `writeQuestionName(_:suffixLabels:)`: names sharing its storage
    /// (owners that echo it) become a pointer to it however many names came between.
    var pinned: (storage: [UInt8], offset: Int) = ([], -1)

    public init(capacity: Int = 512) {
        self.capacity = max(capacity, 64)
        buffer = .allocate(capacity: self.capacity)
        count = 0
        targets = .allocate(capacity: Self.maxTargets)
        targetCount = 0
        recentNames = .allocate(capacity: Self.recentCount)
        recentNames.initialize(repeating: ([], -1), count: Self.recentCount)
        recentNext = 0
    }

    deinit {
        buffer.deallocate()
        targets.deallocate()
        recentNames.deinitialize(count: Self.recentCount)
        recentNames.deallocate()
    }

    /// Empties the writer, keeping its buffers.
    public mutating func reset() {
        count = 0
        targetCount = 0
        forgetRecentNames(from: 0)
        pinned = ([], -1)
    }

    mutating func forgetRecentNames(from offset: Int) {
        for i in 0..<Self.recentCount where recentNames[i].offset >= offset {
            recentNames[i] = ([], -1)
        }
    }

    /// A copy of the bytes written.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: buffer, count: count)) }

    /// The bytes written, borrowed (for sending without a copy).
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: buffer, count: count))
    }

    @inline(__always) @usableFromInline mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    @usableFromInline mutating func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBuffer.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = newBuffer
        capacity = newCapacity
    }

    @inline(__always) public mutating func writeUInt8(_ v: UInt8) {
        reserve(1)
        buffer[count] = v
        count += 1
    }

    @inline(__always) public mutating func writeUInt16(_ v: UInt16) {
        reserve(2)
        buffer[count] = UInt8(truncatingIfNeeded: v >> 8)
        buffer[count + 1] = UInt8(truncatingIfNeeded: v)
        count += 2
    }

    @inline(__always) public mutating func writeUInt32(_ v: UInt32) {
        reserve(4)
        buffer[count] = UInt8(truncatingIfNeeded: v >> 24)
        buffer[count + 1] = UInt8(truncatingIfNeeded: v >> 16)
        buffer[count + 2] = UInt8(truncatingIfNeeded: v >> 8)
        buffer[count + 3] = UInt8(truncatingIfNeeded: v)
        count += 4
    }

    public mutating func writeBytes(_ v: [UInt8]) {
        reserve(v.count)
        v.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { (buffer + count).update(from: base, count: source.count) }
        }
        count += v.count
    }

    public mutating func writeBytes(_ v: UnsafeRawBufferPointer) {
        reserve(v.count)
        if let base = v.baseAddress { UnsafeMutableRawPointer(buffer + count).copyMemory(from: base, byteCount: v.count) }
        count += v.count
    }

    public mutating func setUInt16(_ v: UInt16, at offset: Int) {
        precondition(offset >= 0 && offset + 2 <= count, "setUInt16 outside the written bytes")
        buffer[offset] = UInt8(truncatingIfNeeded: v >> 8)
        buffer[offset + 1] = UInt8(truncatingIfNeeded: v)
    }

    /// Drops everything written from `offset` on, and any compression targets there.
    public mutating func rollBack(to offset: Int) {
        precondition(offset >= 0 && offset <= count, "rollBack beyond the written bytes")
        count = offset
        while targetCount > 0 && Int(targets[targetCount - 1]) >= offset { targetCount -= 1 }
        forgetRecentNames(from: offset)
        if pinned.offset >= offset { pinned = ([], -1) }
    }

    /// Writes a name (a relative name is written as if absolute). With `compress`, the longest
    /// suffix already in the message becomes a pointer and the labels written out become targets
    /// for later names; without it (the SRV target) the name is neither compressed nor a target.
    public mutating func writeName(_ name: DomainName, compress: Bool = true) {
        writeName(name, compress: compress, targetsFromLabel: 0)
    }

    /// `targetsFromLabel`: the labels before this one do not become targets.
    mutating func writeName(_ name: DomainName, compress: Bool, targetsFromLabel: Int) {
        if compress && !name.storage.isEmpty, let offset = recentOffset(of: name.storage) {
            writeUInt16(0xC000 | UInt16(offset))
            return
        }
        name.storage.withUnsafeBufferPointer { storage in
            reserve(storage.count + 1)
            // Only names completed before this one are searched: this name's own labels are not
            // terminated yet while it is being written.
            let searchable = targetCount
            let start = count
            var i = 0
            var label = 0
            while i < storage.count {
                if compress, let target = findSuffix(storage, from: i, among: searchable) {
                    remember(name.storage, at: i == 0 ? Int(target) : start)
                    writeUInt16(0xC000 | target)
                    return
                }
                if compress && label >= targetsFromLabel && count < 0x4000 && targetCount < Self.maxTargets {
                    targets[targetCount] = UInt16(count)
                    targetCount += 1
                }
                let n = Int(storage[i]) + 1
                (buffer + count).update(from: storage.baseAddress! + i, count: n)
                count += n
                i += n
                label += 1
            }
            buffer[count] = 0
            count += 1
            if compress { remember(name.storage, at: start) }
        }
    }

    /// Writes a question's name whose letters the answer copies only in two places: the whole
    /// name, for names sharing its storage (the owners that echo it), and its last
    /// `suffixLabels` labels (the zone's apex), the only parts of it later names may point to.
    /// Names in the zone then read as the zone's data wrote them, with the apex in the
    /// question's letters (as CoreDNS answers), and an answer encoded for one spelling of the
    /// question has the same bytes for every other, but for the letters its pointers copy.
    public mutating func writeQuestionName(_ name: DomainName, suffixLabels: Int) {
        let start = count
        writeName(name, compress: true, targetsFromLabel: max(0, name.labelCount - suffixLabels))
        if !name.storage.isEmpty && start < 0x4000 { pinned = (name.storage, start) }
    }

    /// Where a name with this very storage was written, if it is one of the last few.
    func recentOffset(of storage: [UInt8]) -> Int? {
        if pinned.offset >= 0 {
            let same = pinned.storage.withUnsafeBufferPointer { theirs in
                storage.withUnsafeBufferPointer { theirs.baseAddress == $0.baseAddress && theirs.count == $0.count }
            }
            if same { return pinned.offset }
        }
        return storage.withUnsafeBufferPointer { mine in
            for r in 0..<Self.recentCount where recentNames[r].offset >= 0 {
                let same = recentNames[r].storage.withUnsafeBufferPointer { theirs in
                    theirs.baseAddress == mine.baseAddress && theirs.count == mine.count
                }
                if same { return recentNames[r].offset }
            }
            return nil
        }
    }

    mutating func remember(_ storage: [UInt8], at offset: Int) {
        guard !storage.isEmpty, offset < 0x4000 else { return }
        recentNames[recentNext] = (storage, offset)
        recentNext = (recentNext + 1) % Self.recentCount
    }

    /// Finds an earlier position whose name equals `storage[from...]` (ignoring ASCII case).
    func findSuffix(_ storage: UnsafeBufferPointer<UInt8>, from start: Int, among limit: Int) -> UInt16? {
        let firstLength = storage[start]
        var t = 0
        while t < limit {
            let target = targets[t]
            if buffer[Int(target)] == firstLength && nameAt(Int(target), equals: storage, from: start) {
                return target
            }
            t += 1
        }
        return nil
    }

    /// Compares the (possibly compressed) name written at `position` with `storage[from...]`.
    func nameAt(_ position: Int, equals storage: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        var p = position
        var s = start
        while true {
            var length = Int(buffer[p])
            while length & 0xC0 == 0xC0 {
                p = (length & 0x3F) << 8 | Int(buffer[p + 1])
                length = Int(buffer[p])
            }
            if s == storage.count { return length == 0 }
            guard length == Int(storage[s]), length != 0 else { return false }
            for k in 1...length {
                let a = buffer[p + k]
                let b = storage[s + k]
                if a != b && asciiLowercase(a) != asciiLowercase(b) { return false }
            }
            p += length + 1
            s += length + 1
        }
    }
}
