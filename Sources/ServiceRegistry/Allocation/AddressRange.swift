public import NetAddress
import HashTreeCollections

/// A prefix seen as a range of integer offsets, so allocators can count and step through it.
/// IPv6 ranges larger than 2^63 addresses are treated as 2^63 (no allocator will fill them).
struct AddressRange: Hashable, Sendable {
    let prefix: IPPrefix
    /// Number of addresses in the prefix, capped at 2^63.
    let size: UInt64

    init(_ prefix: IPPrefix) {
        self.prefix = prefix
        size = min(prefix.addressCount, UInt64(1) << 63)
    }

    func address(at offset: UInt64) -> IPAddress {
        switch prefix.network {
        case .v4(let n): return .v4(IPv4Address(rawValue: n.rawValue &+ UInt32(truncatingIfNeeded: offset)))
        case .v6(let n):
            let (low, carry) = n.low.addingReportingOverflow(offset)
            return .v6(IPv6Address(high: n.high &+ (carry ? 1 : 0), low: low))
        }
    }

    func offset(of address: IPAddress) -> UInt64? {
        guard prefix.contains(address) else { return nil }
        switch (prefix.network, address) {
        case (.v4(let n), .v4(let a)): return UInt64(a.rawValue - n.rawValue)
        case (.v6(let n), .v6(let a)):
            let offset = a.low &- n.low
            return offset < size ? offset : nil
        default: return nil
        }
    }
}

/// Hands out addresses of one prefix, never the first (network) or the last (broadcast) address,
/// and never the same one twice. A requested address is honoured when it is in range and free;
/// otherwise the next free one after the last handed out is given (so a released address is not
/// reused at once).
///
/// The used offsets are a persistent set: applying an object works on a copy of the registry's
/// allocators (the registry's own stay as they were when the object is refused), and a copy of
/// a `TreeSet` shares all but the path an insert changes, where a `Set` of 10,000 addresses
/// was copied whole for every service applied.
public struct IPAllocator: Hashable, Sendable {
    let range: AddressRange
    var used: TreeSet<UInt64> = []
    var cursor: UInt64 = 1
    /// Offsets never handed out automatically (for instance a gateway's .1), but allowed on request.
    let reserved: Set<UInt64>

    public enum Failure: Error, Hashable, Sendable {
        case notInRange
        case alreadyAllocated
        case full
    }

    public init(prefix: IPPrefix, reserveFirstHost: Bool = false) {
        range = AddressRange(prefix)
        reserved = reserveFirstHost ? [1] : []
    }

    public var prefix: IPPrefix { range.prefix }

    /// Addresses that can be handed out: all but the network and the last address.
    public var capacity: UInt64 { range.size > 2 ? range.size - 2 : 0 }
    public var allocatedCount: Int { used.count }

    func isAssignable(_ offset: UInt64) -> Bool { offset >= 1 && offset < range.size - 1 }

    public func isAllocated(_ address: IPAddress) -> Bool {
        range.offset(of: address).map(used.contains) ?? false
    }

    /// Marks `address` as used.
    public mutating func allocate(_ address: IPAddress) throws(Failure) {
        guard let offset = range.offset(of: address), isAssignable(offset) else { throw .notInRange }
        guard used.insert(offset).inserted else { throw .alreadyAllocated }
    }

    /// The next free address, marked as used.
    public mutating func allocateNext() throws(Failure) -> IPAddress {
        guard UInt64(used.count + reserved.count) < capacity else { throw .full }
        var offset = cursor
        for _ in 0..<capacity {
            if !isAssignable(offset) { offset = 1 }
            if !used.contains(offset) && !reserved.contains(offset) {
                used.insert(offset)
                cursor = offset + 1
                return range.address(at: offset)
            }
            offset += 1
        }
        throw .full
    }

    public mutating func release(_ address: IPAddress) {
        if let offset = range.offset(of: address) { used.remove(offset) }
    }
}

/// Hands out ports of a range (NodePorts: 30000-32767 by default), the same way.
public struct PortAllocator: Hashable, Sendable {
    public let range: ClosedRange<Int>
    var used: TreeSet<Int> = []
    var cursor: Int

    public enum Failure: Error, Hashable, Sendable {
        case notInRange
        case alreadyAllocated
        case full
    }

    public init(range: ClosedRange<Int> = 30000...32767) {
        self.range = range
        cursor = range.lowerBound
    }

    public var allocatedCount: Int { used.count }

    public func isAllocated(_ port: Int) -> Bool { used.contains(port) }

    public mutating func allocate(_ port: Int) throws(Failure) {
        guard range.contains(port) else { throw .notInRange }
        guard used.insert(port).inserted else { throw .alreadyAllocated }
    }

    public mutating func allocateNext() throws(Failure) -> Int {
        guard used.count < range.count else { throw .full }
        var port = cursor
        for _ in 0..<range.count {
            if !range.contains(port) { port = range.lowerBound }
            if used.insert(port).inserted {
                cursor = port + 1
                return port
            }
            port += 1
        }
        throw .full
    }

    public mutating func release(_ port: Int) { used.remove(port) }
}
