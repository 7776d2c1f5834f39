#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch

/// Serves messages framed by a 2-byte big-endian length (RFC 1035 §4.2.2, RFC 7766) over TCP:
/// several messages per connection, answered in order as they are read; an idle timeout; a
/// cap on connections (beyond it a new connection is closed at once); backpressure (a client
/// that does not read its answers stops being read from). Knows nothing of what the messages mean.
public final class TCPMessageServer: @unchecked Sendable {
    /// The replies to one message from `peer` (none, one, or several: a zone transfer), in order;
    /// or nil when they come later through `later` (from any thread).
    public typealias Handler = @Sendable (_ message: [UInt8], _ peer: SocketAddress?, _ later: DeferredReply) -> [[UInt8]]?

    /// Where replies that were not ready at once go: to the connection, if it is still open.
    public struct DeferredReply: @unchecked Sendable {
        let server: TCPMessageServer
        weak var connection: Connection?

        public func send(_ replies: [[UInt8]]) {
            server.queue.async { [self] in
                guard let connection, server.connections[connection.fd] === connection else { return }
                connection.deliver(replies)
            }
        }
    }

    public struct Limits: Sendable {
        public var maxConnections: Int = 1024
        public var idleTimeout: Duration = .seconds(10)
        /// Unsent reply bytes at which a connection stops being read.
        public var maxPendingOutput: Int = 256 << 10
        /// Queries of one connection awaiting a deferred reply at which it stops being read.
        public var maxPendingQueries: Int = 100
        public init() {}
    }

    public let address: SocketAddress
    let listener: Listener
    var queue: DispatchQueue { listener.queue }
    let handler: Handler
    let limits: Limits
    /// What the idle timeout is measured by.
    let clock: any MonotonicClock
    // Touched only on `queue`.
    var connections: [Int32: Connection] = [:]
    var stopped = false
    /// One timer for every connection's idle timeout (not one per connection).
    var sweeper: (any DispatchSourceTimer)?

    public init(address: SocketAddress, limits: Limits = Limits(), clock: any MonotonicClock = SystemClock(),
                handler: @escaping Handler) throws(SocketError) {
        self.handler = handler
        self.limits = limits
        self.clock = clock
        nonisolated(unsafe) weak var server: TCPMessageServer? = nil
        try Socket.claim(address, type: Int32(SOCK_STREAM.rawValue))
        listener = try Listener(address: address, label: "tcp", reusePort: true) { client in
            guard let server else { close(client); return }
            server.accepted(client)
        }
        self.address = listener.address
        server = self
    }

    deinit { sweeper?.cancel() }

