@testable import DispatchSockets
import Glibc
import NetAddress
import Synchronization
import Testing
import TestSupport

/// The limits of DNS over TCP (RFC 7766) on the message server itself, with a handler the test
/// controls: a client that does not read stops being read from and loses nothing; a connection
/// with as many queries in flight as the limit stops being read until replies come back, and
/// replies may come back in any order; a server that stops drains what it has read and closes.
@Suite(.serialized) struct TCPMessageServerTests {
    /// The messages the handler was given, and the replies it holds back.
    final class Handled: Sendable {
        let messages = Mutex<[[UInt8]]>([])
        let deferred = Mutex<[(message: [UInt8], later: TCPMessageServer.DeferredReply)]>([])
        var count: Int { messages.withLock { $0.count } }
        var waiting: Int { deferred.withLock { $0.count } }
        func takeDeferred() -> [(message: [UInt8], later: TCPMessageServer.DeferredReply)] {
            deferred.withLock { held in defer { held.removeAll() }; return held }
        }
    }

    /// A server on 127.0.0.1 whose handler answers each message with `reply(message)`, or
    /// holds it back when that is nil. Its idle timeout runs on a clock that stands still: a
    /// test held up on a busy machine must not find its connection closed for idleness.
    static func server(limits: TCPMessageServer.Limits = .init(), reply: @escaping @Sendable ([UInt8]) -> [UInt8]?)
        throws -> (TCPMessageServer, Handled) {
        let handled = Handled()
        let server = try TCPMessageServer(address: SocketAddress(address: IPAddress("127.0.0.1")!, port: 0), limits: limits,
                                          clock: ManualClock()) { message, _, later in
            handled.messages.withLock { $0.append(message) }
            if let answer = reply(message) { return [answer] }
            handled.deferred.withLock { $0.append((message, later)) }
            return nil
        }
        server.start()
        return (server, handled)
    }

    /// A message numbered `n`: its first two bytes, as a DNS message's ID.
    static func message(_ n: Int, size: Int = 12) -> [UInt8] {
        [UInt8(n >> 8), UInt8(n & 0xFF)] + [UInt8](repeating: 0xAB, count: size - 2)
    }

    static func number(_ message: [UInt8]) -> Int { Int(message[0]) << 8 | Int(message[1]) }

    /// A blocking client with a small receive buffer (set before connecting, so the kernel does
    /// not grow it), reads timing out after 10 s.
    static func connect(_ port: UInt16, receiveBuffer: Int32 = 32 << 10) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size = receiveBuffer
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let address = SocketAddress(address: IPAddress("127.0.0.1")!, port: port)
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        try #require(rc == 0, "connect: errno \(errno)")
        return fd
    }

    static func send(_ fd: Int32, _ messages: [[UInt8]]) {
        let bytes = messages.flatMap(framed)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// One framed message, or nil at the end of the stream (or after the timeout).
    static func read(_ fd: Int32) -> [UInt8]? { readFramed(fd) }

    /// Connections whose reading is paused (backpressure or queries in flight).
    static func paused(_ server: TCPMessageServer) -> Int {
        server.queue.sync { server.connections.values.filter { !$0.reading }.count }
    }

    @Test func aClientThatDoesNotReadIsNotReadFromAndLosesNothing() async throws {
        var limits = TCPMessageServer.Limits()
        limits.maxPendingOutput = 128 << 10
        // Every reply is 60,000 bytes; the client asks 1,000 questions and reads nothing.
        let (server, handled) = try Self.server(limits: limits) { message in
            message + [UInt8](repeating: 0x5A, count: 60_000 - message.count)
        }
        defer { server.stop() }
        let fd = try Self.connect(server.address.port)
        defer { close(fd) }
        let total = 1_000
        Self.send(fd, (0..<total).map { Self.message($0) })
        #expect(await eventually { Self.paused(server) == 1 }, "reading stops while replies wait")
        // What it read is bounded by what the kernel's buffers and the output limit hold (about
        // 4 MB of replies at most), not by what the client sent (60 MB of replies).
        let read = handled.count
        #expect(read < total / 4, "read \(read) of \(total) messages while the client read nothing")
        let held = server.queue.sync { server.connections.values.map { $0.output.count - $0.outputOffset }.max() ?? 0 }
        #expect(held <= limits.maxPendingOutput + 60_002, "unsent bytes held: \(held)")
        // Once it reads, every reply comes, in order, and the server reads the rest.
        for n in 0..<total {
            let reply = try #require(Self.read(fd), "reply \(n)")
            #expect(reply.count == 60_000 && Self.number(reply) == n, "reply \(n) is \(Self.number(reply))")
            if reply.count != 60_000 || Self.number(reply) != n { break }
        }
        #expect(handled.count == total)
    }

    @Test func queriesInFlightStopReadingAtTheLimitAndRepliesComeInAnyOrder() async throws {
        var limits = TCPMessageServer.Limits()
        limits.maxPendingQueries = 10
        let (server, handled) = try Self.server(limits: limits) { _ in nil }
        defer { server.stop() }
        let fd = try Self.connect(server.address.port)
        defer { close(fd) }
        let total = 25
        Self.send(fd, (0..<total).map { Self.message($0) })
        var answered: [Int] = []
        while answered.count < total {
            let expected = min(limits.maxPendingQueries, total - answered.count)
            #expect(await eventually { handled.waiting == expected }, "\(handled.waiting) held, \(expected) expected")
            #expect(await eventually { Self.paused(server) == (expected == limits.maxPendingQueries ? 1 : 0) })
            #expect(handled.count == answered.count + expected, "no message read beyond the limit")
            // The last one read is answered first.
            let held = handled.takeDeferred()
            for (message, later) in held.reversed() { later.send([message]) }
            for (message, _) in held.reversed() {
                let reply = try #require(Self.read(fd))
                #expect(reply == message, "reply \(Self.number(reply)) for \(Self.number(message))")
                answered.append(Self.number(reply))
            }
        }
        #expect(answered.sorted() == Array(0..<total))
        #expect(answered != Array(0..<total), "replies came out of order")
    }

    /// A server that stops (the daemon's shutdown after its lame-duck time) accepts no new
    /// connection; an open one gets the replies to what it had sent, then its end of stream.
    @Test func aStoppingServerDrainsOpenConnections() async throws {
        let (server, handled) = try Self.server { _ in nil }
        let fd = try Self.connect(server.address.port)
        defer { close(fd) }
        Self.send(fd, (0..<3).map { Self.message($0) })
        #expect(await eventually { handled.waiting == 3 })
        server.stop()
        let port = server.address.port
        #expect(await eventually {
            let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(probe) }
            let rc = SocketAddress(address: IPAddress("127.0.0.1")!, port: port).withSockaddr { Glibc.connect(probe, $0, $1) }
            return rc != 0 && errno == ECONNREFUSED
        }, "a new connection is refused")
        #expect(server.connectionCount == 1, "the open connection stays while its replies are due")
        for (message, later) in handled.takeDeferred() { later.send([message]) }
        for n in 0..<3 { #expect(try #require(Self.read(fd)) == Self.message(n)) }
        #expect(Self.read(fd) == nil, "then the end of the stream")
        #expect(await eventually { server.connectionCount == 0 })
    }
}
