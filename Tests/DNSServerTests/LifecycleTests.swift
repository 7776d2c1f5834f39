import DNSAuthority
import DNSServer
import DispatchSockets
import Logging
import NetAddress
import Testing

@Suite struct LifecycleTests {
    @Test func serversStoppedWithoutStartingAreReleasedCleanly() async throws {
        let any = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)
        do {
            let udp = try UDPServer(address: any) { _, _, _ in 0 }
            let tcp = try TCPMessageServer(address: any) { _, _, _ in [] }
            let http = try HTTPServer(address: any) { _, _ in .init(status: 200, body: "") }
            udp.stop()
            tcp.stop()
            http.stop()
        }
        // The cancellations run on the servers' queues; give them a moment, then the process lives on.
        try await Task.sleep(for: .milliseconds(50))
    }

    @Test func serversDroppedWithoutStoppingAreReleasedCleanly() async throws {
        let any = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)
        do {
            _ = try UDPServer(address: any) { _, _, _ in 0 }
            _ = try TCPMessageServer(address: any) { _, _, _ in [] }
            _ = try HTTPServer(address: any) { _, _ in .init(status: 200, body: "") }
        }
        try await Task.sleep(for: .milliseconds(50))
    }

    @Test func aBindFailureIsAnErrorNotACrash() async throws {
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine.
        let server = DNSServer(configuration: .init(addresses: [SocketAddress(address: IPAddress("127.0.0.1")!, port: 0),
                                                                SocketAddress(address: IPAddress("192.0.2.1")!, port: 5353)]),
                               responder: Responder(catalog: Catalog()), logger: Logger(label: "test"))
        await #expect(throws: SocketError.self) { try await server.run() }
        try await Task.sleep(for: .milliseconds(50))
    }
}
