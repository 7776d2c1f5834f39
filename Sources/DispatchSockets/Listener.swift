#if canImport(Glibc)
import Glibc
#endif
import CShims
public import Dispatch

/// A listening TCP socket and its accept source, on one serial queue: started once, stopped
/// once, its descriptor closed by the source's cancel handler. A source never started is resumed
/// before it is cancelled (libdispatch traps when a suspended source is released). Each
/// accepted descriptor (non-blocking, close-on-exec) is handed to `onAccept` on the queue.
public final class Listener: @unchecked Sendable {
    let fd: Int32
    public let address: SocketAddress
    public let queue: DispatchQueue
    let source: any DispatchSourceRead
    // Touched only on `queue`.
    var started = false
    var stopped = false

    /// Out of descriptors (EMFILE/ENFILE), accepting pauses this long rather than spin.
    public static let descriptorPause = DispatchTimeInterval.milliseconds(100)
    var paused = false

    /// Listens on `address`; accepted descriptors are handed to `onAccept` on `queue` (a new
    /// serial queue named after `label` when nil).
    public init(address: SocketAddress, label: String, queue: DispatchQueue? = nil, reusePort: Bool,
                onAccept: @escaping (Int32) -> Void) throws(SocketError) {
        fd = try Socket.bind(address, type: Int32(SOCK_STREAM.rawValue), reusePort: reusePort)
        self.address = Socket.localAddress(of: fd) ?? address
        self.queue = queue ?? DispatchQueue(label: "\(label) \(self.address)")
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: self.queue)
        nonisolated(unsafe) weak var weakSelf: Listener? = nil
        source.setEventHandler { [fd] in
            while true {
                switch Socket.accept(fd) {
                case .connection(let client):
                    onAccept(client)
                case .outOfDescriptors:
                    // The pending connections wait in the backlog: pause instead of being woken
                    // at once, forever.
                    weakSelf?.pause()
                    return
                case .none, .failed:
                    return
                }
            }
        }
        weakSelf = self
        source.setCancelHandler { [fd] in close(fd) }
    }

    deinit {
        // Released without having been stopped: libdispatch must not release a suspended source.
        if !started || paused { source.resume() }
        if !stopped { source.cancel() }
    }

    /// Suspends accepting for `descriptorPause`; on `queue`.
    func pause() {
        guard !paused, !stopped else { return }
        paused = true
        source.suspend()
        queue.asyncAfter(deadline: .now() + Self.descriptorPause) { [self] in
            guard paused else { return }
            paused = false
            source.resume()
        }
    }

    public func start() {
        queue.async {
            guard !self.started, !self.stopped else { return }
            self.started = true
            self.source.resume()
        }
    }

    /// Stops accepting, then runs `afterwards` on the queue.
    public func stop(afterwards: @escaping @Sendable () -> Void = {}) {
        queue.async {
            guard !self.stopped else { return }
            self.stopped = true
            if self.paused {
                self.paused = false
                self.source.resume()
            }
            if !self.started {
                self.started = true
                self.source.resume()
            }
            self.source.cancel()
            afterwards()
        }
    }
}
