#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch
import Synchronization

/// Something registered with an event loop for one descriptor.
public protocol EventHandler: AnyObject {
    /// epoll events for the descriptor; on the loop's thread.
    func handle(fd: Int32, events: UInt32)
}

/// An epoll event loop on a thread of its own (the endpoint forwarder's TCP relays, the DNS
/// forwarder's upstream sockets): every readiness event runs
/// its handler on this thread at once (no hand-off to another thread per event, as libdispatch
/// has on Linux), descriptors are registered once for reading and writing (edge-triggered), and
/// one sweep every 50 ms serves every timeout on the loop: handlers decide by the loop's
/// injected clock (`now`), so that tests advance a `ManualClock` and call `sweep` instead of
/// waiting. Other threads hand work over with `execute` (an eventfd wakes the loop).
public final class EventLoop: @unchecked Sendable {
    let epfd: Int32
    let wakeFd: Int32
    let pending = Mutex<[@Sendable () -> Void]>([])
    // On the loop's thread.
    var handlers: [Int32: any EventHandler] = [:]
    var sweepers: [ObjectIdentifier: () -> Void] = [:]
    var stopped = false
    /// A scratch buffer for handlers (they run one at a time, on the loop's thread).
    public let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
    /// Whether `start()` was called.
    public private(set) var isStarted = false
    let label: String
    /// What timeouts on this loop are measured by.
    public let clock: any MonotonicClock
    /// The loop thread's nice value: background work (probes) above 0 yields the core to the
    /// threads that answer queries whenever they have something to do.
    let niceness: Int32

    public init(label: String, clock: any MonotonicClock = SystemClock(), niceness: Int32 = 0) {
        self.label = label
        self.clock = clock
        self.niceness = niceness
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeFd
        epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFd, &event)
    }

    deinit {
        close(epfd)
        close(wakeFd)
        buffer.deallocate()
    }

    /// Starts the loop's thread (a detached pthread named after the label; it holds the loop
    /// until the loop stops).
    public func start() {
        isStarted = true
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { context in
            let loop = Unmanaged<EventLoop>.fromOpaque(context!).takeRetainedValue()
            cdns_set_thread_name(loop.label)
            if loop.niceness != 0 { _ = cdns_set_thread_niceness(loop.niceness) }
            loop.run()
            return nil
        }, context)
        precondition(created == 0, "pthread_create: \(created)")
        pthread_detach(thread)
    }

    /// The loop's thread, once it runs (pthread_self).
    let threadID = Atomic<UInt>(0)

    /// Whether the caller is on the loop's thread.
    public var isCurrent: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Runs `task` now when called on the loop's thread (no wake-up of the loop through its
    /// eventfd), otherwise hands it over like `execute`.
    public func executeHere(_ task: @escaping @Sendable () -> Void) {
        if isCurrent { task() } else { execute(task) }
    }

    /// Runs `task` on the loop's thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        pending.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = write(wakeFd, &one, 8)
    }

    public func stop() { execute { [self] in stopped = true } }

    // MARK: On the loop's thread

    /// The event set of a descriptor watched for reading (level-triggered).
    public static let readable = EPOLLIN.rawValue

    public func register(_ fd: Int32, _ handler: any EventHandler, events: UInt32) {
        handlers[fd] = handler
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) != 0 && errno == EEXIST {
            epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event)
        }
    }

    /// Hands `fd`'s events to another handler, its registration unchanged (no system call).
    public func reassign(_ fd: Int32, to handler: any EventHandler) { handlers[fd] = handler }

    /// Forgets `fd`'s handler; for a descriptor about to be closed (closing removes it from
    /// epoll: no system call needed).
    public func forget(_ fd: Int32) { handlers.removeValue(forKey: fd) }

    /// Stops watching `fd` (when it stays open).
    public func unregister(_ fd: Int32) {
        handlers.removeValue(forKey: fd)
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
    }

    /// The clock's time, for handlers' timeouts.
    public var now: UInt64 { clock.now() }

    /// Runs every sweep now, on the loop's thread, then `done` (anywhere): after a test moved
    /// the clock on, the timeouts it passed have acted.
    public func sweep(then done: @escaping @Sendable () -> Void) {
        execute { [self] in
            runSweepers()
            done()
        }
    }

    func runSweepers() { for body in Array(sweepers.values) { body() } }

    /// `body` runs every sweep (about every 50 ms) until `stopSweeping`.
    public func sweep(_ owner: AnyObject, _ body: @escaping () -> Void) { sweepers[ObjectIdentifier(owner)] = body }
    public func stopSweeping(_ owner: AnyObject) { sweepers.removeValue(forKey: ObjectIdentifier(owner)) }

    func run() {
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
        let capacity = 128
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        // The sweeps' cadence is real time; what they decide is the clock's.
        let cadence = SystemClock()
        var lastSweep = cadence.now()
        while !stopped {
            let n = epoll_wait(epfd, events, Int32(capacity), 50)
            if n > 0 {
                for i in 0..<Int(n) {
                    let fd = events[i].data.fd
                    if fd == wakeFd {
                        var value: UInt64 = 0
                        _ = read(wakeFd, &value, 8)
                        let tasks = pending.withLock { tasks in
                            let out = tasks
                            tasks.removeAll()
                            return out
                        }
                        for task in tasks { task() }
                    } else if let handler = handlers[fd] {
                        handler.handle(fd: fd, events: events[i].events)
                    }
                }
            }
            let now = cadence.now()
            if now - lastSweep >= 50_000_000 {
                lastSweep = now
                runSweepers()
            }
        }
        for (fd, _) in handlers { epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil) }
        handlers = [:]
        sweepers = [:]
    }
}

