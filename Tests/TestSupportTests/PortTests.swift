import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Servers told their port before they bind it start again elsewhere when it was taken in
/// between; a closed port refuses for as long as it is held.
@Suite struct PortTests {
    /// A TCP listener on 127.0.0.1 at a port of the kernel's choice, standing for whoever took
    /// the port between the asking and etcd's binding.
    static func taken() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let port = bindLoopback(fd)
        listen(fd, 1)
        return (fd, port)
    }

    @Test func etcdStartsOnAnotherPortWhenItsPortWasTaken() async throws {
        try await offThePool { checks in
            guard EtcdCluster.executable != nil else {
                checks.that(false, "etcd is not installed (Debian: etcd-server; .ci/run installs it)")
                return
            }
            let holder = Self.taken()
            defer { close(holder.fd) }
            var first = true
            let cluster = try EtcdCluster(size: 1) {
                defer { first = false }
                return first ? holder.port : freePort()
            }
            defer { cluster.stop() }
            checks.that(cluster.members[0].clientPort != holder.port, "the taken port is not the member's")
            checks.that(cluster.waitUntilHealthy(seconds: 30), "the member started on other ports answers")
        }
    }

    @Test func aClosedPortRefusesWhileHeld() throws {
        let closed = ClosedPort()
        defer { closed.close() }
        try #require(closed.port != 0)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = closed.port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(result == -1 && errno == ECONNREFUSED)
        // Nobody else can listen there meanwhile.
        let other = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(other) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(other, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == -1 && errno == EADDRINUSE)
    }
}
