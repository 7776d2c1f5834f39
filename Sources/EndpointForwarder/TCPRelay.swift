#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch
import DispatchSockets
import NetAddress
import Synchronization

/// Counters of one frontend (read by metrics).
public final class FrontendStats: Sendable {
    let active = Atomic<Int>(0)
    let total = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let bytesIn = Atomic<Int>(0)
    let bytesOut = Atomic<Int>(0)
    let moved = Atomic<Int>(0)
    let cut = Atomic<Int>(0)
    public init() {}

    /// UDP flows ended because their endpoint stopped being eligible (their next datagram
    /// goes to an eligible one).
    public var movedFlowCount: Int { moved.load(ordering: .relaxed) }
    /// TCP connections closed because their endpoint stopped being eligible (with
    /// `closeOnRemoval`).
    public var closedOnRemovalCount: Int { cut.load(ordering: .relaxed) }

    /// Connections (TCP) or flows (UDP) open now.
    public var activeCount: Int { active.load(ordering: .relaxed) }
    public var totalCount: Int { total.load(ordering: .relaxed) }
    /// Connections reset or datagrams dropped for want of an endpoint.
    public var failedCount: Int { failed.load(ordering: .relaxed) }
    /// Bytes from clients to endpoints, and back.
    public var bytesFromClients: Int { bytesIn.load(ordering: .relaxed) }
    public var bytesToClients: Int { bytesOut.load(ordering: .relaxed) }
}

let relayEvents = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue

/// The connect timeouts, growing as kube-proxy's userspace mode did.
let connectTimeouts: [Int] = [250, 500, 1000, 2000]

/// A listening socket of one TCP frontend on one event loop (each loop has its own socket on
/// the address, SO_REUSEPORT, so the kernel spreads connections and nothing is handed over).
/// Out of descriptors (EMFILE), it stops watching the socket for 100 ms instead of spinning.
final class TCPAcceptor: EventHandler, @unchecked Sendable {
    let fd: Int32
    let loop: EventLoop
    let slot: ChooserSlot
    let stats: FrontendStats
    let idleTimeout: Duration
    var pausedUntil: UInt64 = 0
    var closed = false
    /// The relays this acceptor's connections became, by identity: on the loop's thread.
    var relays: [ObjectIdentifier: Relay] = [:]

    init(fd: Int32, loop: EventLoop, slot: ChooserSlot, stats: FrontendStats, idleTimeout: Duration) {
        self.fd = fd
        self.loop = loop
        self.slot = slot
        self.stats = stats
        self.idleTimeout = idleTimeout
    }

    func start() {
        loop.execute { [self] in
            guard !closed else { return }
            loop.register(fd, self, events: EPOLLIN.rawValue)
        }
    }

    func close() {
        loop.execute { [self] in
            guard !closed else { return }
            closed = true
            loop.unregister(fd)
            loop.stopSweeping(self)
            Glibc.close(fd)
        }
    }

    func handle(fd: Int32, events: UInt32) {
        while !closed {
            switch Socket.accept(fd) {
            case .connection(let client):
                Connector(client: client, chooser: slot.chooser, loop: loop, stats: stats, idleTimeout: idleTimeout, owner: self).start()
            case .outOfDescriptors:
                // Out of descriptors: the backlog waits; look again in 100 ms.
                loop.unregister(fd)
                pausedUntil = loop.now + 100_000_000
                loop.sweep(self) { [unowned self] in
                    guard !closed, loop.now >= pausedUntil else { return }
                    loop.stopSweeping(self)
                    loop.register(self.fd, self, events: EPOLLIN.rawValue)
                }
                return
            case .none, .failed:
                return
            }
        }
    }

    /// Resets the connections relayed to any of `addresses` (endpoints no longer eligible),
    /// client side with RST so that the client learns at once.
    func closeRelays(to addresses: Set<SocketAddress>) {
        loop.execute { [self] in
            for relay in Array(relays.values) where addresses.contains(relay.backend) {
                relay.close(resettingClient: true)
                stats.cut.add(1, ordering: .relaxed)
            }
        }
    }
}

