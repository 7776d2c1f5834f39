#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import DNSWire
public import DispatchSockets

/// Why one query to one upstream produced no usable response.
public enum ExchangeError: Error, Hashable, Sendable, CustomStringConvertible {
    case timeout
    /// The upstream refused the connection or answered with ICMP port unreachable.
    case unreachable(errno: Int32)
    case socket(SocketError)
    /// A TCP connection closed before a whole response arrived.
    case closed

    public var description: String {
        switch self {
        case .timeout: "timed out"
        case .unreachable(let code): "unreachable: \(String(cString: strerror(code)))"
        case .socket(let error): "\(error)"
        case .closed: "connection closed before the response"
        }
    }
}

/// One query sent to one upstream: over UDP from a fresh socket (a random source port chosen by
/// the kernel; `connect` makes the kernel drop datagrams from any other address or port), a
/// reply accepted only if it is a response with the query's ID and question; a truncated reply
/// is retried over TCP. Everything runs on `queue`; `completion` is called there exactly once.
/// There is no timer per exchange: the resolver's sweep calls `expire` with its clock's time, and
/// the exchange ends once that passes `deadline`.
final class Exchange: @unchecked Sendable {
    typealias Completion = (Result<(Message, [UInt8]), ExchangeError>) -> Void

    let query: [UInt8]
    let id: UInt16
    let question: Question
    let upstream: SocketAddress
    let queue: DispatchQueue
    var completion: Completion?
    var fd: Int32 = -1
    /// Read and write sources on `fd`.
    var sources: [any DispatchSourceProtocol] = []
    /// When the exchange times out, on the resolver's clock (nanoseconds).
    let deadline: UInt64
    /// Called for each reply that fails the ID/question check (spoofing attempts, stale answers).
    let onMismatch: (() -> Void)?
    /// Called once when the exchange ends, before `completion` (the resolver forgets it).
    var onFinish: (() -> Void)?

    init(query: [UInt8], id: UInt16, question: Question, upstream: SocketAddress, deadline: UInt64,
         queue: DispatchQueue, onMismatch: (() -> Void)? = nil, completion: @escaping Completion) {
        self.query = query
        self.id = id
        self.question = question
        self.upstream = upstream
        self.queue = queue
        self.completion = completion
        self.onMismatch = onMismatch
        self.deadline = deadline
    }

    /// Starts the exchange; call on `queue`.
    func start(tcp: Bool = false) {
        if tcp { startTCP() } else { startUDP() }
    }

    var isFinished: Bool { completion == nil }

    /// Ends the exchange with a timeout if its deadline passed; on `queue`.
    func expire(now: UInt64) {
        if now >= deadline { finish(.failure(.timeout)) }
    }

    func openSocket(type: Int32) -> Bool {
        let fd = socket(upstream.family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            finish(.failure(.socket(SocketError("socket", errno: errno))))
            return false
        }
        self.fd = fd
        if case .failed(let error) = Socket.connect(fd, to: upstream) {
            finish(.failure(.unreachable(errno: error)))
            return false
        }
        return true
    }

    /// A connected socket watched by the resolver's event loop, from the pool or opened for
    /// this exchange (nil only when that failed: then `openSocket` reports why). epoll reports
    /// the ICMP error of an upstream that refuses at once; libdispatch's read source would not.
    var armed: ArmedSocket?

    func startUDP() {
        if let armed {
            // Pre-opened: the socket exists and its event loop already watches it.
            fd = armed.fd
            armed.onReadable = { [self] in receiveUDP() }
        } else {
            guard openSocket(type: Int32(SOCK_DGRAM.rawValue)) else { return }
            let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            read.setEventHandler { [self] in receiveUDP() }
            sources.append(read)
            read.resume()
        }
        switch query.withUnsafeBytes({ Socket.send(fd, $0) }) {
        case .done(let sent) where sent == query.count:
            break
        case .failed(let error):
            finish(.failure(.unreachable(errno: error)))
            return
        default:
            finish(.failure(.unreachable(errno: EAGAIN)))
            return
        }
    }

    func receiveUDP() {
        while completion != nil {
            var result = IOResult.wouldBlock
            // Read straight into an array of the datagram's size (no zeroed 64 KiB buffer).
            let bytes = [UInt8](unsafeUninitializedCapacity: 65535) { buffer, count in
                result = Socket.receive(fd, into: UnsafeMutableRawBufferPointer(buffer))
                if case .done(let n) = result { count = n } else { count = 0 }
            }
            switch result {
            case .done: break
            case .wouldBlock: return
            case .failed(let error):
                finish(.failure(.unreachable(errno: error)))
                return
            }
            guard let message = accept(bytes) else { continue }
            if message.header.isTruncated {
                // RFC 7766 §5: retry the same query over TCP.
                closeSockets()
                startTCP()
                return
            }
            finish(.success((message, bytes)))
            return
        }
    }

