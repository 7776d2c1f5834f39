import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command (bounded by the commands' own timeouts); its status and standard output.
@discardableResult
func sh(_ command: String) -> (status: Int32, output: String) {
    guard let result = try? Tool.runRaw("/bin/sh", ["-c", command + " 2>&1"]) else { return (-1, "") }
    return (result.status, result.stdout)
}

/// Network namespaces can be made here (root with CAP_NET_ADMIN, and iproute2).
func namespacesAvailable() -> Bool {
    let name = "cdns-probe-\(getpid())"
    guard sh("ip netns add \(name)").status == 0 else { return false }
    sh("ip netns del \(name)")
    return true
}

/// Two "nodes" in network namespaces of their own, joined by a veth pair (10.77.0.1 and
/// 10.77.0.2), each running `clusterdns serve --forwarder`. A NodePort service on both whose
/// endpoint is the *other* node's DNS server over TCP, so every answer crossed nodes. Node A
/// runs the interface mode: the ClusterIP is assigned to its interface through netlink and taken
/// away again on shutdown.
@Suite(.serialized, .enabled(if: namespacesAvailable(), "needs root with CAP_NET_ADMIN and iproute2 to create network namespaces"))
struct NodesTests {
    @Test func nodePortsReachEndpointsOnTheOtherNode() throws {
        let suffix = "\(getpid() % 10000)"
        let a = "cdns-a-\(suffix)", b = "cdns-b-\(suffix)"
        let va = "cva\(suffix)", vb = "cvb\(suffix)"
        defer {
            sh("ip netns del \(a)")
            sh("ip netns del \(b)")
        }
        for command in ["ip netns add \(a)", "ip netns add \(b)",
                        "ip link add \(va) netns \(a) type veth peer name \(vb) netns \(b)",
                        "ip -n \(a) addr add 10.77.0.1/24 dev \(va)", "ip -n \(b) addr add 10.77.0.2/24 dev \(vb)",
                        "ip -n \(a) link set lo up", "ip -n \(b) link set lo up",
                        "ip -n \(a) link set \(va) up", "ip -n \(b) link set \(vb) up"] {
            let result = sh(command)
            try #require(result.status == 0, "\(command): \(result.output)")
        }
        let directory = Scratch.url("nodes")
        defer { try? FileManager.default.removeItem(at: directory) }
        func manifests(endpoint: String, node: String) throws -> String {
            let path = directory.appendingPathComponent(node)
            try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
            try """
                apiVersion: v1
                kind: Service
                metadata: {name: nodedns, namespace: default}
                spec:
                  type: NodePort
                  clusterIP: 10.96.0.77
                  ports: [{name: dns, port: 53, protocol: TCP, nodePort: 30053}]
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: nodedns-1, namespace: default, labels: {kubernetes.io/service-name: nodedns}}
                addressType: IPv4
                ports: [{name: dns, port: 5353, protocol: TCP}]
                endpoints: [{addresses: ["\(endpoint)"]}]
                """.write(to: path.appendingPathComponent("svc.yaml"), atomically: true, encoding: .utf8)
            return path.path
        }
        func start(_ namespace: String, address: String, endpoint: String, extra: [String]) throws -> ChildProcess {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, Tool.executable.path, "serve", "--dns", "\(address):5353",
                                 "--manifests", try manifests(endpoint: endpoint, node: namespace), "--forwarder",
                                 "--node-address", address, "--http", "none", "--zones", "none", "--resolv-conf", "none",
                                 "--lameduck", "0s", "--log-level", "warning"] + extra
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let nodeA = try start(a, address: "10.77.0.1", endpoint: "10.77.0.2",
                              extra: ["--forwarder-mode", "interface", "--forwarder-interface", va])
        let nodeB = try start(b, address: "10.77.0.2", endpoint: "10.77.0.1", extra: [])
        defer {
            for node in [nodeA, nodeB] where node.isRunning { kill(node.processIdentifier, SIGKILL) }
        }
        let name = "nodedns.default.svc.cluster.local"
        func dig(from namespace: String, _ server: String, port: Int) -> String {
            sh("ip netns exec \(namespace) dig +tcp +short +time=1 +tries=1 @\(server) -p \(port) \(name)").output
        }
        // From B to A's node port: A relays to the DNS server on B.
        #expect(eventually(10) { dig(from: b, "10.77.0.1", port: 30053) == "10.96.0.77\n" })
        // From A to B's node port: B relays to the DNS server on A.
        #expect(eventually(10) { dig(from: a, "10.77.0.2", port: 30053) == "10.96.0.77\n" })
        // A's ClusterIP is on its interface (netlink) and answers there.
        #expect(sh("ip -n \(a) addr show dev \(va)").output.contains("10.96.0.77/32"))
        #expect(eventually(5) { dig(from: a, "10.96.0.77", port: 53) == "10.96.0.77\n" })
        // Shut down: the address goes with it.
        kill(nodeA.processIdentifier, SIGTERM)
        #expect(eventually(5) { !nodeA.isRunning })
        #expect(!sh("ip -n \(a) addr show dev \(va)").output.contains("10.96.0.77"))
    }

    /// Without the interface, the interface mode creates a dummy one; where the kernel has no
    /// dummy driver (as on the machine these tests were written on) it says so and exits.
    @Test func theInterfaceModeCreatesItsDummyInterfaceOrSaysWhyNot() throws {
        let namespace = "cdns-d-\(getpid() % 10000)"
        try #require(sh("ip netns add \(namespace)").status == 0)
        defer { sh("ip netns del \(namespace)") }
        sh("ip -n \(namespace) link set lo up")
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace, Tool.executable.path, "serve", "--dns", "127.0.0.1:5353", "--forwarder",
                             "--forwarder-mode", "interface", "--forwarder-interface", "cdnsdummy0", "--http", "none",
                             "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"]
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let dummies = sh("ip -n \(namespace) link add probe0 type dummy")
        if dummies.status == 0 {
            sh("ip -n \(namespace) link del probe0")
            #expect(eventually(10) { sh("ip -n \(namespace) link show cdnsdummy0").status == 0 })
            kill(process.processIdentifier, SIGTERM)
            #expect(eventually(5) { !process.isRunning })
        } else {
            #expect(eventually(10) { !process.isRunning })
            process.waitUntilExit()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus != 0)
            #expect(text.contains("this kernel has no dummy driver"), "\(text)")
        }
    }
}

