#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch
public import DispatchSockets
public import Logging
public import NetAddress
public import ServiceLifecycle
public import ServiceRegistry
import Synchronization

/// The endpoint forwarder: what kube-proxy did in userspace. For every service port it listens
/// on the ClusterIP (and node ports on the node addresses, load-balancer and external IPs) and
/// relays TCP and UDP to a ready endpoint, following the registry live: a new service opens its
/// listeners, a deleted one closes them. An endpoint that stops being eligible (not ready,
/// terminating while a ready one remains, gone) gets no new connection; its UDP flows end so
/// that their next datagram goes elsewhere, and its TCP connections finish unless
/// `closeOnRemoval` says to reset them.
/// A swift-service-lifecycle `Service`.
public final class EndpointForwarder: ServiceLifecycle.Service, @unchecked Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// The service addresses are already local (a service CIDR inside 127.0.0.0/8, or
        /// addresses an operator assigned).
        case bind
        /// The forwarder assigns each ClusterIP to a dummy interface (needs CAP_NET_ADMIN).
        case interface
    }

    public struct Configuration: Sendable {
        public var mode: Mode = .bind
        /// The interface of the `interface` mode (created as a dummy interface when missing).
        public var interfaceName: String = "clusterdns0"
        /// This node's name (for `trafficPolicy: Local`).
        public var nodeName: String = ""
        /// Where node ports listen.
        public var nodeAddresses: [IPAddress] = []
        public var tcpIdleTimeout: Duration = .seconds(900)
        public var udpIdleTimeout: Duration = .seconds(30)
        public var maxUDPFlows: Int = 10_000
        /// Reset the TCP connections of an endpoint that stops being eligible (kube-proxy lets
        /// them finish; so does the default).
        public var closeOnRemoval = false
        /// Event-loop threads for TCP (one per usable core by default).
        public var relayQueues: Int = Socket.usableCores
        /// What idle timeouts, connect timeouts and the passive-health penalty are measured by;
        /// tests advance a `ManualClock` and call `sweep()`.
        public var clock: any MonotonicClock = SystemClock()
        public init() {}
    }

    /// One open frontend.
    final class Open: @unchecked Sendable {
        let frontend: Frontend
        let slot: ChooserSlot
        let stats: FrontendStats
        var acceptors: [TCPAcceptor] = []
        var udp: UDPFrontendServer?

        init(frontend: Frontend, chooser: BackendChooser, stats: FrontendStats) {
            self.frontend = frontend
            slot = ChooserSlot(chooser)
            self.stats = stats
        }

        func close() {
            for acceptor in acceptors { acceptor.close() }
            udp?.stop()
        }
    }

    public let configuration: Configuration
    let registry: Registry
    let logger: Logger
    let health: EndpointHealth
    let loops: [EventLoop]
    let state = Mutex<State>(State())

    struct State {
        var open: [Frontend: Open] = [:]
        /// Frontends that could not be opened, with the reason (port conflicts and the like).
        var failed: [Frontend: String] = [:]
        var resourceVersion: UInt64 = 0
        var reconciled = false
    }

    public init(configuration: Configuration = Configuration(), registry: Registry, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        health = EndpointHealth(clock: configuration.clock)
        loops = (0..<max(1, configuration.relayQueues)).map { EventLoop(label: "relay #\($0)", clock: configuration.clock) }
    }

    /// Open frontends, and those that failed to open with their reason.
    public var frontends: [Frontend] { state.withLock { Array($0.open.keys) } }
    public var failedFrontends: [Frontend: String] { state.withLock { $0.failed } }
    /// True once the registry's current state has been applied (every listener open or failed).
    public var isReady: Bool { state.withLock { $0.reconciled } }
    /// The registry version last applied.
    public var resourceVersion: UInt64 { state.withLock { $0.resourceVersion } }

    public func stats(for frontend: Frontend) -> FrontendStats? { state.withLock { $0.open[frontend]?.stats } }

    /// Every open frontend with its service, port name and counters (for metrics).
    public var allStats: [(frontend: Frontend, service: ObjectKey, port: String, stats: FrontendStats)] {
        state.withLock { state in
            state.open.values.map { open in
                let plan = open.slot.chooser.plan
                return (open.frontend, plan.service, plan.portName, open.stats)
            }
        }
    }

    /// Endpoints currently skipped for refusing or timing out (passive health).
    public var failingEndpoints: [SocketAddress] { health.failing }

    /// In the `interface` mode, the interface the service addresses go on.
    let interface = Mutex<InterfaceAddresses?>(nil)

    public func run() async throws {
        if configuration.mode == .interface {
            do {
                let addresses = try InterfaceAddresses(name: configuration.interfaceName)
                interface.withLock { $0 = addresses }
                logger.info("forwarder interface ready", metadata: ["interface": "\(configuration.interfaceName)",
                                                                    "created": "\(addresses.created)"])
            } catch {
                logger.error("cannot prepare the forwarder's interface", metadata: ["error": "\(error)"])
                throw error
            }
        }
        for loop in loops where !loop.isStarted { loop.start() }
        try? await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                let (snapshot, events) = registry.watchWithSnapshot()
                reconcile(snapshot)
                do {
                    for try await _ in events {
                        reconcile(registry.snapshot())
                    }
                    return
                } catch is WatchExpired {
                    logger.warning("forwarder fell behind the registry; resynchronising")
                }
            }
        }
        let open = state.withLock { state in
            let open = Array(state.open.values)
            state.open = [:]
            return open
        }
        for frontend in open { frontend.close() }
        for loop in loops { loop.stop() }
        interface.withLock { $0 }?.removeAll()
    }

    /// The addresses the interface mode must hold: every frontend's, except node addresses
    /// (already local).
    func ownedAddresses(_ plan: ForwardingPlan) -> Set<IPAddress> {
        let node = Set(plan.nodeAddresses)
        return Set(plan.frontends.keys.map(\.address.address)).subtracting(node)
    }

    /// Brings the open frontends in line with `snapshot`.
    public func reconcile(_ snapshot: RegistrySnapshot) {
        let plan = ForwardingPlan(snapshot: snapshot, nodeAddresses: configuration.nodeAddresses, nodeName: configuration.nodeName)
        var toClose: [Open] = []
        var toOpen: [(Frontend, FrontendPlan)] = []
        var departed: [(Open, Set<SocketAddress>)] = []
        state.withLock { state in
            for (frontend, open) in state.open where plan.frontends[frontend] == nil {
                toClose.append(open)
                state.open.removeValue(forKey: frontend)
            }
            for frontend in state.failed.keys where plan.frontends[frontend] == nil { state.failed.removeValue(forKey: frontend) }
            for (frontend, frontendPlan) in plan.frontends {
                if let open = state.open[frontend] {
                    open.slot.current.withLock { chooser in
                        guard chooser.plan != frontendPlan else { return }
                        let before = Set(chooser.backends.map(\.address))
                        chooser = chooser.updated(plan: frontendPlan, node: configuration.nodeName)
                        let left = before.subtracting(chooser.backends.map(\.address))
                        if !left.isEmpty { departed.append((open, left)) }
                    }
                } else {
                    toOpen.append((frontend, frontendPlan))
                }
            }
        }
        for (open, left) in departed {
            open.udp?.endFlows(to: left)
            if configuration.closeOnRemoval { for acceptor in open.acceptors { acceptor.closeRelays(to: left) } }
        }
        for open in toClose {
            open.close()
            logger.info("frontend closed", metadata: ["frontend": "\(open.frontend)"])
        }
        // The interface mode: service addresses on the interface before binding them.
        var addressFailures: [IPAddress: String] = [:]
        if let interface = interface.withLock({ $0 }) {
            let wanted = ownedAddresses(plan)
            for address in wanted.subtracting(interface.addresses) {
                do { try interface.add(address) } catch {
                    addressFailures[address] = "\(error)"
                    logger.error("cannot assign a service address", metadata: ["address": "\(address)", "error": "\(error)"])
                }
            }
            for address in interface.addresses.subtracting(wanted) { interface.remove(address) }
        }
        var opened: [Frontend: Open] = [:]
        var failed: [Frontend: String] = [:]
        for (frontend, frontendPlan) in toOpen {
            if let reason = addressFailures[frontend.address.address] {
                failed[frontend] = reason
                continue
            }
            let chooser = BackendChooser(plan: frontendPlan, node: configuration.nodeName, health: health)
            let open = Open(frontend: frontend, chooser: chooser, stats: FrontendStats())
            do {
                try start(open)
                opened[frontend] = open
            } catch {
                failed[frontend] = "\(error)"
                logger.error("cannot open frontend", metadata: ["frontend": "\(frontend)", "service": "\(frontendPlan.service)",
                                                                "error": "\(error)"])
            }
        }
        state.withLock { state in
            for (frontend, open) in opened {
                state.open[frontend] = open
                state.failed.removeValue(forKey: frontend)
            }
            for (frontend, reason) in failed { state.failed[frontend] = reason }
            state.resourceVersion = snapshot.resourceVersion
            state.reconciled = true
        }
    }

    func start(_ open: Open) throws {
        switch open.frontend.protocol {
        case .tcp:
            // One listening socket per event loop (SO_REUSEPORT: the kernel spreads the
            // connections); the claim fails if anyone else holds the address.
            var sockets: [Int32] = []
            try Socket.claim(open.frontend.address, type: Int32(SOCK_STREAM.rawValue))
            do {
                for _ in loops {
                    sockets.append(try Socket.bind(open.frontend.address, type: Int32(SOCK_STREAM.rawValue), reusePort: loops.count > 1))
                }
            } catch {
                for fd in sockets { Glibc.close(fd) }
                throw error
            }
            open.acceptors = zip(sockets, loops).map { fd, loop in
                TCPAcceptor(fd: fd, loop: loop, slot: open.slot, stats: open.stats, idleTimeout: configuration.tcpIdleTimeout)
            }
            for acceptor in open.acceptors { acceptor.start() }
        case .udp:
            let server = try UDPFrontendServer(frontend: open.frontend, slot: open.slot, stats: open.stats,
                                               idleTimeout: configuration.udpIdleTimeout, maxFlows: configuration.maxUDPFlows,
                                               clock: configuration.clock)
            open.udp = server
            server.start()
        case .sctp:
            throw ForwarderError.unsupportedProtocol
        }
    }

    /// Live UDP flows of a frontend.
    public func udpFlows(for frontend: Frontend) -> Int {
        state.withLock { $0.open[frontend]?.udp }?.flowCount ?? 0
    }

    /// Acts on the clock's time now (idle TCP connections and UDP flows closed, connect
    /// timeouts tried on the next endpoint), as the timers would at their next tick; returns
    /// once done. For tests that advance a `ManualClock`.
    public func sweep() async {
        for loop in loops {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in loop.sweep { done.resume() } }
        }
        let udp = state.withLock { $0.open.values.compactMap(\.udp) }
        for server in udp {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                server.queue.async {
                    server.sweep()
                    done.resume()
                }
            }
        }
    }
}

public enum ForwarderError: Error, CustomStringConvertible {
    case unsupportedProtocol

    public var description: String {
        switch self {
        case .unsupportedProtocol: "SCTP is not forwarded"
        }
    }
}
