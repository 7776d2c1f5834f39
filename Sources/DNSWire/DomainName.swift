/// A domain name: a sequence of labels, each up to 63 octets, at most 255 octets on the wire.
///
/// The labels are kept as bytes in their wire encoding (length-prefixed, without the final root
/// byte), with their original letter case. Equality and hashing ignore ASCII case (RFC 4343);
/// other bytes compare exactly.
public struct DomainName: Sendable, CustomStringConvertible {
    /// Length-prefixed labels, without the terminating zero byte.
    @usableFromInline var storage: [UInt8]
    /// Absolute names end at the root; relative names still need an origin.
    public private(set) var isAbsolute: Bool

    public static let maxLabelLength = 63
    public static let maxWireLength = 255

    /// The root name `.`.
    public static let root = DomainName(uncheckedStorage: [], isAbsolute: true)

    @usableFromInline init(uncheckedStorage: [UInt8], isAbsolute: Bool) {
        storage = uncheckedStorage
        self.isAbsolute = isAbsolute
    }

    /// Builds a name from raw labels. Throws when a label is empty or too long, or the name is too long.
    public init(labels: some Sequence<some Collection<UInt8>>, isAbsolute: Bool = true) throws(WireError) {
        var bytes: [UInt8] = []
        for label in labels {
            guard !label.isEmpty else {
                throw .invalidName(Self.describe(bytes), reason: "empty label")
            }
            guard label.count <= Self.maxLabelLength else {
                throw .invalidName(String(decoding: label, as: UTF8.self), reason: "label longer than 63 octets")
            }
            bytes.append(UInt8(label.count))
            bytes.append(contentsOf: label)
        }
        guard bytes.count + 1 <= Self.maxWireLength else {
            throw .invalidName(Self.describe(bytes), reason: "name longer than 255 octets")
        }
        self.init(uncheckedStorage: bytes, isAbsolute: isAbsolute)
    }

    /// Number of labels, not counting the root.
    public var labelCount: Int {
        var count = 0
        var i = 0
        while i < storage.count {
            count += 1
            i += Int(storage[i]) + 1
        }
        return count
    }

    /// The labels' bytes, first (leftmost) to last.
    public var labels: [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var i = 0
        while i < storage.count {
            let n = Int(storage[i])
            out.append(storage[(i + 1)..<(i + 1 + n)])
            i += n + 1
        }
        return out
    }

    public var isRoot: Bool { storage.isEmpty && isAbsolute }

    /// Octets this name takes uncompressed on the wire (absolute names include the root byte).
    public var wireLength: Int { storage.count + 1 }

    /// The uncompressed wire form: labels and the terminating zero.
    public var wireBytes: [UInt8] { storage + [0] }

    /// The name without its first label; nil for the root or an empty relative name.
    public var parent: DomainName? {
        guard !storage.isEmpty else { return nil }
        let first = Int(storage[0]) + 1
        return DomainName(uncheckedStorage: Array(storage[first...]), isAbsolute: isAbsolute)
    }

    /// The name and then each of its ancestors, down to the root for an absolute name.
    public var selfAndAncestors: some Sequence<DomainName> {
        sequence(first: self) { $0.parent }
    }

    /// True when this name equals `other` or lies beneath it, compared label by label.
    public func isSubdomain(of other: DomainName) -> Bool {
        guard isAbsolute == other.isAbsolute, storage.count >= other.storage.count else { return false }
        // Walk our labels until the remaining length equals the other's, then compare the tails.
        var i = 0
        let offset = storage.count - other.storage.count
        while i < offset { i += Int(storage[i]) + 1 }
        guard i == offset else { return false }
        return Self.equalIgnoringCase(storage[offset...], other.storage[...])
    }

    /// Appends `origin` to a relative name; absolute names are returned unchanged.
    public func resolved(against origin: DomainName) throws(WireError) -> DomainName {
        if isAbsolute { return self }
        let bytes = storage + origin.storage
        guard bytes.count + 1 <= Self.maxWireLength else {
            throw .invalidName(description + "." + origin.description, reason: "name longer than 255 octets")
        }
        return DomainName(uncheckedStorage: bytes, isAbsolute: origin.isAbsolute)
    }

    /// Prepends one label.
    public func prepending(label: some Collection<UInt8>) throws(WireError) -> DomainName {
        let head = try DomainName(labels: [Array(label)], isAbsolute: false)
        return try head.resolved(against: self)
    }

    /// The name with ASCII letters lower-cased.
    public var lowercased: DomainName {
        DomainName(uncheckedStorage: storage.map(asciiLowercase), isAbsolute: isAbsolute)
    }

    /// The wire form lower-cased, as used for lookup keys (labels and the terminating zero).
    public var lookupKey: [UInt8] {
        var key = storage.map(asciiLowercase)
        key.append(0)
        return key
    }

    @inlinable static func equalIgnoringCase(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var i = a.startIndex
        var j = b.startIndex
        while i < a.endIndex {
            if a[i] != b[j] && asciiLowercase(a[i]) != asciiLowercase(b[j]) { return false }
            i += 1
            j += 1
        }
        return true
    }
}

@inlinable func asciiLowercase(_ byte: UInt8) -> UInt8 {
    byte &- 0x41 < 26 ? byte | 0x20 : byte
}

extension DomainName: Hashable {
    public static func == (lhs: DomainName, rhs: DomainName) -> Bool {
        lhs.isAbsolute == rhs.isAbsolute && equalIgnoringCase(lhs.storage[...], rhs.storage[...])
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(isAbsolute)
        storage.withUnsafeBufferPointer { source in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { lowered in
                for i in 0..<source.count { lowered[i] = asciiLowercase(source[i]) }
                hasher.combine(bytes: UnsafeRawBufferPointer(start: lowered.baseAddress, count: source.count))
            }
        }
    }
}

extension DomainName: Comparable {
    /// Canonical DNS order (RFC 4034 §6.1): compare label by label from the right, lower-cased.
    public static func < (lhs: DomainName, rhs: DomainName) -> Bool {
        lhs.canonicalCompare(rhs) < 0
    }

    /// Three-way canonical comparison: negative, zero or positive. Does not allocate.
    public func canonicalCompare(_ other: DomainName) -> Int {
        storage.withUnsafeBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { offsets in
                    // Label start offsets of both names, rightmost last; at most 127 labels each.
                    var na = 0
                    var i = 0
                    while i < a.count {
                        offsets[na] = UInt8(i)
                        na += 1
                        i += Int(a[i]) + 1
                    }
                    var nb = 0
                    i = 0
                    while i < b.count {
                        offsets[128 + nb] = UInt8(i)
                        nb += 1
                        i += Int(b[i]) + 1
                    }
                    var ia = na - 1
                    var ib = nb - 1
                    while ia >= 0 && ib >= 0 {
                        let sa = Int(offsets[ia])
                        let sb = Int(offsets[128 + ib])
                        let la = Int(a[sa])
                        let lb = Int(b[sb])
                        for k in 1...min(la, lb) {
                            let x = asciiLowercase(a[sa + k])
                            let y = asciiLowercase(b[sb + k])
                            if x != y { return Int(x) - Int(y) }
                        }
                        if la != lb { return la - lb }
                        ia -= 1
                        ib -= 1
                    }
                    return na - nb
                }
            }
        }
    }
}
