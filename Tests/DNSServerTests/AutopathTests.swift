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
    func answered(reply: UnsafeRawBufferPointer, query: UnsafeRawBufferPointer, type: RecordType?, transport: Responder.Transport,
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

    /// `clock`: what ages the resolver's cache and the autopath memo (default: the system's).
    init(upstream: SocketAddress, extraManifests: String = autopathPods, autopathOn: Bool = true,
         listen: SocketAddress = SocketAddress(address: IPAddress("127.0.0.1")!, port: 0),
         clock: ManualClock? = nil) async throws {
        registry = try Registry()
        for entry in Manifest.decode(manifests + "\n---\n" + extraManifests) { try await registry.apply(try entry.result.get()) }
        registry.markLoaded()
        cluster = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR]),
                                   snapshot: registry.snapshot())
        var configuration = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [upstream])])
        configuration.readTimeout = .milliseconds(400)
        configuration.deadline = .milliseconds(1200)
        resolver = UpstreamResolver(configuration: configuration, clock: clock ?? SystemClock())
        var now: (@Sendable () -> UInt64)?
        if let clock { now = { clock.now() } }
        autopath = Autopath(pods: cluster, hostDomains: [try DomainName("upstream.test.")], now: now)
        let responder = Responder(catalog: Catalog(cluster.authorities), recursion: RecursionPolicy(),
                                  autopath: autopathOn ? autopath : nil)
        let server = DNSServer(configuration: .init(addresses: [listen]),
                               handler: QueryHandler(responder: responder, resolver: resolver, observer: tally), logger: Logger(label: "test"))
        task = Task { try await server.run() }
        addresses = await server.boundAddresses
        guard !addresses.isEmpty else { task.cancel(); throw NotBound() }
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

    /// dig from a pod's address (`-b`) and from one that is no pod: the walk's answer, and the
    /// ordinary NXDOMAIN.
    @Test(.enabled(if: toolAvailable("dig"))) func digSeesTheWalkFromAPodOnly() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        for (source, tcp, expected) in [("127.0.0.2", false, "www.default.svc.cluster.local. 300 IN CNAME www.upstream.test.\nwww.upstream.test. 300 IN A 192.0.2.1\n"),
                                        ("127.0.0.2", true, "www.default.svc.cluster.local. 300 IN CNAME www.upstream.test.\nwww.upstream.test. 300 IN A 192.0.2.1\n"),
                                        ("127.0.0.1", false, "")] {
            let dig = try run("dig", ["-b", source, "@127.0.0.1", "-p", String(server.port), "+time=3", "+tries=1", "+noall", "+answer",
                                      "+nocmd", tcp ? "+tcp" : "+notcp", "www.default.svc.cluster.local", "A"])
            #expect(dig.status == 0)
            #expect(dig.output.replacingOccurrences(of: "\t", with: " ").replacingOccurrences(of: "  ", with: " ") == expected,
                    "from \(source) tcp=\(tcp): \(dig.output)")
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
        // The names asked ahead of the walk are asked right after its first upstream step, so
        // the reply may leave first: settled once the step and each of them has missed the cache.
        #expect(await eventually { server.resolver.cache.misses == 1 + server.autopath.counters.askedAhead })
        let asked = server.resolver.cache.misses
        knot.stop()
        let second = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(second.answers.map(\.description) == first.answers.map(\.description))
        #expect(server.resolver.cache.misses == asked, "every step of the walk upstream is a cache hit")
    }

    /// A walk's outcome is remembered by what the client wrote before its search path, so a
    /// repeated lookup from any pod goes straight to the name that answered: one lookup (a cache
    /// hit) behind the alias. It lasts as long as the least negative TTL passed over: the cluster
    /// zone's 5 s here (Knot's upstream.test says 300).
    @Test func aRepeatedLookupFromAnyPodGoesStraightToWhatTheWalkFound() async throws {
        let knot = try KnotUpstream()
        let clock = ManualClock()
        let server = try await AutopathServer(upstream: knot.address, clock: clock)
        let counters = server.autopath.counters
        let walked = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(counters.steps == 3 && counters.recalled == 0)
        // Settled once the walk's upstream step and each name asked ahead have missed the cache.
        #expect(await eventually { server.resolver.cache.misses == 1 + counters.askedAhead })
        let upstreamQueries = server.resolver.cache.misses
        // Another namespace's pod writes the same name under its own search path.
        let recalled = try server.ask("www.other.svc.cluster.local.", .a, from: "127.0.0.3")
        #expect(recalled.answers.map(\.description)
                == ["www.other.svc.cluster.local. 300 IN CNAME www.upstream.test.", "www.upstream.test. 300 IN A 192.0.2.1"])
        #expect(walked.answers.dropFirst().map(\.description) == recalled.answers.dropFirst().map(\.description))
        #expect(counters.recalled == 1 && counters.steps == 3 + 1, "only the name that answered is looked up")
        #expect(counters.hits == 2 && counters.roundTripsSaved == 3 + 3, "the client saved as much as the first time")
        #expect(server.resolver.cache.misses == upstreamQueries, "and that lookup is a cache hit")
        // Each type is its own walk.
        _ = try server.ask("www.default.svc.cluster.local.", .aaaa, from: "127.0.0.2")
        #expect(counters.recalled == 1 && counters.steps == 4 + 3)

        // A name that exists nowhere (Knot says NXDOMAIN for both upstream names): the next
        // lookup goes straight to the ordinary NXDOMAIN.
        let nowhere = "nothing.upstream.test.default.svc.cluster.local."
        _ = try server.ask(nowhere, .a, from: "127.0.0.2")
        #expect(counters.steps == 7 + 4 && counters.misses == 1)
        let nothing = try server.ask(nowhere, .a, from: "127.0.0.2")
        #expect(nothing.rcode == .nameError && nothing.answers.isEmpty)
        #expect(counters.steps == 11 && counters.misses == 2 && counters.recalled == 2)

        // A namespace named `www` makes www.svc.cluster.local exist (NODATA): within the 5 s
        // its absence was given for, the memo still holds; after them, the walk finds it.
        try await server.registry.apply(.namespace(Namespace(metadata: ObjectMeta(name: "www"))))
        server.cluster.update(server.registry.snapshot())
        clock.advance(by: .milliseconds(4900))
        #expect(try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2").answers.first?.data
                == .cname(try DomainName("www.upstream.test.")))
        #expect(counters.recalled == 3)
        clock.advance(by: .milliseconds(200))
        let afterwards = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(afterwards.answers.map(\.description) == ["www.default.svc.cluster.local. 5 IN CNAME www.svc.cluster.local."])
        #expect(counters.recalled == 3, "an expired walk is walked again")
    }

    /// A walk that met a failure is not remembered: the next lookup walks again.
    @Test func aWalkThatMetAFailureIsNotRemembered() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        // Knot refuses example.com: the walk stops at it with the ordinary answer.
        for _ in 0..<2 { _ = try server.ask("api.example.com.default.svc.cluster.local.", .a, from: "127.0.0.2") }
        #expect(server.autopath.counters.recalled == 0 && server.autopath.memo.count == 0)
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