/// Connects an accepted client to an endpoint without blocking: each endpoint in the chooser's
/// order is tried with the next timeout (250 ms, 500 ms, 1 s, 2 s); one that refuses or times
/// out is marked failing (passive health) and the next is tried; when none is left the client
/// is reset (RST) at once. On success the pair becomes a `Relay`. On the loop's thread.
final class Connector: EventHandler {
    let client: Int32
    let clientAddress: SocketAddress?
    let candidates: [Backend]
    let chooser: BackendChooser
    let loop: EventLoop
    let stats: FrontendStats
    let idleTimeout: Duration
    var attempt = 0
    var fd: Int32 = -1
    var deadline: UInt64 = 0
    var backend: Backend?
    /// The acceptor that keeps the relay (for closing it when its endpoint goes).
    weak var owner: TCPAcceptor?

    init(client: Int32, chooser: BackendChooser, loop: EventLoop, stats: FrontendStats, idleTimeout: Duration, owner: TCPAcceptor?) {
        self.owner = owner
        self.client = client
        // The client's address matters only to affinity: no getpeername otherwise.
        clientAddress = chooser.plan.affinityTimeout == nil ? nil : Socket.peerAddress(of: client)
        self.chooser = chooser
        candidates = chooser.order(for: clientAddress?.address)
        self.loop = loop
        self.stats = stats
        self.idleTimeout = idleTimeout
    }

    func start() {
        stats.total.add(1, ordering: .relaxed)
        tryNext()
    }

    func tryNext() {
        guard attempt < candidates.count else {
            stats.failed.add(1, ordering: .relaxed)
            loop.stopSweeping(self)
            Self.reset(client)
            return
        }
        let backend = candidates[attempt]
        let timeout = connectTimeouts[min(attempt, connectTimeouts.count - 1)]
        attempt += 1
        let fd = socket(backend.address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            stats.failed.add(1, ordering: .relaxed)
            loop.stopSweeping(self)
            Self.reset(client)
            return
        }
        Socket.setNoDelay(fd)
        if case .failed = Socket.connect(fd, to: backend.address) {
            Glibc.close(fd)
            chooser.health.markFailed(backend.address)
            tryNext()
            return
        }
        self.fd = fd
        self.backend = backend
        deadline = loop.now + UInt64(timeout) * 1_000_000
        // Writable (or an error) once the connection is made or refused. Registered for what the
        // relay will want too, so that taking it over costs no system call.
        loop.register(fd, self, events: relayEvents)
        loop.sweep(self) { [unowned self] in
            if loop.now >= deadline { failed() }
        }
    }

    func handle(fd: Int32, events: UInt32) {
        guard fd == self.fd, let backend else { return }
        // A refused or unreachable connect reports an error or a hang-up with its writability;
        // without them it succeeded (no SO_ERROR read: one system call less per connection).
        if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            failed()
            return
        }
        loop.stopSweeping(self)
        self.fd = -1
        chooser.health.markHealthy(backend.address)
        chooser.chose(backend, for: clientAddress?.address)
        let relay = Relay(client: client, upstream: fd, backend: backend.address, loop: loop, stats: stats, idleTimeout: idleTimeout,
                          owner: owner)
        relay.start()
        // The endpoint may have spoken (or closed) already: this edge is the relay's too.
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 { relay.handle(fd: fd, events: events) }
    }

    /// The attempt in progress failed (refused, unreachable, or timed out).
    func failed() {
        guard fd >= 0, let backend else { return }
        loop.forget(fd)
        Glibc.close(fd)
        fd = -1
        chooser.health.markFailed(backend.address)
        tryNext()
    }

    /// Closes with RST: the client learns at once that nothing serves it.
    static func reset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }
}

/// Two connected sockets relayed both ways on one event loop, each registered once for input
/// and output (edge-triggered). Per direction: read what the source has into the loop's buffer
/// and write it on; what the destination cannot take yet is kept and the source is left unread
/// until the destination says it is writable again (backpressure: at most one buffer's worth
/// held per direction); the source's end of stream becomes `shutdown(SHUT_WR)` on the
/// destination once everything before it was written (half-close). Both directions ended, an
/// error, or `idleTimeout` without traffic: both sockets are closed.
final class Relay: EventHandler {
    final class Direction {
        let from: Int32
        let to: Int32
        var pending: [UInt8] = []
        var pendingOffset = 0
        var ended = false
        var shutdownSent = false
        /// Bytes moved so far; past `spliceThreshold` the direction switches to splice(2).
        var moved = 0
        /// The pipe of splice(2) (read end, write end) and the bytes sitting in it.
        var pipe: (Int32, Int32)?
        var inPipe = 0

