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
    public init() {}

    /// Connections (TCP) or flows (UDP) open now.
    public var activeCount: Int { active.load(ordering: .relaxed) }
    public var totalCount: Int { total.load(ordering: .relaxed) }
    /// Connections reset or datagrams dropped for want of an endpoint.
    public var failedCount: Int { failed.load(ordering: .relaxed) }
    /// Bytes from clients to endpoints, and back.
    public var bytesFromClients: Int { bytesIn.load(ordering: .relaxed) }
    public var bytesToClients: Int { bytesOut.load(ordering: .relaxed) }
}

/// The connect timeouts, growing as kube-proxy's userspace mode did.
let connectTimeouts: [Int] = [250, 500, 1000, 2000]

/// Connects an accepted client to an endpoint without blocking: each endpoint in the chooser's
/// order is tried with the next timeout (250 ms, 500 ms, 1 s, 2 s); one that refuses or times
/// out is marked failing (passive health) and the next is tried; when none is left the client
/// is reset (RST) at once. On success the pair becomes a `Relay`. Runs on `queue`.
final class Connector: @unchecked Sendable {
    let client: Int32
    let clientAddress: SocketAddress?
    let candidates: [Backend]
    let chooser: BackendChooser
    let queue: DispatchQueue
    let stats: FrontendStats
    let idleTimeout: Duration
    let scratch: RelayScratch
    var attempt = 0
    var fd: Int32 = -1
    var source: (any DispatchSourceWrite)?
    var timer: (any DispatchSourceTimer)?

    init(client: Int32, chooser: BackendChooser, queue: DispatchQueue, stats: FrontendStats, idleTimeout: Duration, scratch: RelayScratch) {
        self.client = client
        clientAddress = Socket.peerAddress(of: client)
        self.chooser = chooser
        candidates = chooser.order(for: clientAddress?.address)
        self.queue = queue
        self.stats = stats
        self.idleTimeout = idleTimeout
        self.scratch = scratch
    }

    func start() {
        stats.total.add(1, ordering: .relaxed)
        tryNext()
    }

    func tryNext() {
        guard attempt < candidates.count else {
            stats.failed.add(1, ordering: .relaxed)
            Self.reset(client)
            return
        }
        let backend = candidates[attempt]
        let timeout = connectTimeouts[min(attempt, connectTimeouts.count - 1)]
        attempt += 1
        let fd = socket(backend.address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            stats.failed.add(1, ordering: .relaxed)
            Self.reset(client)
            return
        }
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        let rc = backend.address.withSockaddr { connect(fd, $0, $1) }
        if rc == 0 {
            connected(fd, backend)
            return
        }
        guard errno == EINPROGRESS else {
            close(fd)
            chooser.health.markFailed(backend.address)
            tryNext()
            return
        }
        self.fd = fd
        let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        source.setEventHandler { [self] in
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            finishAttempt(success: error == 0, backend: backend)
        }
        timer.schedule(deadline: .now() + .milliseconds(timeout))
        timer.setEventHandler { [self] in finishAttempt(success: false, backend: backend) }
        self.source = source
        self.timer = timer
        source.resume()
        timer.resume()
    }

    /// Ends the attempt in progress; the descriptor is kept on success, closed after its source
    /// is cancelled otherwise.
    func finishAttempt(success: Bool, backend: Backend) {
        guard let source, let timer else { return }
        self.source = nil
        self.timer = nil
        timer.cancel()
        let fd = self.fd
        self.fd = -1
        if success {
            // The write source must be gone before the relay watches the descriptor.
            source.setCancelHandler { [self] in connected(fd, backend) }
            source.cancel()
        } else {
            source.setCancelHandler { close(fd) }
            source.cancel()
            chooser.health.markFailed(backend.address)
            tryNext()
        }
    }

    func connected(_ fd: Int32, _ backend: Backend) {
        chooser.health.markHealthy(backend.address)
        chooser.chose(backend, for: clientAddress?.address)
        let relay = Relay(client: client, upstream: fd, queue: queue, stats: stats, idleTimeout: idleTimeout, scratch: scratch)
        relay.start()
    }

    /// Closes with RST: the client learns at once that nothing serves it.
    static func reset(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }
}

/// A read buffer shared by the relays of one queue (they run one at a time), so an idle
/// connection costs no buffer.
final class RelayScratch: @unchecked Sendable {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    deinit { buffer.deallocate() }
}

/// Two connected sockets relayed both ways on one queue. Per direction: read what the source
/// has, write it to the destination; what the destination cannot take yet is kept and the
/// source is no longer read until it has gone (backpressure); the source's end of stream
/// becomes `shutdown(SHUT_WR)` on the destination once everything before it was written
/// (half-close). Both directions ended, or an error, or `idleTimeout` without traffic: both
/// sockets are closed (after every source on them was cancelled).
final class Relay: @unchecked Sendable {
    final class Direction {
        let from: Int32
        let to: Int32
        let read: any DispatchSourceRead
        let write: any DispatchSourceWrite
        var pending: [UInt8] = []
        var pendingOffset = 0
        var reading = false
        var writing = false
        var ended = false
        var shutdownSent = false

