public import DNSWire
import HashTreeCollections

/// A zone's answers, pre-encoded: for each name and each type it has data for, the
/// bytes that follow the question in the response, with compression pointers into the question
/// (the question is copied from the query, so the answer echoes the query's letters).
///
/// Two layers, like a log-structured store: an immutable flat table (one byte arena holding
/// every name's key and answers back to back, and an open-addressing index into it) and the
/// names changed since it was built, in a small persistent map. A query costs one hash and,
/// in the steady state, one probe into the table, without allocating or retaining anything
/// per name; a registry change touches only the small map, and once enough changes pile up
/// the table is rebuilt with them folded in (`compactIfNeeded`).
public struct CompiledZone: Sendable {
    public struct Answer: Sendable, Equatable {
        public var type: UInt16
        public var counts: (answer: UInt16, authority: UInt16, additional: UInt16)
        public var bytes: [UInt8]
        /// The chain ends in a CNAME out of the zone: the general path follows it (other zones,
        /// upstream), so the fast path leaves it alone.
        public var leavesZone = false
        /// Offsets in `bytes` where the question's letters for the apex are copied (the apex
        /// of SRV targets, which are never compressed).
        public var apexLetters: [Int] = []

        public init(type: UInt16, counts: (answer: UInt16, authority: UInt16, additional: UInt16), bytes: [UInt8],
                    leavesZone: Bool = false, apexLetters: [Int] = []) {
            self.type = type
            self.counts = counts
            self.bytes = bytes
            self.leavesZone = leavesZone
            self.apexLetters = apexLetters
        }

        public static func == (lhs: Answer, rhs: Answer) -> Bool {
            lhs.type == rhs.type && lhs.counts == rhs.counts && lhs.bytes == rhs.bytes && lhs.leavesZone == rhs.leavesZone
                && lhs.apexLetters == rhs.apexLetters
        }
    }

    /// What the fast path finds for a name and a type. The bytes are valid inside `withAnswer`.
    enum Found {
        case answer(bytes: UnsafeRawBufferPointer, counts: (UInt16, UInt16, UInt16), leavesZone: Bool, apexLetters: ApexLetters)
        /// The name exists without data of the asked type.
        case noData
        /// The name is an alias and the type is not compiled: the general path answers.
        case uncompiled
    }

    /// A changed name: its lower-cased wire key and its encoded answers (nil: removed).
    struct Change: Sendable {
        var key: [UInt8]
        var entry: [UInt8]?
    }

    private var table = Table.empty
    /// Key bytes every name ends with (the zone's apex and the root), left out of the keys:
    /// callers pass `withAnswer` the name's key without them (15 bytes a name for
    /// `cluster.local`, 2 MB at 128,000 names).
    public let suffixLength: Int
    /// Changes since `table`, by the hash of their key.
    private var changes: TreeDictionary<UInt32, [Change]> = [:]
    private var changeCount = 0

    public static let compiledTypes: [RecordType] = [.a, .aaaa, .srv, .txt, .cname, .soa, .ns, .mx, .ptr, .caa]

    /// The type of the marker answer a name carries when it also holds records of types not
    /// compiled (HINFO, DS, TLSA, unknown types...): a question for a type the entry lacks then
    /// goes to the general path instead of being answered NODATA. Type 0 is reserved (RFC 6895).
    public static let otherTypesMarker: UInt16 = 0

    /// The marker answer (see `otherTypesMarker`).
    public static let otherTypes = Answer(type: otherTypesMarker, counts: (0, 0, 0), bytes: [])

    /// Names in the zone (after folding the changes in, so only exact after `compact()`).
    public var tableCount: Int { table.count }
    /// Changes not folded into the table yet.
    public var pendingChanges: Int { changeCount }

    public init(suffixLength: Int = 0) {
        self.suffixLength = suffixLength
    }

    /// A name's key as stored: lower-cased wire form without the common suffix.
    public func key(of name: DomainName) -> [UInt8] {
        let full = name.lookupKey
        return Array(full.dropLast(min(suffixLength, full.count)))
    }

