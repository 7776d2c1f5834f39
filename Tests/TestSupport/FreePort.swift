#if canImport(Glibc)
import Glibc
#endif
import Synchronization

private let nextPort = Atomic<Int>(0)

/// A loopback port that is free for TCP and UDP on 127.0.0.1 at the moment of asking, for a
/// server that must be told its port before it binds (Knot's and etcd's configurations), or is
/// restarted on the same one. Whoever starts such a server starts it again on another port when
/// it exits saying the address is in use; servers that can bind port 0 and say which port they
/// got are given port 0 instead. It is taken below Linux's ephemeral range (32768 and up): a
/// port from that range can be taken between the asking and the binding by any client socket
/// another test connects, which is how a restarted server used to find its port gone.
public func freePort() -> UInt16 {
    // Each process starts at its own place in 10000..<32000 and walks on from there, so that
    // tests running at once do not ask for the same ports.
    _ = nextPort.compareExchange(expected: 0, desired: 10_000 + Int(getpid() % 200) * 110, ordering: .relaxed)
    for _ in 0..<22_000 {
        let candidate = nextPort.wrappingAdd(1, ordering: .relaxed).oldValue
        let port = UInt16(10_000 + (candidate - 10_000) % 22_000)
        if isBindable(port, type: SOCK_STREAM) && isBindable(port, type: SOCK_DGRAM) { return port }
    }
    return 0
}

private func isBindable(_ port: UInt16, type: __socket_type) -> Bool {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// Binds `fd` to 127.0.0.1 on a port of the kernel's choice; the port, or 0 when it cannot.
public func bindLoopback(_ fd: Int32) -> UInt16 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return bound ? UInt16(bigEndian: address.sin_port) : 0
}

/// A TCP port on 127.0.0.1 where a connection is refused for as long as this is open: a socket
/// holds the port without listening, so no server of another test can be given it meanwhile
/// (as one could be a port found free and closed again).
public final class ClosedPort: @unchecked Sendable {
    public let port: UInt16
    private let fd: Int32

    public init() {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        port = bindLoopback(fd)
    }

    public func close() { _ = Glibc.close(fd) }
}
