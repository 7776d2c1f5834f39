/// A hash table from lower-cased wire names to integers, looked up by raw bytes without
/// allocating: keys live in one byte arena, slots are probed linearly. Built once per zone
/// compilation, then only read.
struct NameTable: Sendable {
    private var slots: [Slot]
    private var arena: [UInt8] = []
    private var mask: Int
    private(set) var count = 0

    struct Slot: Sendable {
        var hash: UInt32 = 0
        var length: UInt16 = 0
        var offset: Int32 = -1
        var value: Int32 = 0
    }

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: Slot(), count: size)
        mask = size - 1
    }

    static func hash(_ key: UnsafeRawBufferPointer) -> UInt32 {
        // FNV-1a.
        var h: UInt32 = 2_166_136_261
        for byte in key {
            h ^= UInt32(byte)
            h &*= 16_777_619
        }
        return h
    }

    /// Inserts `key` (already lower-cased) with `value`; an existing key keeps its first value.
    mutating func insert(_ key: [UInt8], value: Int) {
        if count * 2 >= slots.count { grow() }
        let h = key.withUnsafeBytes { Self.hash($0) }
        var i = Int(h) & mask
        while slots[i].offset >= 0 {
            if slots[i].hash == h, equal(slots[i], key) { return }
            i = (i + 1) & mask
        }
        slots[i] = Slot(hash: h, length: UInt16(key.count), offset: Int32(arena.count), value: Int32(value))
        arena.append(contentsOf: key)
        count += 1
    }

    private func equal(_ slot: Slot, _ key: [UInt8]) -> Bool {
        guard Int(slot.length) == key.count else { return false }
        return arena[Int(slot.offset)..<(Int(slot.offset) + key.count)].elementsEqual(key)
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(), count: old.count * 2)
        mask = slots.count - 1
        for slot in old where slot.offset >= 0 {
            var i = Int(slot.hash) & mask
            while slots[i].offset >= 0 { i = (i + 1) & mask }
            slots[i] = slot
        }
    }

    /// The value of `key` (lower-cased wire bytes), or nil.
    func find(_ key: UnsafeRawBufferPointer) -> Int? {
        let h = Self.hash(key)
        return slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBytes { arena in
                var i = Int(h) & mask
                while slots[i].offset >= 0 {
                    let slot = slots[i]
                    if slot.hash == h, Int(slot.length) == key.count,
                       memcmp(arena.baseAddress! + Int(slot.offset), key.baseAddress!, key.count) == 0 {
                        return Int(slot.value)
                    }
                    i = (i + 1) & mask
                }
                return nil
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
