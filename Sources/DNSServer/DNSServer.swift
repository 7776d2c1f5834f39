public import DNSAuthority
public import DispatchSockets
public import Logging
public import ServiceLifecycle
import DNSWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The DNS server: UDP and TCP on every configured address, answering with a `Responder`.
/// A swift-service-lifecycle `Service`: `init` binds nothing; `run()` binds, serves until the
/// task is cancelled or a graceful shutdown is requested, then stops accepting and returns.
public final class DNSServer: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var addresses: [SocketAddress]
        /// Sockets per address for UDP (SO_REUSEPORT): one per core by default.
        public var udpSockets: Int
        public var tcpLimits: TCPMessageServer.Limits
        /// What TCP idle timeouts are measured by; tests advance a `ManualClock` and call
        /// `sweepIdleConnections()`.
        public var clock: any MonotonicClock

        public init(addresses: [SocketAddress], udpSockets: Int = Socket.usableCores, tcpLimits: TCPMessageServer.Limits = .init(),
                    clock: any MonotonicClock = SystemClock()) {
            self.addresses = addresses
            self.udpSockets = udpSockets
            self.tcpLimits = tcpLimits
            self.clock = clock
        }
    }

    public let configuration: Configuration
    public let handler: QueryHandler
    let logger: Logger
    let bound = BoundAddresses()
    let serving = Atomic<Bool>(false)
    let tcpServers = Mutex<[TCPMessageServer]>([])

    /// Open TCP connections across every address.
    public var tcpConnections: Int { tcpServers.withLock { $0 }.reduce(0) { $0 + $1.connectionCount } }

    /// Closes the TCP connections idle past the timeout on the clock now, as the timer would at
    /// its next tick.
    public func sweepIdleConnections() { for server in tcpServers.withLock({ $0 }) { server.sweep() } }

    public convenience init(configuration: Configuration, responder: Responder, logger: Logger) {
        self.init(configuration: configuration, handler: QueryHandler(responder: responder), logger: logger)
    }

    public init(configuration: Configuration, handler: QueryHandler, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
    }

    /// True from the moment every address is bound and answering until shutdown stops it.
    public var isServing: Bool { serving.load(ordering: .acquiring) }

    /// The addresses actually bound (port 0 resolved), once `run()` has bound them.
    public var boundAddresses: [SocketAddress] { get async { await bound.wait() } }

    public func run() async throws {
        var udp: [UDPServer] = []
        var tcp: [TCPMessageServer] = []
        let handler = self.handler
        do {
            for address in configuration.addresses {
                // With port 0 the kernel picks UDP's port; TCP may find it taken (by any TCP
                // socket: a test holding thousands of client connections takes a third of the
                // ephemeral ports), so up to 100 pairs are tried before giving up.
                var attempt = 0
                while true {
                    attempt += 1
                    // Queries are timed from their batch's receipt: one clock read a batch.
                    let clock = handler.observer.map { observer in { @Sendable in observer.now() } }
                    let udpServer = try UDPServer(address: address, sockets: configuration.udpSockets, clock: clock) { query, reply, origin in
                        handler.udp(query, reply, origin)
                    }
                    udp.append(udpServer)
                    do {
                        // TCP on the same port as UDP.
                        let tcpServer = try TCPMessageServer(address: udpServer.address, limits: configuration.tcpLimits,
                                                             clock: configuration.clock) { message, peer, later in
                            handler.tcp(message, peer: peer, later: later)
                        }
                        tcp.append(tcpServer)
                        break
                    } catch where address.port == 0 && error.errno == EADDRINUSE && attempt < 100 {
                        udp.removeLast().stop()
                    }
                }
            }
        } catch {
            for server in udp { server.stop() }
            for server in tcp { server.stop() }
            logger.error("cannot bind the DNS addresses", metadata: ["error": "\(error)"])
            await bound.fail()
            throw error
        }
        for server in udp { server.start() }
        for server in tcp { server.start() }
        tcpServers.withLock { $0 = tcp }
        serving.store(true, ordering: .releasing)
        let addresses = udp.map(\.address)
        logger.info("serving DNS", metadata: ["addresses": "\(addresses.map(\.description).joined(separator: " "))"])
        await bound.set(addresses)
        // Serve until shutdown is requested or the task is cancelled.
        try? await gracefulShutdown()
        serving.store(false, ordering: .releasing)
        for server in udp { server.stop() }
        for server in tcp { server.stop() }
        tcpServers.withLock { $0 = [] }
        handler.resolver?.stop()
        logger.info("DNS server stopped")
    }
}

/// Hands the bound addresses to whoever waits for them.
actor BoundAddresses {
    var addresses: [SocketAddress]? = nil
    var waiters: [CheckedContinuation<[SocketAddress], Never>] = []

    func set(_ value: [SocketAddress]) {
        addresses = value
        for waiter in waiters { waiter.resume(returning: value) }
        waiters.removeAll()
    }

    func fail() { set([]) }

    func wait() async -> [SocketAddress] {
        if let addresses { return addresses }
        return await withCheckedContinuation { waiters.append($0) }
    }
}
