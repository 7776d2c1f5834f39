import DNSAuthority
import KubernetesDNS
import DNSServer
import DNSWire
import DispatchSockets
import Foundation
import Logging
import NetAddress
import ServiceRegistry
import Testing
import TestSupport

let manifests = """
    apiVersion: v1
    kind: Service
    metadata: {name: kubernetes, namespace: default}
    spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-0, namespace: default, labels: {app: web}}
    spec: {containers: [{name: c}]}
    status: {podIP: 10.244.1.10}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: big, namespace: default}
    spec: {clusterIP: None, selector: {app: big}, ports: [{name: http, port: 80}]}
    """ + (1...80).map { """

    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: big-\($0), namespace: default, labels: {app: big}}
    spec: {containers: [{name: c}]}
    status: {podIP: 10.244.9.\($0)}
    """ }.joined()

/// A running server on loopback, port chosen by the kernel.
/// A test server that bound no address (its log says why).
struct NotBound: Error, CustomStringConvertible {
    var description: String { "the DNS server bound no address" }
}

final class RunningServer: Sendable {
    let task: Task<Void, any Error>
    let addresses: [SocketAddress]
    let registry: Registry
    let cluster: ClusterAuthority
    let server: DNSServer
    /// The server's clock (TCP idle timeouts): tests advance it instead of waiting.
    let clock = ManualClock()

    init(addresses requested: [SocketAddress] = [SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)],
         allowTransfer: [IPPrefix] = []) async throws {
        let registry = try Registry()
        for entry in Manifest.decode(manifests) { try await registry.apply(try entry.result.get()) }
        registry.markLoaded()
        let cluster = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR]),
                                       snapshot: registry.snapshot())
        let server = DNSServer(configuration: .init(addresses: requested, clock: clock),
                               responder: Responder(catalog: Catalog(cluster.authorities), allowTransfer: allowTransfer),
                               logger: Logger(label: "test"))
        task = Task { try await server.run() }
        addresses = await server.boundAddresses
        // A server that could not bind has none: the test fails here, not on an empty list.
        guard !addresses.isEmpty else { task.cancel(); throw NotBound() }
        self.registry = registry
        self.cluster = cluster
        self.server = server
    }

    var port: UInt16 { addresses[0].port }

    deinit { task.cancel() }
}

/// Runs a command line tool and returns its standard output (bounded by the tool's own timeouts).
func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The header flags dig or kdig printed (`;; flags: qr aa tc rd; QUERY: ...`).
func flags(_ output: String) -> Set<String> {
    for line in output.split(separator: "\n") where line.lowercased().contains("flags:") && line.contains("QUERY") {
        let after = line.lowercased().components(separatedBy: "flags:")[1]
        return Set(after.split(separator: ";")[0].split(separator: " ").map(String.init))
    }
    return []
}

