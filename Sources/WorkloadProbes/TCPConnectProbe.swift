import CShims
public import DispatchSockets
import NetAddress

#if canImport(Glibc)
import Glibc
#endif

/// The `tcpSocket` probe as the kubelet makes it (a connection opened and closed at once), as a
/// non-blocking connect watched by one epoll loop shared by every probe: no channel, pipeline or
/// future per attempt. At 10,000 pods a probe costs a socket, two epoll calls and a close, and
/// the loop's sweep (every 50 ms) ends the attempts whose deadline has passed.
enum TCPConnectProbe {
    static let loop: EventLoop = {
        // Nice 10, and giving way after every connect and every result: the probes (their
        // timetable, connects and results' bookkeeping, which all run here) let a DNS thread
        // woken on a shared core run at once, yet still get about a tenth of a saturated core,
        // so probes keep their deadlines under full query load (SCHED_IDLE would starve them).
        let loop = EventLoop(label: "clusterdns.probes.tcp", niceness: 10)
        loop.start()
        return loop
    }()

    static func run(_ address: IPAddress, _ port: Int, timeout: Duration) async -> ProbeResult {
        await withCheckedContinuation { continuation in
            start([ProbeAttempt(target: .tcp(address: address, port: port), timeout: timeout) { continuation.resume(returning: $0) }])
        }
    }

    /// Connects, all in one turn of the loop (at once when called on it); each `done` is
    /// called on the loop's thread.
    static func start(_ attempts: [ProbeAttempt]) {
        let loop = Self.loop
        loop.executeHere {
            for attempt in attempts {
                guard case .tcp(let address, let port) = attempt.target else {
                    attempt.done(.failure("\(attempt.target) is not a TCP probe"))
                    continue
                }
                guard let port = UInt16(exactly: port), port > 0 else {
                    attempt.done(.failure("\(address):\(port) is not an address to connect to"))
                    continue
                }
                PendingConnect.start(SocketAddress(address: address, port: port), on: loop,
                                     within: max(1_000_000, attempt.timeout.wholeNanoseconds), timeout: attempt.timeout, done: attempt.done)
                loop.giveWay()
            }
        }
    }

    /// A connect's failure in the kubelet's words ("connection refused").
    static func reason(_ error: Int32) -> String { String(cString: strerror(error)).lowercased() }
}

extension NetworkProbeRunner {
    /// The clock of the loop that makes the TCP probes, and the loop as an executor: a prober
    /// whose timetable sleeps on this clock and runs there wakes on the loop's own timer and
    /// starts its connects in the same turn (no timer thread, no hop through the shared pool),
    /// all at the loop's lower priority.
    public var clock: EventLoopClock { EventLoopClock(TCPConnectProbe.loop) }
    public var executor: any TaskExecutor { TCPConnectProbe.loop }
}

/// One connect under way, on the loop's thread only.
final class PendingConnect: EventHandler {
    let fd: Int32
    let loop: EventLoop
    let deadline: UInt64
    let timeout: Duration
    var done: ((ProbeResult) -> Void)?

    init(fd: Int32, loop: EventLoop, deadline: UInt64, timeout: Duration, done: @escaping (ProbeResult) -> Void) {
        self.fd = fd
        self.loop = loop
        self.deadline = deadline
        self.timeout = timeout
        self.done = done
    }

    static func start(_ target: SocketAddress, on loop: EventLoop, within nanoseconds: UInt64, timeout: Duration,
                      done: @escaping (ProbeResult) -> Void) {
        let fd = socket(target.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return done(.failure(TCPConnectProbe.reason(errno))) }
        switch Socket.connect(fd, to: target) {
        case .done:
            close(fd)
            done(.success)
        case .failed(let error):
            close(fd)
            done(.failure(TCPConnectProbe.reason(error)))
        case .wouldBlock:
            let pending = PendingConnect(fd: fd, loop: loop, deadline: loop.now + nanoseconds, timeout: timeout, done: done)
            loop.register(fd, pending, events: EPOLLOUT.rawValue)
            loop.sweep(pending) { [unowned pending] in
                if pending.loop.now >= pending.deadline { pending.finish(.failure("no answer within \(pending.timeout)")) }
            }
        }
    }

    /// Writable (or an error): the connect is over; SO_ERROR says how.
    func handle(fd: Int32, events: UInt32) {
        let error = Socket.pendingError(fd)
        if error != 0 {
            finish(.failure(TCPConnectProbe.reason(error)))
        } else if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            finish(.failure("the connection failed"))
        } else {
            finish(.success)
        }
    }

    func finish(_ result: ProbeResult) {
        guard let done else { return }
        self.done = nil
        loop.stopSweeping(self)
        loop.unregister(fd)
        close(fd)
        done(result)
    }
}
