import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two nodes in network namespaces of their own sharing one registry through etcd, which runs in
/// a third namespace linked to each node by a veth pair: a NodePort defined once is opened on
/// both nodes and relays to endpoints on either; a node cut off from etcd (its link down) keeps
/// answering and catches up when the link returns.
@Suite(.serialized, .enabled(if: namespacesAvailable() && EtcdCluster.executable != nil,
                             "needs root with CAP_NET_ADMIN, iproute2 and etcd (Debian: etcd-server)"))
struct EtcdNodesTests {
    @Test func nodesShareOneRegistryAndSurviveAPartition() async throws {
        try await offThePool { checks in
            let suffix = "\(getpid() % 10000)"
            let a = "cdns-ea-\(suffix)", b = "cdns-eb-\(suffix)", e = "cdns-ee-\(suffix)"
            defer { for namespace in [a, b, e] { sh("ip netns del \(namespace)") } }
            // Nodes: A 10.77.0.1 and B 10.77.0.2. etcd: 10.79.1.1 towards A, 10.79.2.1 towards B.
            var commands = ["ip netns add \(a)", "ip netns add \(b)", "ip netns add \(e)",
                            "ip link add na\(suffix) netns \(a) type veth peer name nb\(suffix) netns \(b)",
                            "ip link add ea\(suffix) netns \(a) type veth peer name ae\(suffix) netns \(e)",
                            "ip link add eb\(suffix) netns \(b) type veth peer name be\(suffix) netns \(e)",
                            "ip -n \(a) addr add 10.77.0.1/24 dev na\(suffix)", "ip -n \(b) addr add 10.77.0.2/24 dev nb\(suffix)",
                            "ip -n \(a) addr add 10.79.1.2/24 dev ea\(suffix)", "ip -n \(e) addr add 10.79.1.1/24 dev ae\(suffix)",
                            "ip -n \(b) addr add 10.79.2.2/24 dev eb\(suffix)", "ip -n \(e) addr add 10.79.2.1/24 dev be\(suffix)"]
            for namespace in [a, b, e] { commands.append("ip -n \(namespace) link set lo up") }
            for (namespace, link) in [(a, "na"), (a, "ea"), (b, "nb"), (b, "eb"), (e, "ae"), (e, "be")] {
                commands.append("ip -n \(namespace) link set \(link)\(suffix) up")
            }
            for command in commands {
                let result = sh(command)
                try checks.require(result.status == 0, "\(command): \(result.output)")
            }
            let directory = Scratch.url("etcd-nodes")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            func run(_ namespace: String, _ executable: String, _ arguments: [String]) throws -> ChildProcess {
                let process = ChildProcess()
                process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
                process.arguments = ["netns", "exec", namespace, executable] + arguments
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                return process
            }
            let etcd = try run(e, EtcdCluster.executable!, [
                "--name", "e0", "--data-dir", directory.appendingPathComponent("etcd").path,
                "--listen-client-urls", "http://10.79.1.1:2379,http://10.79.2.1:2379",
                "--advertise-client-urls", "http://10.79.1.1:2379",
                "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                "--initial-cluster", "e0=http://127.0.0.1:2380", "--log-level", "error"])
            defer { if etcd.isRunning { kill(etcd.processIdentifier, SIGKILL) } }
            // The manifests of each node, applied through etcd: the service is defined on A only.
            func manifests(_ node: String, _ text: String) throws -> String {
                let path = directory.appendingPathComponent(node)
                try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
                try text.write(to: path.appendingPathComponent("objects.yaml"), atomically: true, encoding: .utf8)
                return path.path
            }
            let manifestsA = try manifests("a", """
                apiVersion: v1
                kind: Service
                metadata: {name: nodedns, namespace: default}
                spec: {type: NodePort, clusterIP: 10.96.0.77, ports: [{name: dns, port: 53, protocol: TCP, nodePort: 30053}]}
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: nodedns-1, namespace: default, labels: {kubernetes.io/service-name: nodedns}}
                addressType: IPv4
                ports: [{name: dns, port: 5353, protocol: TCP}]
                endpoints: [{addresses: ["10.77.0.1"]}, {addresses: ["10.77.0.2"]}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: peers, namespace: default}
                spec: {clusterIP: None, ports: [{name: dns, port: 5353}]}
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: peers-1, namespace: default, labels: {kubernetes.io/service-name: peers}}
                addressType: IPv4
                ports: [{name: dns, port: 5353}]
                endpoints: [{addresses: ["10.77.0.1"], nodeName: node-a}, {addresses: ["10.77.0.2"], nodeName: node-b}]
                """)
            let manifestsB = try manifests("b", "")
            func node(_ namespace: String, name: String, address: String, etcd: String, manifests: String) throws -> ChildProcess {
                try run(namespace, Tool.executable.path, [
                    "serve", "--dns", "\(address):5353", "--manifests", manifests, "--forwarder", "--node-name", name,
                    "--node-address", address, "--etcd", etcd, "--http", "\(address):9153", "--zones", "none", "--resolv-conf", "none",
                    "--lameduck", "0s", "--log-level", "error", "--node-lease-duration", "4s"])
            }
            let nodeA = try node(a, name: "node-a", address: "10.77.0.1", etcd: "http://10.79.1.1:2379", manifests: manifestsA)
            let nodeB = try node(b, name: "node-b", address: "10.77.0.2", etcd: "http://10.79.2.1:2379", manifests: manifestsB)
            defer { for process in [nodeA, nodeB] where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            func dig(from namespace: String, _ server: String, port: Int, _ name: String, tcp: Bool = false) -> String {
                sh("ip netns exec \(namespace) dig \(tcp ? "+tcp " : "")+short +time=1 +tries=1 @\(server) -p \(port) \(name)").output
            }
            let name = "nodedns.default.svc.cluster.local"
            // Both nodes serve the service A defined, and both open its node port: every relayed
            // answer came from a DNS server on one node or the other.
            checks.that(eventually(60) { dig(from: b, "10.77.0.2", port: 5353, name) == "10.96.0.77\n" })
            for (from, to) in [(a, "10.77.0.2"), (b, "10.77.0.1"), (a, "10.77.0.1"), (b, "10.77.0.2")] {
                checks.that(eventually(20) { dig(from: from, to, port: 30053, name, tcp: true) == "10.96.0.77\n" }, "\(from) → \(to):30053")
            }

            // A cut off from etcd: it keeps answering what it has; B goes on changing the registry.
            sh("ip -n \(a) link set ea\(suffix) down")
            try """
                apiVersion: v1
                kind: Service
                metadata: {name: later, namespace: default}
                spec: {clusterIP: 10.96.0.78, ports: [{port: 80}]}
                """.write(toFile: manifestsB + "/objects.yaml", atomically: true, encoding: .utf8)
            checks.that(eventually(20) { dig(from: b, "10.77.0.2", port: 5353, "later.default.svc.cluster.local") == "10.96.0.78\n" })
            checks.that(dig(from: a, "10.77.0.1", port: 5353, name) == "10.96.0.77\n", "A answers while cut off")
            checks.that(dig(from: a, "10.77.0.1", port: 5353, "later.default.svc.cluster.local") == "", "A cannot know yet")
            // Nothing tells A its link is gone: its pings on the connection to etcd go unanswered,
            // and within 15 s it knows (and says so on /metrics).
            func available(_ namespace: String, _ address: String) -> String {
                sh("ip netns exec \(namespace) curl -s --max-time 2 http://\(address):9153/metrics | grep '^clusterdns_registry_store_available '").output
            }
            checks.that(available(a, "10.77.0.1") == "clusterdns_registry_store_available 1.0\n")
            checks.that(eventually(30) { available(a, "10.77.0.1") == "clusterdns_registry_store_available 0.0\n" })
            checks.that(dig(from: a, "10.77.0.1", port: 5353, name) == "10.96.0.77\n", "A still answers")
            // The link back: A catches up by itself.
            sh("ip -n \(a) link set ea\(suffix) up")
            checks.that(eventually(40) { dig(from: a, "10.77.0.1", port: 5353, "later.default.svc.cluster.local") == "10.96.0.78\n" })
            checks.that(available(a, "10.77.0.1") == "clusterdns_registry_store_available 1.0\n")

            // Each node holds its lease: the headless service lists the endpoints on both. B killed
            // without a word: its lease lapses (4 s here) and A stops answering with B's endpoint.
            let peers = "peers.default.svc.cluster.local"
            checks.that(eventually(20) { dig(from: a, "10.77.0.1", port: 5353, peers) == "10.77.0.1\n10.77.0.2\n" })
            kill(nodeB.processIdentifier, SIGKILL)
            checks.that(eventually(20) { dig(from: a, "10.77.0.1", port: 5353, peers) == "10.77.0.1\n" })
        }
    }
}
