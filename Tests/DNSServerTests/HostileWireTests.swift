import DNSWire
import DispatchSockets
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Minimal blocking clients with timeouts, for poking the server with bad input.
enum Client {
    static func address(port: UInt16) -> sockaddr_in {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        return sin
    }

    /// A UDP socket bound to a port of the kernel's choice on 127.0.0.1, reads timing out after
    /// 100 ms (so a fake upstream's thread sees its cancellation): the socket and its port.
    static func boundUDP() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var sin = address(port: 0)
        _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        setTimeout(fd, milliseconds: 100)
        return (fd, UInt16(bigEndian: sin.sin_port))
    }

    static func setTimeout(_ fd: Int32, milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: Int((milliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends one datagram (from `source`, a loopback address, when given); returns the reply,
    /// or nil when none came within the timeout.
    static func udp(_ bytes: [UInt8], port: UInt16, timeout: Int = 300, from source: String? = nil) -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        setTimeout(fd, milliseconds: timeout)
        if let source { bindSource(fd, source) }
        var sin = address(port: port)
        _ = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var buffer = [UInt8](repeating: 0, count: 65535)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? Array(buffer[0..<n]) : nil
    }

    static func bindSource(_ fd: Int32, _ source: String) {
        var local = address(port: 0)
        local.sin_addr.s_addr = inet_addr(source)
        let rc = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(rc == 0, "bind to \(source) failed")
    }

    static func tcpConnect(port: UInt16, from source: String? = nil) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source { bindSource(fd, source) }
        var sin = address(port: port)
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); return -1 }
        setTimeout(fd, milliseconds: 2000)
        return fd
    }

    /// Reads one length-prefixed message; nil on timeout or close.
    static func tcpRead(_ fd: Int32) -> [UInt8]? { readFramed(fd) }

    static func framed(_ message: [UInt8]) -> [UInt8] { TestSupport.framed(message) }
}

func query(_ name: String, id: UInt16 = 7) -> [UInt8] {
    Message(header: Header(id: id, isRecursionDesired: true), questions: [Question(name: try! DomainName(name), type: .a)]).encoded()
}

@Suite(.serialized) struct HostileWireTests {
    @Test func randomAndTruncatedDatagrams() async throws {
        let server = try await RunningServer()
        var rng = SystemRandomNumberGenerator()
        let good = query("kubernetes.default.svc.cluster.local.")
        for i in 0..<2000 {
            var bytes: [UInt8]
            switch i % 3 {
            case 0: bytes = (0..<Int.random(in: 0..<300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1: bytes = Array(good.prefix(Int.random(in: 0..<good.count, using: &rng)))
            default:
                bytes = good
                bytes[Int.random(in: 12..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            // Fire and forget: the server must neither crash nor stall.
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var sin = Client.address(port: server.port)
            _ = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
        }
        let reply = try #require(Client.udp(good, port: server.port, timeout: 2000))
        #expect(try Message(decoding: reply).answers.count == 1)
    }

    @Test func garbageHeaderGetsNoReplyAndBadBodyGetsFORMERR() async throws {
        let server = try await RunningServer()
        #expect(Client.udp([0x12, 0x34, 0x01], port: server.port) == nil)
        let badBody: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x20, 0, 1, 0, 1]
        let reply = try #require(Client.udp(badBody, port: server.port))
        #expect(try Message(decoding: reply).rcode == .formatError)
    }

    @Test func oversizedAndSlowTCP() async throws {
        let server = try await RunningServer()
        // A length prefix promising 65535 bytes, then a few, then a close: nothing breaks.
        let liar = Client.tcpConnect(port: server.port)
        #expect(liar >= 0)
        let promise: [UInt8] = [0xFF, 0xFF, 1, 2, 3]
        _ = send(liar, promise, promise.count, Int32(MSG_NOSIGNAL))
        close(liar)
        // A client that sends its query one byte at a time still gets its answer.
        let slow = Client.tcpConnect(port: server.port)
        defer { close(slow) }
        for byte in Client.framed(query("web.default.svc.cluster.local.")) {
            _ = send(slow, [byte], 1, Int32(MSG_NOSIGNAL))
            try await Task.sleep(for: .milliseconds(2))
        }
        let answer = try #require(Client.tcpRead(slow))
        #expect(try Message(decoding: answer).answers.first?.description == "web.default.svc.cluster.local. 5 IN A 10.96.0.10")
    }

    /// RFC 7766 §6.2.3: a connection without traffic for the idle timeout (10 s) is closed by
    /// the server, not a moment before; a query or a reply written counts as traffic.
    @Test func idleConnectionsAreClosedAtTheTimeout() async throws {
        let server = try await RunningServer()
        let fd = Client.tcpConnect(port: server.port)
        #expect(fd >= 0)
        defer { close(fd) }
        func exchange() -> Bool {
            let message = Client.framed(query("kubernetes.default.svc.cluster.local."))
            return send(fd, message, message.count, Int32(MSG_NOSIGNAL)) == message.count && Client.tcpRead(fd) != nil
        }
        #expect(exchange())
        server.clock.advance(by: .milliseconds(9_999))
        server.server.sweepIdleConnections()
        #expect(server.server.tcpConnections == 1)
        #expect(exchange())
        server.clock.advance(by: .milliseconds(9_999))
        server.server.sweepIdleConnections()
        #expect(server.server.tcpConnections == 1, "the last query restarted the timeout")
        server.clock.advance(by: .milliseconds(1))
        server.server.sweepIdleConnections()
        #expect(server.server.tcpConnections == 0)
        var byte: UInt8 = 0
        #expect(recv(fd, &byte, 1, 0) == 0, "closed by the server")
    }

    @Test func tenThousandIdleConnectionsDoNotStopService() async throws {
        try await Exclusive.descriptors.run { try await tenThousandIdleConnections() }
    }

    func tenThousandIdleConnections() async throws {
        // This process holds the clients' ends (Exclusive.descriptors raised its limit).
        let wanted = min(10_000, descriptorLimit - 2_000)
        #expect(wanted >= 1_500, "the descriptor limit (\(descriptorLimit)) is too low for this test")
        let server = try await RunningServer()
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<wanted {
            let fd = Client.tcpConnect(port: server.port)
            if fd >= 0 { idle.append(fd) }
        }
        #expect(idle.count == wanted, "the kernel accepted them all (the server closes those beyond its cap of 1024)")
        // The server holds its cap and no more: it accepts and closes the rest at once.
        let cap = TCPMessageServer.Limits().maxConnections
        #expect(await eventually { server.server.tcpConnections == cap }, "connections held: \(server.server.tcpConnections)")
        var buffer = [UInt8](repeating: 0, count: 1)
        #expect(recv(idle[idle.count - 1], &buffer, 1, 0) == 0, "one beyond the cap is closed by the server")
        // UDP still answers, and so does a new TCP connection once idle ones are released.
        #expect(Client.udp(query("kubernetes.default.svc.cluster.local."), port: server.port, timeout: 2000) != nil)
        for fd in idle { close(fd) }
        idle.removeAll()
        #expect(await eventually { server.server.tcpConnections == 0 })
        let fresh = Client.tcpConnect(port: server.port)
        defer { close(fresh) }
        let message = Client.framed(query("kubernetes.default.svc.cluster.local."))
        _ = send(fresh, message, message.count, Int32(MSG_NOSIGNAL))
        #expect(Client.tcpRead(fresh) != nil)
    }
}