    public func start() {
        queue.async { [self] in
            let timeout = limits.idleTimeout.wholeNanoseconds
            let interval = DispatchTimeInterval.nanoseconds(Int(clamping: max(min(timeout / 4, 1_000_000_000), 1_000_000)))
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [weak self] in self?.sweepNow() }
            timer.resume()
            sweeper = timer
        }
        listener.start()
    }

    /// Closes the connections idle for `idleTimeout` on the clock, as the timer does every
    /// quarter of that (at most every second); returns once done. For tests that advance a
    /// `ManualClock`; not on the server's queue.
    public func sweep() { queue.sync { sweepNow() } }

    func sweepNow() {
        let now = clock.now()
        let timeout = limits.idleTimeout.wholeNanoseconds
        for connection in Array(connections.values) where now &- connection.lastActivity >= timeout { connection.close() }
        if stopped && connections.isEmpty {
            sweeper?.cancel()
            sweeper = nil
        }
    }

    /// Stops accepting; open connections finish what they read and are closed.
    public func stop() {
        listener.stop { [self] in
            stopped = true
            for connection in connections.values { connection.finish() }
        }
    }

    public var connectionCount: Int { queue.sync { connections.count } }

    func accepted(_ client: Int32) {
        guard connections.count < limits.maxConnections, !stopped else {
            close(client)
            return
        }
        // TCP_NODELAY comes from the listening socket (`Socket.bind`).
        let connection = Connection(fd: client, server: self)
        connections[client] = connection
        connection.start()
    }

    func closed(_ connection: Connection) { connections.removeValue(forKey: connection.fd) }

    /// One client connection; all of its state lives on the server's queue.
    final class Connection {
        let fd: Int32
        unowned let server: TCPMessageServer
        let readSource: any DispatchSourceRead
        let writeSource: any DispatchSourceWrite
        var input: [UInt8] = []
        var output: [UInt8] = []
        var outputOffset = 0
        var reading = true
        var writing = false
        var peerFinished = false
        var done = false
        /// Closed by the server: its sources are cancelled and nothing more is read or written.
        var isClosed = false
        /// Messages whose replies are deferred.
        var awaiting = 0
        /// When something was last read or written, on the server's clock.
        var lastActivity: UInt64

        /// The client's address.
        let peer: SocketAddress?

        init(fd: Int32, server: TCPMessageServer) {
            self.fd = fd
            self.server = server
            peer = Socket.peerAddress(of: fd)
            readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: server.queue)
            writeSource = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: server.queue)
            lastActivity = server.clock.now()
        }

        func start() {
            readSource.setEventHandler { [unowned self] in self.readAvailable() }
            writeSource.setEventHandler { [unowned self] in if self.write() { self.settle() } }
            // The descriptor is closed once every source is cancelled; a source is cancelled
            // only after it was resumed, so each is resumed exactly once here.
            let group = DispatchGroup()
            for source in [readSource, writeSource] as [any DispatchSourceProtocol] {
                group.enter()
                source.setCancelHandler { group.leave() }
            }
            group.notify(queue: server.queue) { [fd] in Glibc.close(fd) }
            readSource.resume()
        }

        func readAvailable() {
            var chunk = [UInt8](repeating: 0, count: 16384)
            while reading && !isClosed {
                switch chunk.withUnsafeMutableBytes({ Socket.receive(fd, into: $0) }) {
                case .done(0):
                    peerFinished = true
                    pauseReading()
                    settle()
                    return
                case .done(let n):
                    lastActivity = server.clock.now()
                    input.append(contentsOf: chunk[0..<n])
                    process()
                case .wouldBlock:
                    return
                case .failed:
                    close()
                    return
                }
            }
        }

        /// Replies wait beyond the output limit (a client that does not read them), or queries
        /// wait for replies at the in-flight limit: nothing more is read or parsed until they
        /// are fewer, so a client can hold only a bounded amount of the server's memory.
        var saturated: Bool {
            output.count - outputOffset > server.limits.maxPendingOutput || awaiting >= server.limits.maxPendingQueries
        }

        var holdsCompleteMessage: Bool {
            input.count >= 2 && input.count - 2 >= Int(input[0]) << 8 | Int(input[1])
        }

        /// Answers the complete messages in the input, in order, as long as the connection is
        /// not saturated; what stays in the input is parsed once it no longer is.
        func process() {
            while true {
                var consumed = 0
                while !saturated, input.count - consumed >= 2 {
                    let length = Int(input[consumed]) << 8 | Int(input[consumed + 1])
                    guard input.count - consumed - 2 >= length else { break }
                    let message = Array(input[(consumed + 2)..<(consumed + 2 + length)])
                    consumed += 2 + length
                    if let replies = server.handler(message, peer, DeferredReply(server: server, connection: self)) {
                        append(replies)
                    } else {
                        awaiting += 1
                    }
                }
                if consumed > 0 { input.removeFirst(consumed) }
                guard write() else { return }
                // The kernel took enough of the replies to go on with what is held back.
                if saturated || !holdsCompleteMessage { break }
            }
            settle()
        }

        func append(_ replies: [[UInt8]]) {
            for reply in replies where reply.count <= 65535 {
                output.append(UInt8(reply.count >> 8))
                output.append(UInt8(reply.count & 0xFF))
                output.append(contentsOf: reply)
            }
        }

        /// Replies that were deferred, as they come (RFC 7766 §7: out of order is allowed).
        func deliver(_ replies: [[UInt8]]) {
            awaiting -= 1
            lastActivity = server.clock.now()
            append(replies)
            if write() { settle() }
        }

        /// Writes what the socket takes of the output; false when the connection failed (and
        /// is closed).
        func write() -> Bool {
            while outputOffset < output.count {
                // The time before the bytes leave: a client that has them and then moves a
                // test's clock on never sees its move undone by a later reading.
                let now = server.clock.now()
                switch output.withUnsafeBytes({ Socket.send(fd, UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }) {
                case .done(let n) where n > 0:
                    outputOffset += n
                    lastActivity = now
                case .wouldBlock:
                    if !writing { writing = true; writeSource.resume() }
                    return true
                default:
                    close()
                    return false
                }
            }
            output.removeAll(keepingCapacity: output.capacity <= 65536)
            outputOffset = 0
            if writing { writing = false; writeSource.suspend() }
            return true
        }

        /// After every read, write and reply: reading pauses while the connection is
        /// saturated, what was held back is parsed once it is not, reading resumes, and a
        /// connection whose client (or server) has finished closes when nothing more is due.
        func settle() {
            guard !isClosed else { return }
            if saturated { pauseReading(); return }
            if holdsCompleteMessage { process(); return }
            if peerFinished || done {
                if output.count == outputOffset && awaiting == 0 { close() }
                return
            }
            if !reading { reading = true; readSource.resume() }
        }

        func pauseReading() {
            if reading { reading = false; readSource.suspend() }
        }

        /// Server shutdown: stop reading, answer what was read, then close.
        func finish() {
            done = true
            pauseReading()
            settle()
        }

        func close() {
            guard !isClosed else { return }
            isClosed = true
            server.closed(self)
            // Sources must be resumed to be cancelled.
            if !reading { readSource.resume() }
            if !writing { writeSource.resume() }
            readSource.cancel()
            writeSource.cancel()
        }
    }
}
