#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch

/// A listening TCP socket and its accept source, on one serial queue: started once, stopped
/// once, its descriptor closed by the source's cancel handler. A source never started is resumed
/// before it is cancelled (libdispatch traps when a suspended source is released). Each
/// accepted descriptor (non-blocking, close-on-exec) is handed to `onAccept` on the queue.
final class Listener: @unchecked Sendable {
    let fd: Int32
    let address: SocketAddress
    let queue: DispatchQueue
    let source: any DispatchSourceRead
    // Touched only on `queue`.
    var started = false
    var stopped = false

    init(address: SocketAddress, label: String, reusePort: Bool, onAccept: @escaping (Int32) -> Void) throws(SocketError) {
        fd = try Socket.bind(address, type: Int32(SOCK_STREAM.rawValue), reusePort: reusePort)
        self.address = Socket.localAddress(of: fd) ?? address
        queue = DispatchQueue(label: "\(label) \(self.address)")
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [fd] in
            while true {
                let client = cdns_accept(fd)
                // EAGAIN: all accepted. EMFILE/ENFILE: out of descriptors; the next event retries.
                guard client >= 0 else { return }
                onAccept(client)
            }
        }
        source.setCancelHandler { [fd] in close(fd) }
    }

    deinit {
        // Released without having been stopped: libdispatch must not release a suspended source.
        if !started { source.resume() }
        if !stopped { source.cancel() }
    }

    func start() {
        queue.async {
            guard !self.started, !self.stopped else { return }
            self.started = true
            self.source.resume()
        }
    }

    /// Stops accepting, then runs `afterwards` on the queue.
    func stop(afterwards: @escaping @Sendable () -> Void = {}) {
        queue.async {
            guard !self.stopped else { return }
            self.stopped = true
            if !self.started {
                self.started = true
                self.source.resume()
            }
            self.source.cancel()
            afterwards()
        }
    }
}
