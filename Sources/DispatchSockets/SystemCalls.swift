#if canImport(Glibc)
import Glibc
#endif
import CShims

/// What one non-blocking socket call did, EINTR already retried: moved some bytes (0 from a
/// receive is the peer's end of stream), would block, or failed with an errno.
public enum IOResult: Hashable, Sendable {
    case done(Int)
    case wouldBlock
    case failed(Int32)
}

/// The data calls of every socket of the project, each wrapped once: the servers here, the
/// resolver's exchanges and the endpoint forwarder's relays call these, not the C functions.
extension Socket {
    /// Runs `call` (a C call returning a count, or -1 with errno) until it is not interrupted.
    @inline(__always)
    static func retrying(_ call: () -> Int) -> IOResult {
        while true {
            let n = call()
            if n >= 0 { return .done(n) }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            return .failed(error)
        }
    }

    /// recv(2).
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) -> IOResult {
        retrying { recv(fd, buffer.baseAddress, buffer.count, flags) }
    }

    /// recvfrom(2): the datagram and who sent it.
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                               from sender: inout SocketAddress?) -> IOResult {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = retrying {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
            }
        }
        if case .done = result { sender = SocketAddress(storage) }
        return result
    }

    /// send(2), never raising SIGPIPE. `more`: MSG_MORE (more data follows at once: the kernel
    /// may hold this in the socket until then).
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, more: Bool = false, flags: Int32 = 0) -> IOResult {
        retrying { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0) | flags) }
    }

    /// sendto(2), never raising SIGPIPE or blocking.
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, to address: SocketAddress) -> IOResult {
        retrying {
            address.withSockaddr { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), $0, $1) }
        }
    }

    /// splice(2) of up to `count` bytes between two descriptors, one of them a pipe, without
    /// blocking.
    public static func splice(from source: Int32, to destination: Int32, count: Int) -> IOResult {
        retrying { Int(cdns_splice(source, destination, count)) }
    }
}

/// What accepting on a listening socket gave.
public enum Accepted: Hashable, Sendable {
    /// A new connection, non-blocking and close-on-exec.
    case connection(Int32)
    /// None is waiting.
    case none
    /// The process or the system is out of descriptors: the connections wait in the backlog.
    case outOfDescriptors
    case failed(Int32)
}

extension Socket {
    /// accept4(2), EINTR retried (in the C shim).
    public static func accept(_ fd: Int32) -> Accepted {
        let client = cdns_accept(fd)
        if client >= 0 { return .connection(client) }
        let error = errno
        if error == EAGAIN || error == EWOULDBLOCK { return .none }
        if error == EMFILE || error == ENFILE { return .outOfDescriptors }
        return .failed(error)
    }

    /// connect(2) of a non-blocking socket: `.done(0)` connected, `.wouldBlock` under way (the
    /// socket turns writable when it is done; SO_ERROR says how), or the error.
    public static func connect(_ fd: Int32, to address: SocketAddress) -> IOResult {
        while true {
            if address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 { return .done(0) }
            let error = errno
            if error == EINTR { continue }
            if error == EINPROGRESS || error == EAGAIN { return .wouldBlock }
            return .failed(error)
        }
    }

    /// The pending error of a socket (SO_ERROR): how a connection under way ended.
    public static func pendingError(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error
    }
}

extension Socket {
    /// read(2) of any descriptor (an inotify descriptor, a pipe), without blocking when it is
    /// non-blocking.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        retrying { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }
}
