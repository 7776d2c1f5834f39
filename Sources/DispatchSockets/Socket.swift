#if canImport(Glibc)
import Glibc
#endif
import CShims

/// A system call that failed, with its errno: each call is wrapped once, here.
public struct SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// Thin, retrying wrappers over the socket calls the servers use.
public enum Socket {
    /// A non-blocking, close-on-exec socket bound to `address`; for UDP with the local-address
    /// control messages on, so replies leave from the address queries arrived at.
    public static func bind(_ address: SocketAddress, type: Int32, reusePort: Bool,
                            receiveBuffer: Int? = nil) throws(SocketError) -> Int32 {
        let fd = socket(address.family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", errno: errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, socklen_t(MemoryLayout<Int32>.size)) }
        if address.family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        if type == Int32(SOCK_DGRAM.rawValue) { _ = cdns_enable_pktinfo(fd, address.family) }
        let rc = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        guard rc == 0 else {
            let error = SocketError("bind \(address)", errno: errno)
            close(fd)
            throw error
        }
        if type == Int32(SOCK_STREAM.rawValue) {
            // Accepted connections inherit it (Linux): no setsockopt per connection.
            setNoDelay(fd)
            guard listen(fd, 1024) == 0 else {
                let error = SocketError("listen \(address)", errno: errno)
                close(fd)
                throw error
            }
        }
        return fd
    }

    /// Fails when another socket already holds `address` (a fixed port), even one that shares
    /// it with SO_REUSEPORT: our servers bind several SO_REUSEPORT sockets per address, and
    /// without this check a second daemon of the same user would silently join the group and
    /// take a share of the traffic. The probe sets no SO_REUSEPORT (and, for UDP, no
    /// SO_REUSEADDR; a TCP probe keeps SO_REUSEADDR so that old connections in TIME_WAIT do not
    /// count), binds and is closed at once.
    public static func claim(_ address: SocketAddress, type: Int32) throws(SocketError) {
        guard address.port != 0 else { return }
        let fd = socket(address.family, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", errno: errno) }
        defer { close(fd) }
        var on: Int32 = 1
        if type == Int32(SOCK_STREAM.rawValue) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        if address.family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        guard address.withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0 else {
            let transport = type == Int32(SOCK_STREAM.rawValue) ? "TCP" : "UDP"
            throw SocketError("bind \(address) (\(transport); is another server on it?)", errno: errno)
        }
    }

    /// TCP_NODELAY: small writes (DNS messages, relayed requests) leave at once.
    public static func setNoDelay(_ fd: Int32) {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The address of a connected socket's peer.
    public static func peerAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        return rc == 0 ? SocketAddress(storage) : nil
    }

    /// The address a socket is bound to (to learn the port the kernel chose for port 0).
    public static func localAddress(of fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? SocketAddress(storage) : nil
    }

    /// The CPUs this process may run on (its affinity mask, as taskset sets it), at least 1:
    /// how many sockets or loops make every core serve.
    public static var usableCores: Int { Int(cdns_usable_cores()) }
}