        init(from: Int32, to: Int32) {
            self.from = from
            self.to = to
        }

        var isBlocked: Bool { pendingOffset < pending.count || inPipe > 0 }

        func closePipe() {
            if let (r, w) = pipe {
                Glibc.close(r)
                Glibc.close(w)
            }
            pipe = nil
        }
    }

    /// A direction that has carried this much is a bulk stream: it moves on by splice(2)
    /// through a pipe, socket to socket without copying through user space.
    static let spliceThreshold = 256 << 10
    static let spliceChunk = 1 << 20

    let client: Int32
    let upstream: Int32
    let backend: SocketAddress
    let loop: EventLoop
    let stats: FrontendStats
    weak var owner: TCPAcceptor?
    let up: Direction
    let down: Direction
    let idleNanoseconds: UInt64
    var lastActivity: UInt64
    var closed = false

    init(client: Int32, upstream: Int32, backend: SocketAddress, loop: EventLoop, stats: FrontendStats, idleTimeout: Duration,
         owner: TCPAcceptor?) {
        self.client = client
        self.upstream = upstream
        self.backend = backend
        self.owner = owner
        self.loop = loop
        self.stats = stats
        up = Direction(from: client, to: upstream)
        down = Direction(from: upstream, to: client)
        idleNanoseconds = idleTimeout.wholeNanoseconds
        lastActivity = loop.now
    }

    func start() {
        stats.active.add(1, ordering: .relaxed)
        owner?.relays[ObjectIdentifier(self)] = self
        // The client has TCP_NODELAY from its listening socket (`Socket.bind`); the upstream
        // is registered for `relayEvents` since its connect.
        loop.reassign(upstream, to: self)
        loop.register(client, self, events: relayEvents)
        loop.sweep(self) { [unowned self] in
            if loop.now - lastActivity >= idleNanoseconds { close() }
        }
        // Nothing is read here: registering the client makes epoll report what it already
        // holds, so what arrived before comes as its first event.
    }

    func handle(fd: Int32, events: UInt32) {
        guard !closed else { return }
        let source = fd == client ? up : down
        let sink = fd == client ? down : up
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 && sink.isBlocked {
            flush(sink)
        }
        let ending = EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
        if !closed && events & (EPOLLIN.rawValue | ending) != 0 {
            transfer(source, untilEmpty: events & ending != 0,
                     endFollows: events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0)
        }
    }

    /// Reads from `direction.from` and writes to `direction.to` until the source is empty, the
    /// destination full, or the stream ended. A read shorter than the buffer has emptied the
    /// source: the next arrival is a new edge, so no read is spent learning EAGAIN, unless
    /// `untilEmpty` (the peer's end of stream was signalled with this edge and must be read
    /// now, or reads were held back and the edges they had are gone).
    ///
    /// `endFollows`: the source's peer has shut its side, so what is read now is its last data
    /// and its end of stream is read right after: that data goes with MSG_MORE and leaves with
    /// the FIN that `halfClose` (or `close`) sends at once, one segment instead of two for a
    /// short response (the usual case of a connection that ends with its response).
    func transfer(_ direction: Direction, untilEmpty: Bool, endFollows: Bool = false) {
        if direction.pipe != nil || (direction.moved >= Self.spliceThreshold && openPipe(direction)) {
            spliceTransfer(direction)
            return
        }
        let buffer = loop.buffer
        while !closed && !direction.isBlocked && !direction.ended {
            let received = Socket.receive(direction.from, into: buffer)
            guard case .done(let n) = received, n > 0 else {
                readEnded(direction, received)
                return
            }
            counted(n, direction)
            direction.moved += n
            let data = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            let sent: Int
            switch Socket.send(direction.to, data, more: endFollows) {
            case .done(let count): sent = count
            case .wouldBlock: sent = 0
            case .failed:
                close()
                return
            }
            if sent == n {
                if direction.moved >= Self.spliceThreshold && openPipe(direction) {
                    spliceTransfer(direction)
                    return
                }
                if n < buffer.count && !untilEmpty { return }
                continue
            }
            // The destination is full: keep the rest until it is writable again.
            direction.pending = Array(UnsafeRawBufferPointer(rebasing: buffer[sent..<n]))
            direction.pendingOffset = 0
            return
        }
    }