        init(from: Int32, to: Int32, queue: DispatchQueue) {
            self.from = from
            self.to = to
            read = DispatchSource.makeReadSource(fileDescriptor: from, queue: queue)
            write = DispatchSource.makeWriteSource(fileDescriptor: to, queue: queue)
        }
    }

    let client: Int32
    let upstream: Int32
    let queue: DispatchQueue
    let stats: FrontendStats
    let scratch: RelayScratch
    let up: Direction
    let down: Direction
    let timer: any DispatchSourceTimer
    let idleNanoseconds: UInt64
    var lastActivity = DispatchTime.now().uptimeNanoseconds
    var closed = false
    var selfReference: Relay?

    init(client: Int32, upstream: Int32, queue: DispatchQueue, stats: FrontendStats, idleTimeout: Duration, scratch: RelayScratch) {
        self.client = client
        self.upstream = upstream
        self.queue = queue
        self.stats = stats
        self.scratch = scratch
        up = Direction(from: client, to: upstream, queue: queue)
        down = Direction(from: upstream, to: client, queue: queue)
        timer = DispatchSource.makeTimerSource(queue: queue)
        let (seconds, attoseconds) = idleTimeout.components
        idleNanoseconds = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    func start() {
        selfReference = self
        stats.active.add(1, ordering: .relaxed)
        var on: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        for direction in [up, down] {
            direction.read.setEventHandler { [unowned self] in transfer(direction) }
            direction.write.setEventHandler { [unowned self] in flush(direction) }
        }
        let interval = max(idleNanoseconds / 4, 100_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(Int(interval)), repeating: .nanoseconds(Int(interval)))
        timer.setEventHandler { [unowned self] in
            if DispatchTime.now().uptimeNanoseconds - lastActivity >= idleNanoseconds { close() }
        }
        // Both descriptors close once every source on them is cancelled.
        let group = DispatchGroup()
        let sources: [any DispatchSourceProtocol] = [up.read, up.write, down.read, down.write, timer]
        for source in sources {
            group.enter()
            source.setCancelHandler { group.leave() }
        }
        group.notify(queue: queue) { [client, upstream] in
            Glibc.close(client)
            Glibc.close(upstream)
        }
        up.reading = true
        down.reading = true
        up.read.resume()
        down.read.resume()
        timer.resume()
    }

    /// Reads from `direction.from` and writes to `direction.to` until the source is empty or the
    /// destination full.
    func transfer(_ direction: Direction) {
        guard !closed else { return }
        while direction.reading {
            let n = recv(direction.from, scratch.buffer.baseAddress, scratch.buffer.count, 0)
            if n > 0 {
                lastActivity = DispatchTime.now().uptimeNanoseconds
                if direction === up { stats.bytesIn.add(n, ordering: .relaxed) } else { stats.bytesOut.add(n, ordering: .relaxed) }
                let sent = send(direction.to, scratch.buffer.baseAddress, n, Int32(MSG_NOSIGNAL))
                if sent == n { continue }
                if sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                    close()
                    return
                }
                // The destination is full: keep the rest, stop reading, wait until writable.
                let start = max(sent, 0)
                direction.pending = Array(UnsafeRawBufferPointer(rebasing: scratch.buffer[start..<n]))
                direction.pendingOffset = 0
                pauseReading(direction)
                if !direction.writing {
                    direction.writing = true
                    direction.write.resume()
                }
                return
            }
            if n == 0 {
                direction.ended = true
                pauseReading(direction)
                halfClose(direction)
                return
            }
            if errno == EINTR { continue }
            if errno != EAGAIN && errno != EWOULDBLOCK { close() }
            return
        }
    }

    func flush(_ direction: Direction) {
        guard !closed else { return }
        while direction.pendingOffset < direction.pending.count {
            let n = direction.pending.withUnsafeBytes {
                send(direction.to, $0.baseAddress! + direction.pendingOffset, $0.count - direction.pendingOffset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                direction.pendingOffset += n
                lastActivity = DispatchTime.now().uptimeNanoseconds
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            close()
            return
        }
        direction.pending = []
        direction.pendingOffset = 0
        if direction.writing {
            direction.writing = false
            direction.write.suspend()
        }
        if direction.ended {
            halfClose(direction)
        } else if !direction.reading {
            direction.reading = true
            direction.read.resume()
        }
    }

    func pauseReading(_ direction: Direction) {
        if direction.reading {
            direction.reading = false
            direction.read.suspend()
        }
    }

    /// The source ended: once its data is written, the destination's write side is shut.
    func halfClose(_ direction: Direction) {
        guard direction.ended, direction.pendingOffset >= direction.pending.count, !direction.shutdownSent else { return }
        direction.shutdownSent = true
        shutdown(direction.to, Int32(SHUT_WR))
        if up.shutdownSent && down.shutdownSent { close() }
    }

    func close() {
        guard !closed else { return }
        closed = true
        stats.active.subtract(1, ordering: .relaxed)
        // Sources are resumed before they are cancelled (libdispatch traps otherwise).
        for direction in [up, down] {
            if !direction.reading { direction.read.resume() }
            if !direction.writing { direction.write.resume() }
            direction.read.cancel()
            direction.write.cancel()
        }
        timer.cancel()
        // The handlers hold `self` unowned; keep it until the cancellations ran.
        queue.async { [self] in selfReference = nil }
    }
}
