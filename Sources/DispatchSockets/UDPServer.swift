#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch
import Synchronization

/// Serves datagrams on one address with several SO_REUSEPORT sockets (one per core), each
/// with its own serial queue and read source. On readiness a socket is drained with recvmmsg
/// in batches until EAGAIN or a budget, each datagram handed to `handler`, replies sent with
/// sendmmsg from the address the query arrived at. Knows nothing of DNS.
public final class UDPServer: @unchecked Sendable {
    /// Writes the reply to `query` into `reply` and returns its length; 0 sends nothing now
    /// (the datagram is dropped, or answered later through `origin.deferred()`).
    public typealias Handler = @Sendable (_ query: UnsafeRawBufferPointer, _ reply: UnsafeMutableRawBufferPointer,
                                          _ origin: borrowing Origin) -> Int

    /// Where a datagram came from and was sent to, valid during the handler's call.
    public struct Origin: ~Copyable {
        let datagram: UnsafePointer<cdns_datagram>
        unowned(unsafe) let worker: Worker
        /// The server's clock when the datagram's batch was received (0 without a clock): a
        /// query's time in the server counts from there, waiting behind its batch included.
        public let receivedAt: UInt64

        /// The client's address.
        public var peer: SocketAddress? { SocketAddress(datagram.pointee.peer) }

        /// A reply address that outlives the handler's call, for an answer sent later.
        public func deferred() -> DeferredReply {
            var copy = cdns_datagram()
            copy.peer = datagram.pointee.peer
            copy.peer_length = datagram.pointee.peer_length
            copy.local_family = datagram.pointee.local_family
            copy.local4 = datagram.pointee.local4
            copy.local6 = datagram.pointee.local6
            copy.interface_index = datagram.pointee.interface_index
            return DeferredReply(worker: worker, datagram: copy)
        }
    }

    /// Sends one reply later, from the address the query arrived at, unless the server stopped.
    public struct DeferredReply: @unchecked Sendable {
        let worker: Worker
        let datagram: cdns_datagram

        public var peer: SocketAddress? { SocketAddress(datagram.peer) }

        /// Sends from the calling thread (sendmsg is thread-safe), unless the socket closed.
        public func send(_ bytes: [UInt8]) {
            guard !bytes.isEmpty else { return }
            var out = datagram
            var bytes = bytes
            worker.open.state.withLock { open in
                guard open else { return }
                bytes.withUnsafeMutableBytes { raw in
                    out.buffer = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    out.capacity = raw.count
                    out.length = raw.count
                    _ = cdns_send_batch(worker.fd, &out, 1)
                }
            }
        }
    }

    public let address: SocketAddress
    let workers: [Worker]

    public static let batchSize: Int32 = 32
    public static let budget = 16384
    public static let bufferSize = 4096
    /// How long an emptied socket is watched with poll(2) before going back to the source (the
    /// budget bounds how long one event keeps its thread under load).
    public static let lingerMilliseconds: Int32 = 1

    /// Binds `sockets` sockets on `address` (port 0: the kernel chooses one port for all).
    /// `clock`, when given, is read once per batch received (`Origin.receivedAt`).
    public init(address: SocketAddress, sockets: Int = 2, receiveBuffer: Int = 4 << 20,
                clock: (@Sendable () -> UInt64)? = nil, handler: @escaping Handler) throws(SocketError) {
        try Socket.claim(address, type: Int32(SOCK_DGRAM.rawValue))
        var bound = address
        var workers: [Worker] = []
        do throws(SocketError) {
            for index in 0..<max(1, sockets) {
                let fd = try Socket.bind(bound, type: Int32(SOCK_DGRAM.rawValue), reusePort: true, receiveBuffer: receiveBuffer)
                if index == 0, let actual = Socket.localAddress(of: fd) { bound = actual }
                let worker = Worker(fd: fd, label: "udp \(bound) #\(index)", clock: clock, handler: handler)
                worker.wildcard = address.address.isUnspecified
                workers.append(worker)
            }
        } catch {
            for worker in workers { worker.cancel() }
            throw error
        }
        self.address = bound
        self.workers = workers
    }

    public func start() { for worker in workers { worker.start() } }

    /// Stops reading; sockets are closed by the sources' cancel handlers.
    public func stop() { for worker in workers { worker.cancel() } }

    final class Worker: @unchecked Sendable {
        let fd: Int32
        let queue: DispatchQueue
        let source: any DispatchSourceRead
        let handler: Handler
        let clock: (@Sendable () -> UInt64)?
        // Buffers, touched only on `queue`.
        let incoming: UnsafeMutablePointer<cdns_datagram>
        let outgoing: UnsafeMutablePointer<cdns_datagram>
        var cancelled = false
        var started = false
        let stopRequested = Atomic<Bool>(false)
        /// Bound to 0.0.0.0 or ::, so replies must name their source address.
        var wildcard = true
        /// The socket waits in its receive calls for the linger (see `drain`).
        let lingers: Bool
        /// False once the descriptor is closed: deferred replies check it under the lock.
        let open = OpenFlag()

