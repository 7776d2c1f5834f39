#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch
import DispatchSockets
import NetAddress

/// A UDP frontend: one socket bound to the service address; a flow per client address and
/// port, each with its own socket `connect`ed to the endpoint chosen when the flow began;
/// replies go back to the client from the service address. A flow idle for `idleTimeout` is
/// closed; beyond `maxFlows` new clients' datagrams are dropped. An endpoint that answers with
/// ICMP unreachable is marked failing and its flow closed (the next datagram picks another),
/// and so is a flow whose endpoint stops being eligible (not ready, or gone): the client's next
/// datagram is answered by an eligible endpoint, where conntrack would have kept sending it to
/// the dead one.
final class UDPFrontendServer: @unchecked Sendable {
    final class Flow {
        let client: SocketAddress
        let fd: Int32
        let source: any DispatchSourceRead
        let backend: Backend
        var lastActivity: UInt64
        var closed = false

        init(client: SocketAddress, fd: Int32, backend: Backend, queue: DispatchQueue, now: UInt64) {
            lastActivity = now
            self.client = client
            self.fd = fd
            self.backend = backend
            source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        }

        func close() {
            guard !closed else { return }
            closed = true
            source.cancel()
        }
    }

    let frontend: Frontend
    let fd: Int32
    let queue: DispatchQueue
    let source: any DispatchSourceRead
    let sweeper: any DispatchSourceTimer
    let stats: FrontendStats
    let idleNanoseconds: UInt64
    let maxFlows: Int
    let slot: ChooserSlot
    /// What the idle timeout is measured by.
    let clock: any MonotonicClock
    // On `queue`.
    var flows: [SocketAddress: Flow] = [:]
    var stopped = false
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    init(frontend: Frontend, slot: ChooserSlot, stats: FrontendStats, idleTimeout: Duration, maxFlows: Int,
         clock: any MonotonicClock) throws(SocketError) {
        self.clock = clock
        self.frontend = frontend
        fd = try Socket.bind(frontend.address, type: Int32(SOCK_DGRAM.rawValue), reusePort: false)
        queue = DispatchQueue(label: "udp frontend \(frontend)")
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        sweeper = DispatchSource.makeTimerSource(queue: queue)
        self.stats = stats
        idleNanoseconds = idleTimeout.wholeNanoseconds
        self.maxFlows = maxFlows
        self.slot = slot
    }

    deinit { buffer.deallocate() }

    var flowCount: Int { queue.sync { flows.count } }

    func start() {
        source.setEventHandler { [self] in receive() }
        source.setCancelHandler { [fd] in close(fd) }
        let interval = max(min(idleNanoseconds / 4, 1_000_000_000), 10_000_000)
        sweeper.schedule(deadline: .now() + .nanoseconds(Int(interval)), repeating: .nanoseconds(Int(interval)))
        sweeper.setEventHandler { [self] in sweep() }
        source.resume()
        sweeper.resume()
    }

    func stop() {
        queue.async { [self] in
            guard !stopped else { return }
            stopped = true
            source.cancel()
            sweeper.cancel()
            for flow in flows.values { flow.close() }
            flows = [:]
        }
    }

    /// Datagrams from clients, each sent on through its flow.
    func receive() {
        while !stopped {
            var sender: SocketAddress? = nil
            guard case .done(let n) = Socket.receive(fd, into: buffer, from: &sender) else { return }
            guard let client = sender else { continue }
            stats.bytesIn.add(n, ordering: .relaxed)
            guard var flow = flows[client] ?? newFlow(for: client) else { continue }
            flow.lastActivity = clock.now()
            let datagram = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            // An ICMP unreachable that came back for an earlier datagram is reported by this
            // send: the flow ends and the datagram goes through a new flow to another endpoint.
            if case .failed(let error) = Socket.send(flow.fd, datagram), Self.isUnreachable(error) {
                endpointUnreachable(flow)
                guard let next = newFlow(for: client) else { continue }
                flow = next
                _ = Socket.send(flow.fd, datagram)
            }
        }
    }

    static func isUnreachable(_ error: Int32) -> Bool {
        error == ECONNREFUSED || error == EHOSTUNREACH || error == ENETUNREACH
    }

    /// The flow's endpoint answered ICMP unreachable: it is marked failing (new flows choose
    /// others for its penalty) and the flow ends.
    func endpointUnreachable(_ flow: Flow) {
        slot.chooser.health.markFailed(flow.backend.address)
        remove(flow)
    }

    func newFlow(for client: SocketAddress) -> Flow? {
        guard flows.count < maxFlows else {
            stats.failed.add(1, ordering: .relaxed)
            return nil
        }
        let chooser = slot.chooser
        for backend in chooser.order(for: client.address) {
            let fd = socket(backend.address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            guard Socket.connect(fd, to: backend.address) == .done(0) else {
                close(fd)
                chooser.health.markFailed(backend.address)
                continue
            }
            chooser.chose(backend, for: client.address)
            let flow = Flow(client: client, fd: fd, backend: backend, queue: queue, now: clock.now())
            flow.source.setEventHandler { [unowned self, unowned flow] in reply(flow) }
            flow.source.setCancelHandler { close(fd) }
            flow.source.resume()
            flows[client] = flow
            stats.total.add(1, ordering: .relaxed)
            stats.active.add(1, ordering: .relaxed)
            return flow
        }
        stats.failed.add(1, ordering: .relaxed)
        return nil
    }

    /// Ends the flows to any of `addresses` (endpoints no longer eligible).
    func endFlows(to addresses: Set<SocketAddress>) {
        queue.async { [self] in
            for flow in Array(flows.values) where addresses.contains(flow.backend.address) {
                remove(flow)
                stats.moved.add(1, ordering: .relaxed)
            }
        }
    }

    /// The endpoint's replies, sent to the client from the service address.
    func reply(_ flow: Flow) {
        while !flow.closed {
            let n: Int
            switch Socket.receive(flow.fd, into: buffer) {
            case .done(let count):
                n = count
            case .wouldBlock:
                return
            case .failed(let error):
                if Self.isUnreachable(error) { endpointUnreachable(flow) }
                return
            }
            flow.lastActivity = clock.now()
            stats.bytesOut.add(n, ordering: .relaxed)
            _ = Socket.send(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), to: flow.client)
        }
    }

    func remove(_ flow: Flow) {
        flow.close()
        if flows[flow.client] === flow {
            flows.removeValue(forKey: flow.client)
            stats.active.subtract(1, ordering: .relaxed)
        }
    }

    /// Closes the flows idle for `idleTimeout` on the clock: the timer runs it every quarter of
    /// that (at most every second); tests after advancing a `ManualClock`.
    func sweep() {
        let now = clock.now()
        for flow in flows.values where now - flow.lastActivity >= idleNanoseconds { remove(flow) }
    }
}
