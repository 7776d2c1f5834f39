#if canImport(Glibc)
import Glibc
#endif
import CShims
import Synchronization

/// Serves datagrams on one address with several SO_REUSEPORT sockets (one per core), each
/// read by a thread of its own: it waits in a blocking recvmmsg for a batch, hands each
/// datagram to `handler`, and sends the replies with sendmmsg from the address the query
/// arrived at. Knows nothing of DNS.
///
/// A thread per socket rather than a dispatch source: libdispatch on Linux wakes its epoll
/// thread and then a worker of its pool for each readiness (two context switches), and once a
/// burst has grown the pool the worker is a different one each time, so a query would wait
/// behind two wakeups of threads that may be cold. Here the datagram wakes the thread that
/// reads it, the same thread each time, as Knot's and NSD's UDP workers are woken.
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
    public static let bufferSize = 4096

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

    /// Stops reading: each thread is woken, leaves its loop and closes its socket.
    public func stop() { for worker in workers { worker.cancel() } }

    /// A server dropped without `stop()` stops all the same (its threads would keep it bound).
    deinit { stop() }

    final class Worker: @unchecked Sendable {
        enum Phase { case idle, running, finished }

        let fd: Int32
        let label: String
        let handler: Handler
        let clock: (@Sendable () -> UInt64)?
        // Buffers, touched only by the worker's thread (or by whoever finishes an idle worker).
        let incoming: UnsafeMutablePointer<cdns_datagram>
        let outgoing: UnsafeMutablePointer<cdns_datagram>
        let phase = Mutex(Phase.idle)
        let stopRequested = Atomic<Bool>(false)
        /// Bound to 0.0.0.0 or ::, so replies must name their source address.
        var wildcard = true
        /// False once the descriptor is closed: deferred replies check it under the lock.
        let open = OpenFlag()

        init(fd: Int32, label: String, clock: (@Sendable () -> UInt64)?, handler: @escaping Handler) {
            self.fd = fd
            self.label = label
            self.handler = handler
            self.clock = clock
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
            // The thread waits in recvmmsg itself.
            _ = cdns_set_blocking(fd)
        }

        /// Starts the worker's thread (a detached pthread that holds the worker until it ends).
        func start() {
            let starting = phase.withLock { phase in
                guard phase == .idle else { return false }
                phase = .running
                return true
            }
            guard starting else { return }
            let context = Unmanaged.passRetained(self).toOpaque()
            var thread = pthread_t()
            let created = pthread_create(&thread, nil, { context in
                let worker = Unmanaged<Worker>.fromOpaque(context!).takeRetainedValue()
                cdns_set_thread_name(worker.label)
                worker.run()
                worker.finish()
                return nil
            }, context)
            precondition(created == 0, "pthread_create: \(created)")
            pthread_detach(thread)
        }

        /// Ends the worker: a running thread is woken from its receive by shutdown(2) (which
        /// wakes a datagram socket's readers too, and makes every later receive return at
        /// once) and closes the socket on its way out; one never started is finished here.
        /// Under the phase's lock, so that the descriptor shut down is still this socket's and
        /// not a number the kernel has given to another since.
        func cancel() {
            stopRequested.store(true, ordering: .relaxed)
            let closeHere = phase.withLock { phase in
                switch phase {
                case .idle:
                    phase = .finished
                    return true
                case .running:
                    _ = Glibc.shutdown(fd, Int32(SHUT_RD))
                    return false
                case .finished:
                    return false
                }
            }
            if closeHere { finish() }
        }

        /// Closes the socket (under the lock deferred replies take) and frees the buffers.
        func finish() {
            phase.withLock { phase in
                phase = .finished
                open.state.withLock { open in
                    open = false
                    close(fd)
                }
            }
            for i in 0..<Int(UDPServer.batchSize) {
                incoming[i].buffer.deallocate()
                outgoing[i].buffer.deallocate()
            }
            incoming.deallocate()
            outgoing.deallocate()
        }

        /// Receives batches until stopped: each recvmmsg waits for a first datagram and takes
        /// the others already queued with it (MSG_WAITFORONE).
        func run() {
            while !stopRequested.load(ordering: .relaxed) {
                let received = cdns_receive_batch_waiting(fd, incoming, UDPServer.batchSize)
                guard received > 0 else {
                    // Woken with nothing: stopped (checked above), or a failure of the socket
                    // that must not turn into a loop that spins.
                    if received < 0 && !stopRequested.load(ordering: .relaxed) { usleep(1000) }
                    continue
                }
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
            }
        }
    }
}

/// Whether a descriptor is still open, for threads other than its queue's.
final class OpenFlag: Sendable {
    let state = Mutex(true)
}