    /// A zone compiled whole: the table built directly, each name given once.
    public struct Builder {
        private var table = Table.Builder(expectedCount: 1024, arenaBytes: 1 << 16)
        private let zone: CompiledZone

        public init(suffixLength: Int = 0) {
            zone = CompiledZone(suffixLength: suffixLength)
        }

        public mutating func add(_ name: DomainName, answers: [Answer]) {
            let key = zone.key(of: name)
            let entry = CompiledZone.encode(answers)
            key.withUnsafeBytes { key in entry.withUnsafeBytes { table.add(key: key, entry: $0) } }
        }

        public consuming func finish() -> CompiledZone {
            var zone = self.zone
            zone.table = table.finish()
            return zone
        }
    }

    public mutating func set(_ name: DomainName, answers: [Answer]) {
        record(Change(key: key(of: name), entry: Self.encode(answers)))
    }

    public mutating func remove(_ name: DomainName) {
        let key = key(of: name)
        let known = key.withUnsafeBytes { k in Self.changeEntry(changes, k) != nil || table.withEntry(k) { $0 != nil } }
        if known { record(Change(key: key, entry: nil)) }
    }

    private mutating func record(_ change: Change) {
        let h = change.key.withUnsafeBytes { Self.hash($0) }
        var bucket = changes[h] ?? []
        if let i = bucket.firstIndex(where: { $0.key == change.key }) {
            bucket[i] = change
        } else {
            bucket.append(change)
            changeCount += 1
        }
        changes[h] = bucket
    }

    /// Whether the changes are many enough to fold into a new table (a sixteenth of the
    /// table, at least 64): lookups stay one probe, and the rebuild's cost is spread over the
    /// changes.
    public var needsCompaction: Bool { changeCount > max(64, table.count / 16) }

    /// Folds the changes into a new table once they are many (see `needsCompaction`).
    public mutating func compactIfNeeded() {
        if needsCompaction { compact() }
    }

    /// Builds a new table from the current one and the changes.
    public mutating func compact() {
        guard changeCount > 0 else { return }
        table = Self.fold(table, changes, count: changeCount)
        changes = [:]
        changeCount = 0
    }

    /// `table` with `changes` folded in, as a new table.
    static func fold(_ table: Table, _ changes: TreeDictionary<UInt32, [Change]>, count: Int) -> Table {
        var builder = Table.Builder(expectedCount: table.count + count, arenaBytes: table.arenaCount + count * 128)
        // Most names have not changed: a bitmap of the changed hashes skips the map for them.
        var changed = [UInt64](repeating: 0, count: 1024)
        for h in changes.keys { changed[Int(h & 0xFFFF) >> 6] |= 1 << (h & 63) }
        table.forEach { h, key, entry in
            // A changed name is added from the changes below, or was removed.
            if changed[Int(h & 0xFFFF) >> 6] & (1 << (h & 63)) != 0, Self.changeEntry(changes, key) != nil { return }
            builder.add(key: key, entry: entry, hash: h)
        }
        for bucket in changes.values {
            for change in bucket {
                guard let entry = change.entry else { continue }
                change.key.withUnsafeBytes { key in entry.withUnsafeBytes { builder.add(key: key, entry: $0) } }
            }
        }
        return builder.finish()
    }

    /// The fold of the present changes, to run away from the update path (`run`) and adopt
    /// later (`adopt`) while more changes come: both layers are immutable or persistent, so
    /// taking them is two references.
    public struct Fold: Sendable {
        let base: Table
        let changes: TreeDictionary<UInt32, [Change]>
        let count: Int

        public func run() -> Folded { Folded(fold: self, table: CompiledZone.fold(base, changes, count: count)) }
    }

    public struct Folded: Sendable {
        let fold: Fold
        let table: Table
    }

    public func prepareFold() -> Fold { Fold(base: table, changes: changes, count: changeCount) }