    /// After a read that moved no data: the end of stream half-closes, an error closes, and
    /// an empty source waits for its next edge.
    func readEnded(_ direction: Direction, _ result: IOResult) {
        switch result {
        case .done:
            direction.ended = true
            halfClose(direction)
        case .failed:
            close()
        case .wouldBlock:
            break
        }
    }

    func counted(_ n: Int, _ direction: Direction) {
        lastActivity = loop.now
        if direction === up { stats.bytesIn.add(n, ordering: .relaxed) } else { stats.bytesOut.add(n, ordering: .relaxed) }
    }

    /// A pipe for splice(2) (falls back to copying when none can be made).
    func openPipe(_ direction: Direction) -> Bool {
        guard direction.pipe == nil else { return true }
        var fds: [Int32] = [0, 0]
        guard cdns_pipe(&fds, Int32(Self.spliceChunk)) == 0 else {
            direction.moved = Int.min / 2  // do not try again
            return false
        }
        direction.pipe = (fds[0], fds[1])
        return true
    }

    /// Source → pipe → destination, until the source is empty or the destination full.
    func spliceTransfer(_ direction: Direction) {
        guard let (pipeRead, pipeWrite) = direction.pipe else { return }
        while !closed {
            if direction.inPipe > 0 {
                // The time before the bytes leave: a peer that has them and then moves a test's
                // clock on never sees its move undone by a later reading.
                let now = loop.now
                switch Socket.splice(from: pipeRead, to: direction.to, count: direction.inPipe) {
                case .done(let n) where n > 0:
                    direction.inPipe -= n
                    lastActivity = now
                    continue
                case .wouldBlock:
                    return  // the destination is full
                default:
                    close()
                    return
                }
            }
            if direction.ended {
                halfClose(direction)
                return
            }
            let received = Socket.splice(from: direction.from, to: pipeWrite, count: Self.spliceChunk)
            guard case .done(let n) = received, n > 0 else {
                readEnded(direction, received)
                return
            }
            direction.inPipe += n
            counted(n, direction)
        }
    }

    func flush(_ direction: Direction) {
        if direction.pipe != nil {
            spliceTransfer(direction)
            return
        }
        while direction.isBlocked {
            let now = loop.now
            let result = direction.pending.withUnsafeBytes {
                Socket.send(direction.to, UnsafeRawBufferPointer(rebasing: $0[direction.pendingOffset...]))
            }
            switch result {
            case .done(let n) where n > 0:
                direction.pendingOffset += n
                lastActivity = now
                continue
            case .wouldBlock:
                return
            default:
                close()
                return
            }
        }
        direction.pending = []
        direction.pendingOffset = 0
        if direction.ended {
            halfClose(direction)
        } else {
            // Edge-triggered: what waited in the source while we were blocked is read now.
            transfer(direction, untilEmpty: true)
        }
    }

    /// The source ended: once its data is written, the destination's write side is shut. When
    /// the other direction is already shut too, closing both sockets sends this FIN (nothing is
    /// left unread on either: both ends of stream were read), one `shutdown` fewer.
    func halfClose(_ direction: Direction) {
        guard direction.ended, !direction.isBlocked, !direction.shutdownSent else { return }
        direction.shutdownSent = true
        let other = direction === up ? down : up
        if other.shutdownSent {
            close()
            return
        }
        shutdown(direction.to, Int32(SHUT_WR))
    }

    func close(resettingClient: Bool = false) {
        guard !closed else { return }
        closed = true
        stats.active.subtract(1, ordering: .relaxed)
        owner?.relays.removeValue(forKey: ObjectIdentifier(self))
        loop.forget(client)
        loop.forget(upstream)
        loop.stopSweeping(self)
        if resettingClient { Connector.reset(client) } else { Glibc.close(client) }
        Glibc.close(upstream)
        up.closePipe()
        down.closePipe()
    }
}
