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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nodes-\(UUID().uuidString)")
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