        init(fd: Int32, label: String, clock: (@Sendable () -> UInt64)?, handler: @escaping Handler) {
            self.fd = fd
            self.handler = handler
            self.clock = clock
            queue = DispatchQueue(label: label)
            source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            let count = Int(UDPServer.batchSize)
            incoming = .allocate(capacity: count)
            outgoing = .allocate(capacity: count)
            for i in 0..<count {
                incoming.advanced(by: i).initialize(to: cdns_datagram())
                incoming[i].buffer = .allocate(capacity: UDPServer.bufferSize)
                incoming[i].capacity = UDPServer.bufferSize
                outgoing.advanced(by: i).initialize(to: cdns_datagram())
                outgoing[i].buffer = .allocate(capacity: UDPServer.bufferSize)
                outgoing[i].capacity = UDPServer.bufferSize
            }
            // Blocking mode with the linger as receive timeout: every call but the lingering
            // receive passes MSG_DONTWAIT. Without it (never seen), the drain ends when emptied.
            lingers = cdns_set_receive_wait(fd, UDPServer.lingerMilliseconds) == 0
            source.setEventHandler { [unowned self] in self.drain() }
            source.setCancelHandler { [fd, incoming, outgoing, open] in
                open.state.withLock { open in
                    open = false
                    close(fd)
                }
                for i in 0..<count {
                    incoming[i].buffer.deallocate()
                    outgoing[i].buffer.deallocate()
                }
                incoming.deallocate()
                outgoing.deallocate()
            }
        }

        deinit {
            // Released without having been stopped (its owner failed before starting it):
            // libdispatch must not release a suspended source.
            if !started {
                source.setEventHandler {}
                source.resume()
            }
            if !cancelled { source.cancel() }
        }

        func start() {
            queue.async {
                guard !self.started, !self.cancelled else { return }
                self.started = true
                self.source.resume()
            }
        }

        /// Cancels the source; one never started is resumed first (libdispatch must not
        /// release a suspended source), and its cancel handler closes the socket.
        func cancel() {
            // Seen at once by a drain in progress (which may otherwise keep the queue busy).
            stopRequested.store(true, ordering: .relaxed)
            queue.async {
                guard !self.cancelled else { return }
                self.cancelled = true
                if !self.started {
                    self.started = true
                    self.source.resume()
                }
                self.source.cancel()
            }
        }

        /// Reads until the socket is empty or the budget is spent (then the source fires again).
        func drain() {
            var handled = 0
            // A batch that came back short has most likely emptied the socket: wait in poll(2)
            // straight away rather than spend a receive call on EAGAIN first.
            var probablyEmpty = false
            while handled < UDPServer.budget && !stopRequested.load(ordering: .relaxed) {
                let received: Int32
                if probablyEmpty {
                    // Emptied: linger a moment in a blocking receive (the socket's receive
                    // timeout) for the next datagram. Under steady load it arrives well within
                    // the linger and wakes this thread directly, instead of the event loop's
                    // thread waking a worker thread (two context switches per wakeup), and one
                    // call both waits and reads. Idle, the source takes over again.
                    guard !cancelled, !stopRequested.load(ordering: .relaxed), lingers else { return }
                    received = cdns_receive_batch_waiting(fd, incoming, UDPServer.batchSize)
                    guard received > 0 else { return }
                } else {
                    received = cdns_receive_batch(fd, incoming, UDPServer.batchSize)
                }
                probablyEmpty = received < UDPServer.batchSize
                guard received > 0 else { continue }
                let receivedAt = clock?() ?? 0
                var replies: Int32 = 0
                for i in 0..<Int(received) {
                    let query = incoming[i]
                    guard query.length > 0 else { continue }
                    let reply = outgoing.advanced(by: Int(replies))
                    let origin = Origin(datagram: UnsafePointer(incoming.advanced(by: i)), worker: self, receivedAt: receivedAt)
                    let length = handler(UnsafeRawBufferPointer(start: query.buffer, count: query.length),
                                         UnsafeMutableRawBufferPointer(start: reply.pointee.buffer, count: reply.pointee.capacity),
                                         origin)
                    guard length > 0 else { continue }
                    reply.pointee.length = length
                    reply.pointee.peer = query.peer
                    reply.pointee.peer_length = query.peer_length
                    // A socket bound to one address replies from it anyway: no control message
                    // (and no route lookup for it) unless bound to the wildcard address.
                    reply.pointee.local_family = wildcard ? query.local_family : 0
                    reply.pointee.local4 = query.local4
                    reply.pointee.local6 = query.local6
                    reply.pointee.interface_index = query.interface_index
                    replies += 1
                }
                if replies > 0 { _ = cdns_send_batch(fd, outgoing, replies) }
                handled += Int(received)
            }
        }
    }
}

/// Whether a descriptor is still open, for threads other than its queue's.
final class OpenFlag: Sendable {
    let state = Mutex(true)
}
