#if canImport(Glibc)
import Glibc
#endif
import DNSAuthority
import DNSServer
import DispatchSockets
import Logging
import NetAddress
import Testing
import TestSupport

@Suite struct LifecycleTests {
    /// Waits until no socket holds `address` any more: the server's descriptors were closed
    /// (by the cancel handlers, on the servers' queues).
    func released(_ address: SocketAddress, type: Int32) async -> Bool {
        await eventually { (try? Socket.claim(address, type: type)) != nil }
    }

    @Test func serversStoppedWithoutStartingAreReleasedCleanly() async throws {
        let any = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)
        let udp = try UDPServer(address: any) { _, _, _ in 0 }
        let tcp = try TCPMessageServer(address: any) { _, _, _ in [] }
        let http = try HTTPServer(address: any) { _, _ in .init(status: 200, body: "") }
        let addresses = (udp.address, tcp.address, http.address)
        #expect(addresses.0.port != 0 && addresses.1.port != 0 && addresses.2.port != 0)
        #expect(throws: SocketError.self, "held while the server exists") { try Socket.claim(addresses.0, type: Int32(SOCK_DGRAM.rawValue)) }
        udp.stop()
        tcp.stop()
        http.stop()
        #expect(await released(addresses.0, type: Int32(SOCK_DGRAM.rawValue)))
        #expect(await released(addresses.1, type: Int32(SOCK_STREAM.rawValue)))
        #expect(await released(addresses.2, type: Int32(SOCK_STREAM.rawValue)))
    }

    @Test func serversDroppedWithoutStoppingAreReleasedCleanly() async throws {
        let any = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)
        var addresses: [(SocketAddress, Int32)] = []
        do {
            addresses.append((try UDPServer(address: any) { _, _, _ in 0 }.address, Int32(SOCK_DGRAM.rawValue)))
            addresses.append((try TCPMessageServer(address: any) { _, _, _ in [] }.address, Int32(SOCK_STREAM.rawValue)))
            addresses.append((try HTTPServer(address: any) { _, _ in .init(status: 200, body: "") }.address, Int32(SOCK_STREAM.rawValue)))
        }
        // Dropped: their sources are cancelled (libdispatch traps on a suspended one released)
        // and their descriptors closed; the process lives on.
        for (address, type) in addresses { #expect(await released(address, type: type), "\(address)") }
    }

    /// A started UDP server's threads are woken from their receive by `stop()` and close the
    /// sockets; stopped again when dropped, it does not touch the descriptor numbers it had,
    /// which the kernel gives to the next socket (here another server's, which answers on).
    /// Five rounds: the next socket takes a freed number unless another test's took it first.
    @Test func aStartedUDPServerStopsAndLetsGoOfItsOwnDescriptorsOnly() async throws {
        let any = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)
        let echo: UDPServer.Handler = { query, reply, _ in
            reply.copyMemory(from: query)
            return query.count
        }
        for _ in 0..<5 {
            var first: UDPServer? = try UDPServer(address: any, sockets: 2, handler: echo)
            let address = try #require(first).address
            first?.start()
            #expect(Client.udp([1, 2, 3], port: address.port, timeout: 2000) == [1, 2, 3])
            first?.stop()
            #expect(await released(address, type: Int32(SOCK_DGRAM.rawValue)))
            let second = try UDPServer(address: any, sockets: 2, handler: echo)
            second.start()
            defer { second.stop() }
            first = nil
            // A datagram socket shut down for reading polls readable with nothing in it.
            let descriptors = Self.udpDescriptors(port: second.address.port)
            #expect(descriptors.count == 2)
            for fd in descriptors {
                var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                #expect(poll(&entry, 1, 0) == 0, "descriptor \(fd) of the second server is still open for reading")
            }
            for byte: UInt8 in 1...10 {
                #expect(Client.udp([byte], port: second.address.port, timeout: 2000) == [byte], "answer \(byte)")
            }
        }
    }

    /// This process's UDP sockets bound to `port`.
    static func udpDescriptors(port: UInt16) -> [Int32] {
        (0..<Int32(4096)).filter { fd in
            var type: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_DGRAM.rawValue) else { return false }
            return Socket.localAddress(of: fd)?.port == port
        }
    }

    @Test func aBindFailureIsAnErrorNotACrash() async throws {
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
        let server = DNSServer(configuration: .init(addresses: [SocketAddress(address: IPAddress("127.0.0.1")!, port: 0),
                                                                SocketAddress(address: IPAddress("192.0.2.1")!, port: 5353)]),
                               responder: Responder(catalog: Catalog()), logger: Logger(label: "test"))
        await #expect(throws: SocketError.self) { try await server.run() }
        #expect(!server.isServing)
    }
}