    /// The decoded response if it answers our query: a response, our ID, our question.
    func accept(_ bytes: [UInt8]) -> Message? {
        guard let message = try? Message(decoding: bytes), message.header.isResponse, message.header.id == id,
              message.questions.count == 1, message.questions[0] == question else {
            onMismatch?()
            return nil
        }
        return message
    }

    // MARK: TCP

    var input: [UInt8] = []
    var outputOffset = 0
    var framed: [UInt8] = []

    func startTCP() {
        guard openSocket(type: Int32(SOCK_STREAM.rawValue)) else { return }
        framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        outputOffset = 0
        // Connect and send with a write source, then read with a read source created only once
        // the write source is gone: on Linux, libdispatch can miss read events on a descriptor
        // that also had a write source (seen as a first exchange that never completes).
        let fd = self.fd
        let write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        write.setEventHandler { [self] in
            guard completion != nil, self.fd == fd else { return }
            let error = Socket.pendingError(fd)
            if error != 0 { finish(.failure(.unreachable(errno: error))); return }
            while outputOffset < framed.count {
                switch framed.withUnsafeBytes({ Socket.send(fd, UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }) {
                case .done(let n) where n > 0:
                    outputOffset += n
                case .wouldBlock:
                    return
                case .failed(let error):
                    finish(.failure(.unreachable(errno: error)))
                    return
                default:
                    finish(.failure(.closed))
                    return
                }
            }
            sources.removeAll { ($0 as AnyObject) === (write as AnyObject) }
            write.setCancelHandler { [self] in
                guard completion != nil, self.fd == fd else { return }
                let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
                read.setEventHandler { [self] in receiveTCP() }
                sources.append(read)
                read.resume()
            }
            write.cancel()
        }
        sources.append(write)
        write.resume()
    }


    func receiveTCP() {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while completion != nil {
            let n: Int
            switch chunk.withUnsafeMutableBytes({ Socket.receive(fd, into: $0) }) {
            case .done(0):
                finish(.failure(.closed))
                return
            case .done(let count):
                n = count
            case .wouldBlock:
                return
            case .failed(let error):
                finish(.failure(.unreachable(errno: error)))
                return
            }
            input += chunk[0..<n]
            while input.count >= 2 {
                let length = Int(input[0]) << 8 | Int(input[1])
                guard input.count >= 2 + length else { break }
                let bytes = Array(input[2..<(2 + length)])
                input.removeFirst(2 + length)
                if let message = accept(bytes) {
                    finish(.success((message, bytes)))
                    return
                }
            }
        }
    }

    // MARK: Ending

    /// Cancels the sources; the descriptor is closed by the cancel handler of the last one (an
    /// armed socket is closed by its event loop).
    func closeSockets() {
        if let armed {
            self.armed = nil
            armed.onReadable = nil
            armed.close()
            fd = -1
            return
        }
        let fd = self.fd
        self.fd = -1
        let io = sources
        sources = []
        guard fd >= 0 else { return }
        if io.isEmpty {
            close(fd)
            return
        }
        if io.count == 1 {
            io[0].setCancelHandler { close(fd) }
            io[0].cancel()
            return
        }
        let group = DispatchGroup()
        for source in io {
            group.enter()
            source.setCancelHandler { group.leave() }
        }
        group.notify(queue: queue) { close(fd) }
        for source in io { source.cancel() }
    }

    func finish(_ result: Result<(Message, [UInt8]), ExchangeError>) {
        guard let completion else { return }
        self.completion = nil
        closeSockets()
        onFinish?()
        onFinish = nil
        completion(result)
    }
}

/// A UDP socket opened and `connect`ed to an upstream ahead of need and watched by the
/// resolver's event loop: taking one moves socket(), connect() and the registration off the
/// path of a query, and its reply wakes the loop's thread directly, which runs the exchange on
/// the resolver's queue (`queue.sync`: on the loop's thread when the queue is free) — one
/// wake-up where a dispatch source needs two. Each is used for one query only (so every query
/// still has its own random port).
final class ArmedSocket: EventHandler, @unchecked Sendable {
    let fd: Int32
    let loop: EventLoop
    let queue: DispatchQueue
    /// Set and cleared on `queue`.
    var onReadable: (() -> Void)?
    var closed = false

    init?(upstream: SocketAddress, loop: EventLoop, queue: DispatchQueue) {
        let fd = socket(upstream.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        guard Socket.connect(fd, to: upstream) == .done(0) else {
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
        self.loop = loop
        self.queue = queue
        loop.executeHere { [self] in loop.register(fd, self, events: EventLoop.readable) }
    }

    func handle(fd: Int32, events: UInt32) {
        queue.sync {
            if let onReadable {
                onReadable()
            } else if !closed {
                // Not in use yet (a stray datagram): drop it.
                var byte: UInt8 = 0
                _ = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            }
        }
    }

    /// Stops watching and closes, on the loop's thread (so the descriptor number is not
    /// reused before the loop forgot it).
    func close() {
        guard !closed else { return }
        closed = true
        loop.executeHere { [self] in
            loop.forget(fd)
            Glibc.close(fd)
        }
    }

    /// Closes a socket never used.
    func discard() { close() }
}
