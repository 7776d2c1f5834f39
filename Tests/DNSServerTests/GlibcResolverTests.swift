import DispatchSockets
import Foundation
import NetAddress
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// glibc's stub resolver (getent) against the server, through a resolv.conf with the cluster
/// search list, bind-mounted in a private mount namespace. glibc only speaks to port 53, so the
/// server listens on 127.0.0.153:53, which needs root.
@Suite(.serialized, .enabled(if: getuid() == 0 && toolAvailable("unshare") && toolAvailable("getent"),
                             "needs root, unshare and getent (a private mount namespace and port 53)"))
struct GlibcResolverTests {
    @Test(arguments: [
        ("web", "10.96.0.10"),
        ("web.default", "10.96.0.10"),
        ("web.default.svc", "10.96.0.10"),
        ("kubernetes.default.svc.cluster.local", "10.96.0.1"),
    ])
    func searchListResolves(_ name: String, _ address: String) async throws {
        let server = try await RunningServer(addresses: [SocketAddress(address: IPAddress("127.0.0.153")!, port: 53)])
        #expect(server.port == 53)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resolv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let resolv = directory.appendingPathComponent("resolv.conf").path
        try """
            nameserver 127.0.0.153
            search default.svc.cluster.local svc.cluster.local cluster.local
            options ndots:5 timeout:1 attempts:2

            """.write(toFile: resolv, atomically: true, encoding: .utf8)
        let script = "mount --bind \(resolv) /etc/resolv.conf && exec getent hosts \(name)"
        let result = try run("unshare", ["-m", "sh", "-c", script])
        #expect(result.status == 0, "\(result.output)")
        let fields = result.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        #expect(fields.first == address, "\(result.output)")
        #expect(fields.dropFirst().first?.hasSuffix(".svc.cluster.local") == true, "\(result.output)")
    }

    @Test func unknownNameFails() async throws {
        let server = try await RunningServer(addresses: [SocketAddress(address: IPAddress("127.0.0.153")!, port: 53)])
        _ = server
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("resolv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let resolv = directory.appendingPathComponent("resolv.conf").path
        try "nameserver 127.0.0.153\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:1\n"
            .write(toFile: resolv, atomically: true, encoding: .utf8)
        let result = try run("unshare", ["-m", "sh", "-c", "mount --bind \(resolv) /etc/resolv.conf && exec getent hosts nope-service"])
        #expect(result.status == 2, "getent's exit status for a name not found: \(result.output)")
    }
}
