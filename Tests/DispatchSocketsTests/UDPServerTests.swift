import DispatchSockets
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The UDP server's clock: read once for each batch received, every datagram of the batch
/// carrying that reading (`Origin.receivedAt`); no clock, no reading.
struct UDPServerTests {
    /// What the handler saw: each datagram's first byte and its `receivedAt`.
    final class Seen: Sendable {
        let entries = Mutex<[(UInt8, UInt64)]>([])
        var all: [(UInt8, UInt64)] { entries.withLock { $0 } }
    }

    /// Sends one-byte datagrams `bytes` to `port` on 127.0.0.1 from one socket.
    static func send(_ bytes: [UInt8], to port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        for var byte in bytes {
            _ = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, &byte, 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    static func server(clock: (@Sendable () -> UInt64)?, seen: Seen) throws -> UDPServer {
        try UDPServer(address: try #require(SocketAddress(parsing: "127.0.0.1:0")), sockets: 1, clock: clock) { query, _, origin in
            let entry = (query.first ?? 0, origin.receivedAt)
            seen.entries.withLock { $0.append(entry) }
            return 0
        }
    }

    @Test func aBatchSharesOneClockReading() async throws {
        let readings = Atomic<UInt64>(100)
        let seen = Seen()
        let server = try Self.server(clock: { readings.add(1, ordering: .relaxed).newValue }, seen: seen)
        defer { server.stop() }
        // Queued before the server reads: one receive takes all five.
        Self.send([1, 2, 3, 4, 5], to: server.address.port)
        server.start()
        #expect(await eventually(within: 10) { seen.all.count == 5 })
        let first = seen.all
        #expect(first.map(\.0) == [1, 2, 3, 4, 5])
        #expect(Set(first.map(\.1)).count == 1 && first[0].1 > 100)
        Self.send([6], to: server.address.port)
        #expect(await eventually(within: 10) { seen.all.count == 6 })
        #expect(try #require(seen.all.last).1 > first[0].1)
    }

    @Test func withoutAClockNothingIsRead() async throws {
        let seen = Seen()
        let server = try Self.server(clock: nil, seen: seen)
        defer { server.stop() }
        server.start()
        Self.send([7, 8], to: server.address.port)
        #expect(await eventually(within: 10) { seen.all.count == 2 })
        #expect(seen.all.map(\.1) == [0, 0])
    }
}