/// Pods come and go while pods look names up: the index and the memo follow the registry's
/// events as the zone updater applies them, and no answer is ever another namespace's walk.
@Suite(.serialized) struct AutopathChurnTests {
    /// The answer of a walk for `www.<asked>.svc.cluster.local.`, without TTLs (they age with
    /// the cache).
    static func walked(_ asked: String) -> [String] {
        ["www.\(asked).svc.cluster.local. IN CNAME www.upstream.test.", "www.upstream.test. IN A 192.0.2.1"]
    }

    static func records(_ message: Message) -> [String] {
        message.answers.map { record in
            var fields = record.description.split(separator: " ", omittingEmptySubsequences: false)
            fields.remove(at: 1)
            return fields.joined(separator: " ")
        }
    }

    @Test func answersStayRightWhilePodsComeAndGo() async throws {
        let knot = try KnotUpstream()
        let server = try await AutopathServer(upstream: knot.address)
        // The zone follows the registry's events, as ZoneUpdater does in the daemon.
        let (start, events) = server.registry.watchWithSnapshot()
        server.cluster.update(start)
        let follower = Task {
            for try await event in events { server.cluster.apply([event], snapshot: server.registry.snapshot()) }
        }
        defer { follower.cancel() }

        // 127.0.0.7 moves between `default` and `other` (deleted in one, created in the other);
        // pods on 10.244.x.y arrive and leave beside it, so the index changes under every query.
        func roamer(_ namespace: String) -> RegistryObject {
            var pod = Pod(metadata: ObjectMeta(name: "roamer", namespace: namespace))
            pod.spec.containers = [Pod.Container(name: "c")]
            pod.status.podIP = "127.0.0.7"
            pod.status.podIPs = ["127.0.0.7"]
            return .pod(pod)
        }
        let moves = 200
        let churning = Task {
            var rng = SplitMix64(state: 17)
            var namespace = "default"
            try await server.registry.apply(roamer(namespace))
            for move in 0..<moves {
                let next = namespace == "default" ? "other" : "default"
                try await server.registry.delete(ObjectKey(.pod, namespace: namespace, name: "roamer"))
                try await server.registry.apply(roamer(next))
                namespace = next
                let n = Int(rng.next() % 500)
                let key = ObjectKey(.pod, namespace: ["default", "other"][n % 2], name: "noise-\(n)")
                if server.registry.get(key) != nil {
                    try await server.registry.delete(key)
                } else {
                    var pod = Pod(metadata: ObjectMeta(name: key.name, namespace: key.namespace))
                    pod.spec.containers = [Pod.Container(name: "c")]
                    pod.status.podIP = "10.244.\(n / 250).\(n % 250 + 1)"
                    pod.status.podIPs = [pod.status.podIP]
                    try await server.registry.apply(.pod(pod))
                }
                if move % 20 == 0 { await Task.yield() }
            }
            return namespace
        }

        // Two clients ask throughout: a pod that stays (always its own walk) and the roamer
        // (its walk while it is in the namespace it asks under, else the ordinary NXDOMAIN).
        let asked = Mutex((stayed: 0, roamerWalked: 0, roamerNot: 0))
        try await offThePool { checks in
            for round in 0..<3_000 {
                let stays = try server.ask("www.default.svc.cluster.local.", .a, from: "127.0.0.2")
                checks.that(stays.rcode == .noError && Self.records(stays) == Self.walked("default"),
                            "round \(round): the staying pod got \(stays.rcode) \(stays.answers)")
                let namespace = round % 2 == 0 ? "default" : "other"
                let roams = try server.ask("www.\(namespace).svc.cluster.local.", .a, from: "127.0.0.7")
                switch roams.rcode {
                case .noError:
                    checks.that(Self.records(roams) == Self.walked(namespace), "round \(round): the roamer got \(roams.answers)")
                    asked.withLock { $0.roamerWalked += 1 }
                case .nameError:
                    checks.that(roams.answers.isEmpty, "round \(round): the roamer's NXDOMAIN has answers \(roams.answers)")
                    asked.withLock { $0.roamerNot += 1 }
                default:
                    checks.that(false, "round \(round): the roamer got \(roams.rcode)")
                }
                asked.withLock { $0.stayed += 1 }
            }
        }
        let last = try await churning.value
        // Settled: the zone serves the registry's last version, and the roamer's namespace only.
        let version = server.registry.snapshot().resourceVersion
        #expect(await eventually { server.cluster.resourceVersion == version })
        let other = last == "default" ? "other" : "default"
        #expect(Self.records(try server.ask("www.\(last).svc.cluster.local.", .a, from: "127.0.0.7")) == Self.walked(last))
        #expect(try server.ask("www.\(other).svc.cluster.local.", .a, from: "127.0.0.7").rcode == .nameError)
        let counts = asked.withLock { $0 }
        #expect(counts.stayed == 3_000 && counts.roamerWalked + counts.roamerNot == 3_000)
        // The index served after the churn is the index compiled from the registry afresh.
        let fresh = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR]),
                                     snapshot: server.registry.snapshot())
        for n in 0..<500 {
            let address = IPAddress("10.244.\(n / 250).\(n % 250 + 1)")!
            #expect(server.cluster.clusterSearchPath(of: address) == fresh.clusterSearchPath(of: address), "\(address)")
        }
    }
}