    /// Serves `folded`'s table from now on, keeping only the changes made since its fold began
    /// (a name changed again, or first changed since); false, and nothing changed, when the
    /// table was replaced meanwhile (a whole recompilation).
    @discardableResult
    public mutating func adopt(_ folded: Folded) -> Bool {
        guard folded.fold.base === table else { return false }
        var remaining: TreeDictionary<UInt32, [Change]> = [:]
        var count = 0
        for (h, bucket) in changes {
            let before = folded.fold.changes[h] ?? []
            let kept = bucket.filter { change in !before.contains { $0.key == change.key && $0.entry == change.entry } }
            if !kept.isEmpty {
                remaining[h] = kept
                count += kept.count
            }
        }
        table = folded.table
        changes = remaining
        changeCount = count
        return true
    }

    /// Calls `body` with what the zone has for the name given as lower-cased wire bytes without
    /// the common suffix, and `type`: nil when the name does not exist.
    func withAnswer<R>(_ key: UnsafeRawBufferPointer, type: UInt16, _ body: (Found?) -> R) -> R {
        if changeCount > 0, let changed = Self.changeEntry(changes, key) {
            guard let entry = changed else { return body(nil) }
            return entry.withUnsafeBytes { body(Self.find(type, in: $0)) }
        }
        return table.withEntry(key) { entry in body(entry.map { Self.find(type, in: $0) }) }
    }

    /// The answers of a name, decoded (tests and diagnostics; the fast path uses `withAnswer`).
    public func find(_ name: DomainName) -> [Answer]? {
        key(of: name).withUnsafeBytes { find($0) }
    }

    /// The same for a stored key (without the common suffix).
    func find(_ key: UnsafeRawBufferPointer) -> [Answer]? {
        if changeCount > 0, let changed = Self.changeEntry(changes, key) {
            return changed.map { $0.withUnsafeBytes(Self.decode) }
        }
        return table.withEntry(key) { $0.map(Self.decode) }
    }

    private static func changeEntry(_ changes: TreeDictionary<UInt32, [Change]>, _ key: UnsafeRawBufferPointer) -> [UInt8]?? {
        guard let bucket = changes[hash(key)] else { return nil }
        for change in bucket where change.key.count == key.count {
            if change.key.withUnsafeBytes({ Table.equal($0, key) }) { return .some(change.entry) }
        }
        return nil
    }

    /// The offsets in an answer's bytes where the question's letters for the apex go, as the
    /// entry stores them (varints).
    public struct ApexLetters {
        let offsets: UnsafeRawBufferPointer
        let count: Int

        /// Calls `body` with each offset.
        @inline(__always)
        func forEach(_ body: (Int) -> Void) {
            var i = 0
            for _ in 0..<count {
                guard let offset = CompiledZone.readVarint(offsets, &i) else { return }
                body(offset)
            }
        }

        var all: [Int] {
            var list: [Int] = []
            forEach { list.append($0) }
            return list
        }
    }

    // MARK: Entry encoding

    /// A name's answers as bytes: per answer, the type (2), a flag byte (1: leaves the zone; 2:
    /// apex-letter offsets follow), the three counts and the length as LEB128 varints (one
    /// byte each below 128), with flag 2 the number of apex-letter offsets and the offsets as
    /// varints, and the answer bytes. No answers: the name exists without data (NODATA).
    static func encode(_ answers: [Answer]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(answers.reduce(0) { $0 + 16 + $1.bytes.count })
        for answer in answers {
            out.append(UInt8(answer.type >> 8))
            out.append(UInt8(answer.type & 0xFF))
            out.append((answer.leavesZone ? 1 : 0) | (answer.apexLetters.isEmpty ? 0 : 2))
            putVarint(Int(answer.counts.answer), into: &out)
            putVarint(Int(answer.counts.authority), into: &out)
            putVarint(Int(answer.counts.additional), into: &out)
            putVarint(answer.bytes.count, into: &out)
            if !answer.apexLetters.isEmpty {
                putVarint(answer.apexLetters.count, into: &out)
                for offset in answer.apexLetters { putVarint(offset, into: &out) }
            }
            out.append(contentsOf: answer.bytes)
        }
        return out
    }