/// A fixed address another socket holds is refused, even when that socket shares it with
/// SO_REUSEPORT (a second daemon would otherwise silently take part of the traffic).
@Suite(.serialized) struct ExclusiveAddressTests {
    func address(_ port: UInt16) -> SocketAddress { SocketAddress(address: IPAddress("127.0.0.1")!, port: port) }

    /// A socket of someone else's with SO_REUSEPORT set, on `wanted` or a port the kernel
    /// chose: the socket and its port.
    func foreign(_ type: Int32, port wanted: UInt16 = 0) -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, type, 0)
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, socklen_t(MemoryLayout<Int32>.size))
        var sin = Client.address(port: wanted)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 ? getsockname(fd, $0, &length) : -1 }
        }
        #expect(rc == 0)
        if type == Int32(SOCK_STREAM.rawValue) { listen(fd, 16) }
        return (fd, UInt16(bigEndian: sin.sin_port))
    }

    func refused(_ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected the address to be refused")
        } catch let error as SocketError {
            #expect(error.errno == EADDRINUSE, "\(error)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func aSharedUDPPortIsRefused() {
        let (other, port) = foreign(Int32(SOCK_DGRAM.rawValue))
        defer { close(other) }
        refused { _ = try UDPServer(address: address(port)) { _, _, _ in 0 } }
    }

    @Test func aSharedTCPPortIsRefused() {
        let (other, port) = foreign(Int32(SOCK_STREAM.rawValue))
        defer { close(other) }
        refused { _ = try TCPMessageServer(address: address(port)) { _, _, _ in [] } }
    }

    @Test func aSecondServerOnTheSameAddressIsRefused() throws {
        // UDP on a port of the kernel's choice, TCP on the same: another TCP socket may hold
        // it (a test beside this one holds thousands of ephemeral ports), so try again, as
        // DNSServer does.
        let (udp, tcp) = try #require(try Self.serversOnOnePort())
        let port = udp.address.port
        defer { udp.stop(); tcp.stop() }
        refused { _ = try UDPServer(address: address(port)) { _, _, _ in 0 } }
        refused { _ = try TCPMessageServer(address: address(port)) { _, _, _ in [] } }
    }

    /// A UDP and a TCP server on one port of the kernel's choice; nil after 100 tries.
    static func serversOnOnePort() throws -> (UDPServer, TCPMessageServer)? {
        let any = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)
        for _ in 0..<100 {
            let udp = try UDPServer(address: any) { _, _, _ in 0 }
            let port = SocketAddress(address: any.address, port: udp.address.port)
            if let tcp = try? TCPMessageServer(address: port, handler: { _, _, _ in [] }) { return (udp, tcp) }
            udp.stop()
        }
        return nil
    }

    /// Connections the old server closed first linger in TIME_WAIT on its port; a new server
    /// binds all the same.
    @Test func timeWaitDoesNotHoldTheAddress() async throws {
        // A port below the ephemeral range: once the listener is closed, a port of that range
        // could become another test's client's before the new server binds it.
        let port = freePort()
        let listener = foreign(Int32(SOCK_STREAM.rawValue), port: port).fd
        do {
            let client = Client.tcpConnect(port: port)
            let accepted = accept(listener, nil, nil)
            #expect(accepted >= 0)
            close(accepted)  // the server side closes first: TIME_WAIT on our port
            close(client)
            close(listener)
        }
        // The closes cross loopback through the kernel's queues: under load the server's side
        // sits in FIN_WAIT2 for a moment, which (unlike TIME_WAIT) does hold the address. (With
        // many connections closed at once the kernel may keep no TIME_WAIT entry at all.)
        #expect(await eventually(within: 10) { Self.tcpStates(port: port).allSatisfy { $0 == "06" } },
                "\(Self.tcpStates(port: port))")
        let tcp = try TCPMessageServer(address: address(port)) { _, _, _ in [] }
        tcp.stop()
    }

    /// The states (hex, as /proc/net/tcp writes them: 06 is TIME_WAIT) of the IPv4 TCP sockets
    /// whose local port is `port`.
    static func tcpStates(port: UInt16) -> [String] {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return ["/proc/net/tcp unreadable"] }
        let hex = String(port, radix: 16, uppercase: true)
        let suffix = ":" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        return table.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && fields[1].hasSuffix(suffix) ? String(fields[3]) : nil
        }
    }
}