/// An upstream that answers nothing until it has been asked every one of `together`: a walk
/// whose upstream names are asked one after another never gets past the first here. Then it
/// answers every question, `found` with an address and the others NXDOMAIN.
final class TogetherUpstream: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    let thread: Thread
    let asked = NameLog()

    init(together: Set<String>, found: String) {
        let (socketFD, port) = Client.boundUDP()
        (fd, self.port) = (socketFD, port)
        let asked = asked
        thread = Thread {
            var held: [(peer: sockaddr_storage, length: socklen_t, query: Message)] = []
            var released = false
            var buffer = [UInt8](repeating: 0, count: 4096)
            func reply(_ query: Message, to peer: sockaddr_storage, _ length: socklen_t) {
                var response = Message(header: Header(id: query.header.id, isResponse: true, isRecursionDesired: true,
                                                      isRecursionAvailable: true), questions: query.questions)
                let question = query.questions[0]
                if question.name.description.lowercased() == found {
                    if question.type == .a { response.answers = [ResourceRecord(name: question.name, ttl: 60, data: .a(IPv4Address("192.0.2.77")!))] }
                } else {
                    response.rcode = .nameError
                    response.authorities = [ResourceRecord(name: .root, ttl: 60, data: .soa(SOA(
                        mname: try! DomainName("ns.test."), rname: try! DomainName("hostmaster.test."),
                        serial: 1, refresh: 60, retry: 60, expire: 60, minimum: 60)))]
                }
                let bytes = response.encoded()
                var peer = peer
                _ = withUnsafePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socketFD, bytes, bytes.count, 0, $0, length) } }
            }
            while !Thread.current.isCancelled {
                var peer = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(socketFD, &buffer, buffer.count, 0, $0, &length) }
                }
                guard n > 0, let query = try? Message(decoding: Array(buffer[0..<n])), let question = query.questions.first else { continue }
                asked.add(question.name.description.lowercased())
                if released {
                    reply(query, to: peer, length)
                    continue
                }
                held.append((peer, length, query))
                if together.isSubset(of: Set(held.map { $0.query.questions[0].name.description.lowercased() })) {
                    released = true
                    for h in held { reply(h.query, to: h.peer, h.length) }
                    held = []
                }
            }
            close(socketFD)
        }
        thread.start()
    }

    var address: SocketAddress { SocketAddress(address: IPAddress("127.0.0.1")!, port: port) }
    deinit { thread.cancel() }
}

@Suite struct AutopathLookAheadTests {
    /// The node's search domain and the name itself are both upstream: they are asked at once,
    /// so a name found as itself costs one round trip upstream, not two. The upstream here
    /// answers neither until it has seen both; a walk asking them in turn gets no answer.
    @Test func laterUpstreamNamesAreAskedWithTheFirst() async throws {
        let upstream = TogetherUpstream(together: ["api.example.com.upstream.test.", "api.example.com."], found: "api.example.com.")
        let server = try await AutopathServer(upstream: upstream.address)
        let response = try server.ask("api.example.com.default.svc.cluster.local.", .a, from: "127.0.0.2")
        #expect(response.answers.map(\.description) == ["api.example.com.default.svc.cluster.local. 60 IN CNAME api.example.com.",
                                                       "api.example.com. 60 IN A 192.0.2.77"])
        #expect(server.autopath.counters.askedAhead == 1)
        #expect(upstream.asked.count("api.example.com.") == 1, "the walk's own step joins the question asked ahead")
        #expect(upstream.asked.count("api.example.com.upstream.test.") == 1)
    }
}