    static func putVarint(_ value: Int, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Reads a varint at `i` and moves past it; nil past the end (or longer than 32 bits).
    @inline(__always) static func readVarint(_ p: UnsafeRawBufferPointer, _ i: inout Int) -> Int? {
        var value = 0
        var shift = 0
        while i < p.count && shift < 35 {
            let byte = p[i]
            i += 1
            value |= Int(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// One answer's header at `i`: its type, flag, counts, and where its bytes are.
    @inline(__always) static func readAnswer(_ entry: UnsafeRawBufferPointer, _ i: inout Int)
        -> (type: UInt16, leavesZone: Bool, counts: (UInt16, UInt16, UInt16), bytes: Range<Int>, apexLetters: ApexLetters)? {
        guard i + 3 <= entry.count else { return nil }
        let type = UInt16(entry[i]) << 8 | UInt16(entry[i + 1])
        let flags = entry[i + 2]
        i += 3
        guard let answer = readVarint(entry, &i), let authority = readVarint(entry, &i),
              let additional = readVarint(entry, &i), let length = readVarint(entry, &i) else { return nil }
        var letters = ApexLetters(offsets: UnsafeRawBufferPointer(rebasing: entry[i..<i]), count: 0)
        if flags & 2 != 0 {
            guard let count = readVarint(entry, &i) else { return nil }
            let start = i
            for _ in 0..<count { guard readVarint(entry, &i) != nil else { return nil } }
            letters = ApexLetters(offsets: UnsafeRawBufferPointer(rebasing: entry[start..<i]), count: count)
        }
        guard i + length <= entry.count else { return nil }
        let bytes = i..<(i + length)
        i += length
        return (type, flags & 1 != 0, (UInt16(truncatingIfNeeded: answer), UInt16(truncatingIfNeeded: authority),
                                       UInt16(truncatingIfNeeded: additional)), bytes, letters)
    }

    static func find(_ type: UInt16, in entry: UnsafeRawBufferPointer) -> Found {
        var i = 0
        var isAlias = false
        while let answer = readAnswer(entry, &i) {
            if answer.type == type && type != Self.otherTypesMarker {
                return .answer(bytes: UnsafeRawBufferPointer(rebasing: entry[answer.bytes]), counts: answer.counts,
                               leavesZone: answer.leavesZone, apexLetters: answer.apexLetters)
            }
            if answer.type == RecordType.cname.rawValue || answer.type == Self.otherTypesMarker { isAlias = true }
        }
        // A CNAME answers every type; those not compiled (HINFO, DS, ...) follow it on the
        // general path, as do the types of a name marked as holding others.
        return isAlias ? .uncompiled : .noData
    }

    static func decode(_ entry: UnsafeRawBufferPointer) -> [Answer] {
        var answers: [Answer] = []
        var i = 0
        while let answer = readAnswer(entry, &i) {
            answers.append(Answer(type: answer.type, counts: answer.counts, bytes: Array(entry[answer.bytes]),
                                  leavesZone: answer.leavesZone, apexLetters: answer.apexLetters.all))
        }
        return answers
    }

    // MARK: Hashing

    /// A per-process seed, so that which names collide cannot be planned from outside.
    static let seed = UInt64.random(in: 1...UInt64.max)

    /// Eight bytes at a time: multiply, fold; then a final mix. Not cryptographic; seeded.
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt32 {
        var h = seed ^ UInt64(key.count)
        var i = 0
        while i + 8 <= key.count {
            let w = key.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < key.count {
            tail |= UInt64(key[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        h = h &* 0x94D0_49BB_1331_11EB
        h ^= h >> 32
        return UInt32(truncatingIfNeeded: h)
    }

    // MARK: The flat table

    /// Immutable once built. The arena holds, per name: the key length (1), the key, the entry
    /// length (a varint) and the entry. Each index slot holds the key's hash in its high half and the
    /// name's arena offset plus one in its low half (0: empty); linear probing, at most half full.
    final class Table: Sendable {
        let arena: [UInt8]
        let slots: [UInt64]
        let count: Int

        static let empty = Table(arena: [], slots: [0], count: 0)

        init(arena: [UInt8], slots: [UInt64], count: Int) {
            self.arena = arena
            self.slots = slots
            self.count = count
        }

        var arenaCount: Int { arena.count }

        static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
            a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
        }

        /// Where the entry that follows a key ending at `e` lies in the arena.
        @inline(__always) static func entry(_ arena: UnsafeRawBufferPointer, at e: Int) -> Range<Int> {
            var i = e
            let length = CompiledZone.readVarint(arena, &i) ?? 0
            return i..<(i + length)
        }

        func withEntry<R>(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
            let h = CompiledZone.hash(key)
            return arena.withUnsafeBytes { arena in
                slots.withUnsafeBufferPointer { slots in
                    let mask = slots.count - 1
                    var i = Int(h) & mask
                    while true {
                        let slot = slots[i]
                        if slot == 0 { return body(nil) }
                        if UInt32(truncatingIfNeeded: slot >> 32) == h {
                            let at = Int(UInt32(truncatingIfNeeded: slot)) - 1
                            let keyLength = Int(arena[at])
                            if keyLength == key.count
                                && (keyLength == 0 || memcmp(arena.baseAddress! + at + 1, key.baseAddress!, keyLength) == 0) {
                                return body(UnsafeRawBufferPointer(rebasing: arena[Self.entry(arena, at: at + 1 + keyLength)]))
                            }
                        }
                        i = (i + 1) & mask
                    }
                }
            }
        }

        /// Every name with its hash, key and entry, in arena order.
        func forEach(_ body: (_ hash: UInt32, _ key: UnsafeRawBufferPointer, _ entry: UnsafeRawBufferPointer) -> Void) {
            arena.withUnsafeBytes { arena in
                var at = 0
                while at < arena.count {
                    let keyLength = Int(arena[at])
                    let e = at + 1 + keyLength
                    let key = UnsafeRawBufferPointer(rebasing: arena[(at + 1)..<e])
                    let entry = Self.entry(arena, at: e)
                    body(CompiledZone.hash(key), key, UnsafeRawBufferPointer(rebasing: arena[entry]))
                    at = entry.upperBound
                }
            }
        }

        public struct Builder {
            var arena: [UInt8] = []
            var slots: [UInt64]
            var count = 0

            init(expectedCount: Int, arenaBytes: Int) {
                var capacity = 16
                while capacity < expectedCount * 2 { capacity *= 2 }
                slots = [UInt64](repeating: 0, count: capacity)
                arena.reserveCapacity(arenaBytes)
            }

            mutating func add(key: UnsafeRawBufferPointer, entry: UnsafeRawBufferPointer, hash: UInt32? = nil) {
                if (count + 1) * 2 > slots.count { grow() }
                let at = arena.count
                arena.append(UInt8(key.count))
                arena.append(contentsOf: key)
                CompiledZone.putVarint(entry.count, into: &arena)
                arena.append(contentsOf: entry)
                insert(hash: hash ?? CompiledZone.hash(key), at: at)
                count += 1
            }

            private mutating func insert(hash h: UInt32, at offset: Int) {
                let mask = slots.count - 1
                var i = Int(h) & mask
                while slots[i] != 0 { i = (i + 1) & mask }
                slots[i] = UInt64(h) << 32 | UInt64(offset + 1)
            }

            private mutating func grow() {
                let old = slots
                slots = [UInt64](repeating: 0, count: old.count * 2)
                for slot in old where slot != 0 {
                    insert(hash: UInt32(truncatingIfNeeded: slot >> 32), at: Int(UInt32(truncatingIfNeeded: slot)) - 1)
                }
            }

            /// The table, its arena copied to its exact size: grown by doubling, it could hold
            /// half again as much reserved and never used for as long as the table serves.
            consuming func finish() -> Table {
                let arena = self.arena
                let exact = [UInt8](unsafeUninitializedCapacity: arena.count) { buffer, initialized in
                    arena.withUnsafeBufferPointer { source in
                        if let base = source.baseAddress { buffer.baseAddress!.update(from: base, count: source.count) }
                    }
                    initialized = arena.count
                }
                return Table(arena: exact, slots: slots, count: count)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