/// A daemon listening on the wildcard addresses (0.0.0.0 and ::) of a network namespace whose
/// loopback holds several IPv4 and IPv6 addresses: every address answers over UDP and TCP, and
/// the UDP reply comes from the address asked (dig drops a reply from any other, so a wrong
/// source fails here); names outside the cluster go to an IPv6 upstream (a second daemon
/// serving a static zone on [fd00:53::1]:5300); an IPv6 ClusterIP relays through the forwarder
/// to an IPv6 endpoint.
@Suite(.serialized, .enabled(if: namespacesAvailable(), "needs root with CAP_NET_ADMIN and iproute2 to create network namespaces"))
struct WildcardAndIPv6Tests {
    @Test func everyAddressAnswersFromItselfAndIPv6GoesThroughEverything() async throws {
        try await offThePool { checks in try Self.wildcardAndIPv6(checks) }
    }

    static func wildcardAndIPv6(_ checks: Checks) throws {
        let namespace = "cdns-w-\(getpid() % 10000)"
        try checks.require(sh("ip netns add \(namespace)").status == 0)
        defer { sh("ip netns del \(namespace)") }
        for command in ["ip -n \(namespace) link set lo up",
                        "ip -n \(namespace) addr add 10.53.0.1/32 dev lo", "ip -n \(namespace) addr add 10.53.0.2/32 dev lo",
                        "ip -n \(namespace) addr add fd00:53::1/128 dev lo nodad", "ip -n \(namespace) addr add fd00:53::2/128 dev lo nodad",
                        "ip -n \(namespace) addr add fd00:96::10/128 dev lo nodad"] {
            let result = sh(command)
            try checks.require(result.status == 0, "\(command): \(result.output)")
        }
        let directory = Scratch.url("wildcard")
        defer { try? FileManager.default.removeItem(at: directory) }
        let zones = directory.appendingPathComponent("zones"), manifests = directory.appendingPathComponent("manifests")
        for path in [zones, manifests] { try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true) }
        try """
            $TTL 300
            @   IN SOA ns hostmaster 1 7200 900 1209600 60
                IN NS ns
            ns  IN A 192.0.2.53
            www IN A 192.0.2.1
            www IN AAAA 2001:db8::1
            """.write(to: zones.appendingPathComponent("upstream.test.zone"), atomically: true, encoding: .utf8)
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: v6, namespace: default}
            spec:
              ipFamilies: [IPv6]
              clusterIP: fd00:96::10
              ports: [{name: dns, port: 8053, protocol: TCP}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: v6-1, namespace: default, labels: {kubernetes.io/service-name: v6}}
            addressType: IPv6
            ports: [{name: dns, port: 5300, protocol: TCP}]
            endpoints: [{addresses: ["fd00:53::1"]}]
            """.write(to: manifests.appendingPathComponent("v6.yaml"), atomically: true, encoding: .utf8)
        func start(_ arguments: [String]) throws -> ChildProcess {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, Tool.executable.path, "serve", "--http", "none", "--resolv-conf", "none",
                                 "--lameduck", "0s", "--log-level", "warning"] + arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let upstream = try start(["--dns", "[fd00:53::1]:5300", "--zones", zones.path])
        let server = try start(["--dns", "0.0.0.0:53", "--dns", "[::]:53", "--upstream", "[fd00:53::1]:5300", "--zones", "none",
                                "--manifests", manifests.path, "--service-cidr", "10.96.0.0/12", "--service-cidr", "fd00:96::/112",
                                "--forwarder"])
        defer { for process in [upstream, server] where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func dig(_ arguments: String) -> String {
            sh("ip netns exec \(namespace) dig +short +time=1 +tries=1 \(arguments)").output
        }
        try checks.require(eventually(20) { dig("@10.53.0.1 AAAA v6.default.svc.cluster.local") == "fd00:96::10\n" }, "the daemon answers")
        // Each client asks from another address than the one it asks (the kernel's own choice
        // of source for the reply would be the client's address).
        for (address, client) in [("10.53.0.1", "10.53.0.2"), ("10.53.0.2", "10.53.0.1"), ("127.0.0.1", "10.53.0.1"),
                                  ("fd00:53::1", "fd00:53::2"), ("fd00:53::2", "fd00:53::1"), ("::1", "fd00:53::2")] {
            for transport in ["+notcp", "+tcp"] {
                let ask = "\(transport) -b \(client) @\(address)"
                checks.that(dig("\(ask) AAAA v6.default.svc.cluster.local") == "fd00:96::10\n", "\(ask)")
                checks.that(dig("\(ask) A www.upstream.test") == "192.0.2.1\n", "\(ask), forwarded")
            }
        }
        // The IPv6 ClusterIP relays to the IPv6 endpoint (the upstream daemon's TCP).
        checks.that(eventually(10) { dig("+tcp @fd00:96::10 -p 8053 AAAA www.upstream.test") == "2001:db8::1\n" })
        checks.that(server.isRunning && upstream.isRunning)
    }
}
