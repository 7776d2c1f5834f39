import DNSAuthority
import DNSResolver
import DNSServer
import DNSWire
import DispatchSockets
import Foundation
import KubernetesDNS
import Logging
import NetAddress
import ServiceRegistry
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The pods that send the autopath tests' queries, each from its own loopback address.
let autopathPods = """
    apiVersion: v1
    kind: Service
    metadata: {name: db, namespace: other}
    spec: {clusterIP: 10.96.0.20, ports: [{name: pg, port: 5432}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: alias, namespace: default}
    spec: {type: ExternalName, externalName: alias.upstream.test}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: client, namespace: default}
    spec: {containers: [{name: c}]}
    status: {podIP: 127.0.0.2}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: client, namespace: other}
    spec: {containers: [{name: c}]}
    status: {podIP: 127.0.0.3}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: node-agent, namespace: default}
    spec: {hostNetwork: true, dnsPolicy: ClusterFirstWithHostNet, containers: [{name: c}]}
    status: {podIP: 127.0.0.4}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: leaving, namespace: default}
    spec: {containers: [{name: c}]}
    status: {podIP: 127.0.0.5}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: arriving, namespace: other}
    spec: {containers: [{name: c}]}
    status: {podIP: 127.0.0.5}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: own-resolver, namespace: default}
    spec: {dnsPolicy: Default, containers: [{name: c}]}
    status: {podIP: 127.0.0.6}
    """

/// Every query the server answered, by name and type.
final class QueryTally: QueryObserver {
    let seen = Mutex<[String]>([])
    func now() -> UInt64 { 1 }
    var wantsClient: Bool { false }
    func dropped() {}
    func answered(reply: UnsafeRawBufferPointer, query: UnsafeRawBufferPointer, transport: Responder.Transport,
                  client: SocketAddress?, since started: UInt64) {
        guard let message = try? Message(decoding: Array(query)), let question = message.questions.first else { return }
        let line = "\(question.name.description.lowercased()) \(question.type)"
        seen.withLock { $0.append(line) }
    }
    var queries: [String] { seen.withLock { $0 } }
    func reset() { seen.withLock { $0 = [] } }
}

/// Our server with autopath on, forwarding to Knot (`upstreamZone`); the nodes' search domain
/// is `upstream.test`.
final class AutopathServer: Sendable {
    let task: Task<Void, any Error>
    let addresses: [SocketAddress]
    let registry: Registry
    let cluster: ClusterAuthority
    let resolver: UpstreamResolver
    let autopath: Autopath
    let tally = QueryTally()