/// Whitespace-separated fields of the first line.
func fields(_ output: String) -> [String] {
    (output.split(separator: "\n").first ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
}

func toolAvailable(_ tool: String) -> Bool { (try? run("which", [tool]).status) == 0 }

@Suite(.serialized) struct DigTests {
    func dig(_ server: RunningServer, _ arguments: [String]) throws -> String {
        #expect(toolAvailable("dig"), "dig is not installed (Debian: bind9-dnsutils; .ci/run installs it)")
        return try run("dig", ["@127.0.0.1", "-p", String(server.port), "+time=5", "+tries=2"] + arguments).output
    }

    @Test func udpAndTCP() async throws {
        let server = try await RunningServer()
        #expect(try dig(server, ["+short", "kubernetes.default.svc.cluster.local"]) == "10.96.0.1\n")
        #expect(try dig(server, ["+short", "+tcp", "web.default.svc.cluster.local"]) == "10.96.0.10\n")
        #expect(try dig(server, ["+short", "_http._tcp.web.default.svc.cluster.local", "SRV"]) == "0 100 80 web.default.svc.cluster.local.\n")
        let nx = try dig(server, ["+norec", "nope.default.svc.cluster.local"])
        #expect(nx.contains("status: NXDOMAIN"))
        #expect(flags(nx) == ["qr", "aa"], "+norec: no rd; no ra, no recursion offered")
        #expect(nx.contains("ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"))
        let nodata = try dig(server, ["web.default.svc.cluster.local", "AAAA"])
        #expect(nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0, AUTHORITY: 1"))
    }

    @Test func truncationAndTCPFallback() async throws {
        let server = try await RunningServer()
        // dig retries over TCP on TC by default: all 80 addresses arrive.
        let all = try dig(server, ["+short", "big.default.svc.cluster.local"])
        #expect(all.split(separator: "\n").count == 80)
        let truncated = try dig(server, ["+ignore", "+bufsize=512", "big.default.svc.cluster.local"])
        #expect(flags(truncated).contains("tc"))
        let size = truncated.components(separatedBy: "MSG SIZE  rcvd: ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(size > 400 && size <= 512, "the largest partial answer that fits 512 bytes, got \(size)")
        let noEDNS = try dig(server, ["+ignore", "+noedns", "big.default.svc.cluster.local"])
        #expect(flags(noEDNS).contains("tc"))
    }

    @Test func pipelinedQueriesOnOneConnection() async throws {
        let server = try await RunningServer()
        let output = try dig(server, ["+tcp", "+keepopen", "+short",
                                      "kubernetes.default.svc.cluster.local", "web.default.svc.cluster.local",
                                      "10-244-1-10.web.default.svc.cluster.local"])
        #expect(output == "10.96.0.1\n10.96.0.10\n10.244.1.10\n")
    }

    @Test func caseIsEchoed() async throws {
        let server = try await RunningServer()
        let output = try dig(server, ["+noall", "+answer", "KuBeRnEtEs.DeFaUlT.sVc.ClUsTeR.lOcAl"])
        #expect(fields(output) == ["KuBeRnEtEs.DeFaUlT.sVc.ClUsTeR.lOcAl.", "5", "IN", "A", "10.96.0.1"])
    }

    @Test func registryChangesAreServedAtOnce() async throws {
        let server = try await RunningServer()
        try await server.registry.apply(.service(Service(metadata: ObjectMeta(name: "new", namespace: "default"),
                                                   spec: { var s = Service.Spec(); s.clusterIP = "10.96.0.77"; s.ports = [.init(port: 80)]; return s }())))
        server.cluster.update(server.registry.snapshot())
        #expect(try dig(server, ["+short", "new.default.svc.cluster.local"]) == "10.96.0.77\n")
    }
}

@Suite(.serialized) struct IPv6Tests {
    @Test(.enabled(if: (try? run("sh", ["-c", "test -f /proc/net/if_inet6 && grep -q 00000000000000000000000000000001 /proc/net/if_inet6"]).status) == 0,
                   "needs ::1 on the loopback interface"))
    func udpAndTCPOverIPv6() async throws {
        let server = try await RunningServer(addresses: [SocketAddress(address: IPAddress("::1")!, port: 0)])
        let port = String(server.port)
        #expect(try run("dig", ["@::1", "-p", port, "+short", "+time=2", "+tries=1", "kubernetes.default.svc.cluster.local"]).output == "10.96.0.1\n")
        #expect(try run("dig", ["@::1", "-p", port, "+short", "+tcp", "+time=2", "+tries=1", "web.default.svc.cluster.local"]).output == "10.96.0.10\n")
    }
}

@Suite(.serialized) struct TransferTests {
    @Test func axfrForAllowedClientsOnly() async throws {
        let allowed = try await RunningServer(allowTransfer: [try IPPrefix(parsing: "127.0.0.0/8")])
        let output = try run("dig", ["@127.0.0.1", "-p", String(allowed.port), "+time=2", "+tries=1", "+noall", "+answer",
                                     "AXFR", "cluster.local"]).output
        let lines = output.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
        #expect(lines.first?[3] == "SOA" && lines.last?[3] == "SOA", "SOA first and last")
        #expect(lines.contains { $0.first == "kubernetes.default.svc.cluster.local." && $0.last == "10.96.0.1" })
        #expect(lines.count > 80, "every record: \(lines.count)")

        let refused = try await RunningServer(allowTransfer: [try IPPrefix(parsing: "10.0.0.0/8")])
        let denied = try run("dig", ["@127.0.0.1", "-p", String(refused.port), "+time=2", "+tries=1", "AXFR", "cluster.local"]).output
        #expect(denied.contains("Transfer failed"))
        // Over UDP a transfer is always refused, even for an allowed client.
        let axfr = Message(header: Header(id: 9), questions: [Question(name: try DomainName("cluster.local."), type: .axfr)]).encoded()
        let reply = try #require(Client.udp(axfr, port: allowed.port, timeout: 2000))
        #expect(try Message(decoding: reply).rcode == .refused)
    }
}

@Suite(.serialized) struct KdigTests {
    @Test func udpTCPAndBufsize() async throws {
        #expect(toolAvailable("kdig"), "kdig is not installed (Debian: knot-dnsutils; .ci/run installs it)")
        let server = try await RunningServer()
        let port = String(server.port)
        let udp = try run("kdig", ["@127.0.0.1", "-p", port, "+short", "+time=2", "+retry=0", "kubernetes.default.svc.cluster.local"])
        #expect(udp.output == "10.96.0.1\n")
        let tcp = try run("kdig", ["@127.0.0.1", "-p", port, "+tcp", "+short", "+time=2", "+retry=0", "db.default.svc.cluster.local"])
        #expect(tcp.output.isEmpty, "no such service: no answer lines")
        let big = try run("kdig", ["@127.0.0.1", "-p", port, "+bufsize=1232", "+ignore", "+time=2", "+retry=0", "big.default.svc.cluster.local"])
        #expect(flags(big.output).contains("tc"), "\(big.output)")
    }
}
