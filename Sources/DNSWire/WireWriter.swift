/// Builds a DNS message. Names are compressed against earlier names by case-insensitive suffix
/// matching (RFC 1035 §4.1.4). The writer can be reset and reused to avoid reallocating.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8]
    /// Offsets of label starts written so far that a pointer can reach (< 0x4000).
    var compressionTargets: [UInt16]

    public init(capacity: Int = 512) {
        bytes = []
        bytes.reserveCapacity(capacity)
        compressionTargets = []
        compressionTargets.reserveCapacity(64)
    }

    /// Empties the writer, keeping its buffers.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        compressionTargets.removeAll(keepingCapacity: true)
    }

    public var count: Int { bytes.count }

    @inline(__always) public mutating func writeUInt8(_ v: UInt8) { bytes.append(v) }

    @inline(__always) public mutating func writeUInt16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always) public mutating func writeUInt32(_ v: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 24))
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func writeBytes(_ v: some Collection<UInt8>) { bytes.append(contentsOf: v) }

    public mutating func setUInt16(_ v: UInt16, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: v >> 8)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: v)
    }

    /// Drops everything written from `offset` on, and any compression targets there.
    public mutating func rollBack(to offset: Int) {
        bytes.removeSubrange(offset...)
        while let last = compressionTargets.last, Int(last) >= offset { compressionTargets.removeLast() }
    }

    /// Writes a name (a relative name is written as if absolute). With `compress`, the longest
    /// suffix already in the message becomes a pointer and the labels written out become targets
    /// for later names; without it (the SRV target) the name is neither compressed nor a target.
    public mutating func writeName(_ name: DomainName, compress: Bool = true) {
        let storage = name.storage
        // Only names completed before this one are searched: this name's own labels are not
        // terminated yet while it is being written.
        let searchable = compressionTargets.count
        var i = 0
        while i < storage.count {
            if compress, let target = findSuffix(storage, from: i, among: searchable) {
                writeUInt16(0xC000 | target)
                return
            }
            if compress && bytes.count < 0x4000 { compressionTargets.append(UInt16(bytes.count)) }
            let n = Int(storage[i])
            bytes.append(contentsOf: storage[i...(i + n)])
            i += n + 1
        }
        bytes.append(0)
    }

    /// Finds an earlier position whose name equals `storage[from...]` (ignoring ASCII case).
    func findSuffix(_ storage: [UInt8], from start: Int, among count: Int) -> UInt16? {
        let firstLength = storage[start]
        for target in compressionTargets[0..<count] where bytes[Int(target)] == firstLength {
            if nameAt(Int(target), equals: storage, from: start) { return target }
        }
        return nil
    }

    /// Compares the (possibly compressed) name written at `position` with `storage[from...]`.
    func nameAt(_ position: Int, equals storage: [UInt8], from start: Int) -> Bool {
        var p = position
        var s = start
        while true {
            var length = Int(bytes[p])
            while length & 0xC0 == 0xC0 {
                p = (length & 0x3F) << 8 | Int(bytes[p + 1])
                length = Int(bytes[p])
            }
            if s == storage.count { return length == 0 }
            guard length == Int(storage[s]) else { return false }
            if length == 0 { return false }
            for k in 1...length where asciiLowercase(bytes[p + k]) != asciiLowercase(storage[s + k]) {
                return false
            }
            p += length + 1
            s += length + 1
        }
    }
}