    init(upstream: SocketAddress, extraManifests: String = autopathPods, autopathOn: Bool = true,
         listen: SocketAddress = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)) async throws {
        registry = try Registry()
        for entry in Manifest.decode(manifests + "\n---\n" + extraManifests) { try await registry.apply(try entry.result.get()) }
        registry.markLoaded()
        cluster = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR]),
                                   snapshot: registry.snapshot())
        var configuration = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [upstream])])
        configuration.readTimeout = .milliseconds(400)
        configuration.deadline = .milliseconds(1200)
        resolver = UpstreamResolver(configuration: configuration)
        autopath = Autopath(pods: cluster, hostDomains: [try DomainName("upstream.test.")])
        let responder = Responder(catalog: Catalog(cluster.authorities), recursion: RecursionPolicy(),
                                  autopath: autopathOn ? autopath : nil)
        let server = DNSServer(configuration: .init(addresses: [listen]),
                               handler: QueryHandler(responder: responder, resolver: resolver, observer: tally), logger: Logger(label: "test"))
        task = Task { try await server.run() }
        addresses = await server.boundAddresses
    }

    var port: UInt16 { addresses[0].port }

    func ask(_ name: String, _ type: RecordType, from source: String, tcp: Bool = false) throws -> Message {
        let query = Message(header: Header(id: UInt16.random(in: 1...65535), isRecursionDesired: true),
                            questions: [Question(name: try DomainName(name), type: type)], edns: EDNS()).encoded()
        if tcp {
            let fd = Client.tcpConnect(port: port, from: source)
            defer { close(fd) }
            let framed = Client.framed(query)
            _ = send(fd, framed, framed.count, 0)
            return try Message(decoding: try #require(Client.tcpRead(fd)))
        }
        return try Message(decoding: try #require(Client.udp(query, port: port, timeout: 3000, from: source)))
    }

    deinit { task.cancel() }
}

@Suite(.serialized) struct AutopathTests {
    /// (client address, question, type) → rcode and answer records in zone-file syntax.
    /// 127.0.0.2 is a pod of `default`, .3 of `other`; .1 is no pod, .4 a hostNetwork pod on
    /// its node's address, .5 held by pods of two namespaces, .6 a pod with its own resolver.
    static let cases: [(from: String, name: String, type: RecordType, rcode: ResponseCode, answers: [String])] = [
        // An external name written short: the cluster's three names do not exist, the node's
        // search domain has it.
        ("127.0.0.2", "www.default.svc.cluster.local.", .a, .noError,
         ["www.default.svc.cluster.local. 300 IN CNAME www.upstream.test.", "www.upstream.test. 300 IN A 192.0.2.1"]),
        ("127.0.0.2", "www.default.svc.cluster.local.", .aaaa, .noError,
         ["www.default.svc.cluster.local. 300 IN CNAME www.upstream.test.", "www.upstream.test. 300 IN AAAA 2001:db8::1"]),
        // A fully qualified external name with fewer than five dots: found as itself, last.
        ("127.0.0.2", "www.upstream.test.default.svc.cluster.local.", .a, .noError,
         ["www.upstream.test.default.svc.cluster.local. 300 IN CNAME www.upstream.test.", "www.upstream.test. 300 IN A 192.0.2.1"]),
        // The client's letters stay its own.
        ("127.0.0.2", "WWW.Default.svc.cluster.local.", .a, .noError,
         ["WWW.Default.svc.cluster.local. 300 IN CNAME WWW.upstream.test.", "WWW.upstream.test. 300 IN A 192.0.2.1"]),
        // An upstream CNAME chain comes whole behind ours.
        ("127.0.0.2", "alias.upstream.test.default.svc.cluster.local.", .a, .noError,
         ["alias.upstream.test.default.svc.cluster.local. 300 IN CNAME alias.upstream.test.",
          "alias.upstream.test. 300 IN CNAME www.upstream.test.", "www.upstream.test. 300 IN A 192.0.2.1"]),
        // A service of another namespace, written `db.other`.
        ("127.0.0.2", "db.other.default.svc.cluster.local.", .a, .noError,
         ["db.other.default.svc.cluster.local. 5 IN CNAME db.other.svc.cluster.local.", "db.other.svc.cluster.local. 5 IN A 10.96.0.20"]),
        // Found but without the type: NODATA behind the alias (the name exists; A and AAAA agree).
        ("127.0.0.2", "db.other.default.svc.cluster.local.", .aaaa, .noError,
         ["db.other.default.svc.cluster.local. 5 IN CNAME db.other.svc.cluster.local."]),
        // A name of the pod's own namespace is answered as ever.
        ("127.0.0.2", "web.default.svc.cluster.local.", .a, .noError, ["web.default.svc.cluster.local. 5 IN A 10.96.0.10"]),
        ("127.0.0.2", "web.default.svc.cluster.local.", .aaaa, .noError, []),
        // Nowhere: the ordinary NXDOMAIN, and the client walks on itself.
        ("127.0.0.2", "nothing.default.svc.cluster.local.", .a, .nameError, []),
        // The upstream refuses (Knot serves upstream.test only): what the name is, is not known.
        ("127.0.0.2", "api.example.com.default.svc.cluster.local.", .a, .nameError, []),
        // A CNAME question asks for the alias itself: not walked.
        ("127.0.0.2", "www.default.svc.cluster.local.", .cname, .nameError, []),
        // The search path is the pod's own namespace's.
        ("127.0.0.3", "www.default.svc.cluster.local.", .a, .nameError, []),
        ("127.0.0.3", "www.other.svc.cluster.local.", .a, .noError,
         ["www.other.svc.cluster.local. 300 IN CNAME www.upstream.test.", "www.upstream.test. 300 IN A 192.0.2.1"]),
        // Not a pod by its address: the ordinary answer.
        ("127.0.0.1", "www.default.svc.cluster.local.", .a, .nameError, []),
        ("127.0.0.4", "www.default.svc.cluster.local.", .a, .nameError, []),
        ("127.0.0.5", "www.default.svc.cluster.local.", .a, .nameError, []),
        ("127.0.0.6", "www.default.svc.cluster.local.", .a, .nameError, []),
    ]

    @Test func answersAlongThePodsSearchPathOverUDPAndTCP() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        for c in Self.cases {
            for tcp in [false, true] {
                let response = try server.ask(c.name, c.type, from: c.from, tcp: tcp)
                let label = "\(c.from) \(c.name) \(c.type) tcp=\(tcp)"
                #expect(response.rcode == c.rcode, "\(label)")
                #expect(response.answers.map(\.description) == c.answers, "\(label)")
                #expect(response.questions.first?.name.description == c.name, "\(label): the question as asked")
                if c.rcode == .nameError {
                    #expect(response.authorities.map(\.description).first?.hasPrefix("cluster.local. 5 IN SOA") == true,
                            "\(label): the cluster zone's own NXDOMAIN")
                }
            }
        }
    }

    @Test func countersSayWhatWasWalkedAndSaved() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        // A hit at the node's search domain: the client would have asked three names before it.
        _ = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(server.autopath.counters.hits == 1 && server.autopath.counters.roundTripsSaved == 3)
        #expect(server.autopath.counters.steps == 3)
        // A miss walks the whole path: svc.<zone>, <zone>, the node's domain, the name itself.
        _ = try server.ask("nothing.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(server.autopath.counters.misses == 1 && server.autopath.counters.steps == 3 + 4)
        // No pod, no walk.
        _ = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.1")
        #expect(server.autopath.counters.hits == 1 && server.autopath.counters.misses == 1 && server.autopath.counters.steps == 7)
    }

    @Test func aRepeatedLookupComesFromTheCacheWithoutAskingUpstreamAgain() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        let first = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
        let asked = server.resolver.cache.misses
        knot.stop()
        let second = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(second.answers.map(\.description) == first.answers.map(\.description))
        #expect(server.resolver.cache.misses == asked, "every step of the walk upstream is a cache hit")
    }

    @Test func aPodThatGoesAwayIsNoLongerWalkedFor() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        #expect(try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2").rcode == .noError)
        _ = try await server.registry.delete(ObjectKey(.pod, namespace: "default", name: "client"))
        server.cluster.update(server.registry.snapshot())
        #expect(try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2").rcode == .nameError)
    }
}
