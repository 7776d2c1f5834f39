import DispatchSockets
import Foundation
import NetAddress
import Testing
import TestSupport
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
        let directory = Scratch.url("resolv")
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
        let directory = Scratch.url("resolv")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let resolv = directory.appendingPathComponent("resolv.conf").path
        try "nameserver 127.0.0.153\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:1\n"
            .write(toFile: resolv, atomically: true, encoding: .utf8)
        let result = try run("unshare", ["-m", "sh", "-c", "mount --bind \(resolv) /etc/resolv.conf && exec getent hosts nope-service"])
        #expect(result.status == 2, "getent's exit status for a name not found: \(result.output)")
    }
}

/// glibc's resolver (getaddrinfo through `getent ahosts`: A and AAAA together) in a pod's
/// position: its resolv.conf's search path and ndots:5, its queries from 127.0.0.1, which is
/// the pod's address in the registry. With autopath, one query per address family reaches the
/// server for each name that exists anywhere on the search path; a name that exists nowhere
/// costs the same walk as without; a client that is not a pod sees no difference.
@Suite(.serialized, .enabled(if: getuid() == 0 && toolAvailable("unshare") && toolAvailable("getent") && toolAvailable("knotd"),
                             "needs root, unshare, getent and knotd"))
struct GlibcAutopathTests {
    static func pod(hostNetwork: Bool) -> String {
        autopathPods + """

            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: glibc-client, namespace: default}
            spec: {hostNetwork: \(hostNetwork), dnsPolicy: ClusterFirstWithHostNet, containers: [{name: c}]}
            status: {podIP: 127.0.0.1}
            """
    }

    /// name → the first address getent prints, and the queries the server receives from a pod
    /// with autopath and from a client that is not a pod.
    static let cases: [(name: String, address: String?, asPod: Int, notPod: Int)] = [
        ("www", "192.0.2.1", 2, 8),                 // the node's search domain (upstream.test)
        ("www.upstream.test", "192.0.2.1", 2, 10),  // an external name, found as itself
        ("web", "10.96.0.10", 2, 2),                // a service of the pod's namespace
        ("db.other", "10.96.0.20", 2, 4),           // a service of another namespace
        // Nowhere: the client's own walk, as ever (the bare name twice: Knot refuses it, and
        // glibc tries a REFUSED question again).
        ("nothing", nil, 12, 12),
    ]

    @Test func onePodQueryPerAddressFamily() async throws {
        let knot = try KnotUpstream()
        let listen = SocketAddress(address: IPAddress("127.0.0.154")!, port: 53)
        let directory = Scratch.url("resolv")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let resolv = directory.appendingPathComponent("resolv.conf").path
        try """
            nameserver 127.0.0.154
            search default.svc.cluster.local svc.cluster.local cluster.local upstream.test
            options ndots:5 timeout:2 attempts:2

            """.write(toFile: resolv, atomically: true, encoding: .utf8)
        for asPod in [true, false] {
            let server = try await AutopathServer(upstream: knot.address, extraManifests: Self.pod(hostNetwork: !asPod), listen: listen)
            for c in Self.cases {
                server.tally.reset()
                let result = try run("unshare", ["-m", "sh", "-c", "mount --bind \(resolv) /etc/resolv.conf && exec getent ahosts \(c.name)"])
                let label = "\(c.name) as \(asPod ? "a pod" : "no pod"): \(result.output) \(server.tally.queries)"
                if let address = c.address {
                    #expect(result.status == 0, "\(label)")
                    #expect(fields(result.output).first == address, "\(label)")
                } else {
                    #expect(result.status == 2, "getent's exit status for a name not found: \(label)")
                }
                #expect(server.tally.queries.count == (asPod ? c.asPod : c.notPod), "\(label)")
            }
            server.task.cancel()
            _ = try? await server.task.value
        }
    }
}
