import DNSAuthority
import KubernetesDNS
import DNSResolver
import DNSServer
import DNSWire
import DispatchSockets
import Foundation
import Logging
import NetAddress
import ServiceRegistry
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The zone the real upstream (Knot) serves in these tests.
let upstreamZone = """
    $ORIGIN upstream.test.
    $TTL 300
    @     IN SOA ns hostmaster 1 7200 900 1209600 60
          IN NS  ns
    ns    IN A   127.0.0.1
    www   IN A   192.0.2.1
    www   IN AAAA 2001:db8::1
    www   IN MX  10 mail
    mail  IN A   192.0.2.25
    www   IN TXT "hello"
    short 2 IN A 192.0.2.2
    alias IN CNAME www
    big   IN TXT "\(String(repeating: "a", count: 250))" "\(String(repeating: "b", count: 250))" "\(String(repeating: "c", count: 250))"
    big   IN TXT "\(String(repeating: "d", count: 250))" "\(String(repeating: "e", count: 250))" "\(String(repeating: "f", count: 250))"
    """

/// Knot serving `upstreamZone` on a loopback port, started for a test and stopped with it.
/// Knot binds a port named in its configuration, found free first: when another socket takes it
/// in between, Knot exits saying the address is in use, and is started again on another port.
final class KnotUpstream: @unchecked Sendable {
    private(set) var port: UInt16 = 0
    let directory: String
    private(set) var process = ChildProcess()

    /// `ports` hands out the ports (a test of the retry hands out a taken one first).
    init(ports: () -> UInt16 = { freePort() }) throws {
        directory = Scratch.url("knot").path
        try FileManager.default.createDirectory(atPath: directory + "/db", withIntermediateDirectories: true)
        try upstreamZone.write(toFile: directory + "/upstream.test.zone", atomically: true, encoding: .utf8)
        #expect(toolAvailable("knotd"), "knotd is not installed (Debian: knot; .ci/run installs it)")
        for _ in 0..<5 {
            port = ports()
            if try start() { return }
        }
        Issue.record("knotd did not start: \((try? String(contentsOfFile: directory + "/knot.log", encoding: .utf8)) ?? "")")
    }

    /// Starts Knot again on the port it had; whether it answers there.
    func restart() throws -> Bool { try start() }

    /// Starts Knot on `port`; whether it answers there (false when it exits first).
    private func start() throws -> Bool {
        let conf = """
            server:
                listen: 127.0.0.1@\(port)
                rundir: \(directory)
                pidfile: \(directory)/knot.pid
                udp-workers: 1
                tcp-workers: 1
                background-workers: 1
            log:
              - target: stderr
                any: error
            control:
                listen: \(directory)/knot.sock
            database:
                storage: \(directory)/db
            template:
              - id: default
                storage: \(directory)
                zonefile-sync: -1
                zonefile-load: whole
                journal-content: none
            zone:
              - domain: upstream.test
                file: \(directory)/upstream.test.zone
            """
        try conf.write(toFile: directory + "/knot.conf", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: directory + "/knot.log", contents: nil)
        process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/knotd")
        process.arguments = ["-c", directory + "/knot.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/knot.log"))
        try process.run()
        // Wait (bounded) until it answers, or has exited.
        let probe = Message(header: Header(id: 1), questions: [Question(name: try DomainName("www.upstream.test."), type: .a)]).encoded()
        for _ in 0..<200 {
            if Client.udp(probe, port: port, timeout: 50) != nil { return true }
            if !process.isRunning { return false }
            usleep(50_000)
        }
        return false
    }

    var address: SocketAddress { SocketAddress(address: IPAddress("127.0.0.1")!, port: port) }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A UDP "upstream" driven by the test: it sees each query and decides what to send back
/// (several datagrams, some from another socket); or nothing, to time out.
final class FakeUpstream: @unchecked Sendable {
    struct Reply { var bytes: [UInt8]; var fromOtherPort = false }
    let fd: Int32
    let other: Int32
    let port: UInt16
    let received = Counter()
    let thread: Thread

    init(behaviour: @escaping @Sendable (_ query: Message) -> [Reply]) {
        (fd, port) = Client.boundUDP()
        other = Client.boundUDP().fd
        let (fd, other, received) = (fd, other, received)
        thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !Thread.current.isCancelled {
                var peer = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
                }
                guard n > 0, let query = try? Message(decoding: Array(buffer[0..<n])) else { continue }
                received.add()
                for reply in behaviour(query) {
                    _ = withUnsafePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(reply.fromOtherPort ? other : fd, reply.bytes, reply.bytes.count, 0, $0, length)
                        }
                    }
                }
            }
            close(fd)
            close(other)
        }
        thread.start()
    }

    var address: SocketAddress { SocketAddress(address: IPAddress("127.0.0.1")!, port: port) }
    var queries: Int { received.value }

    deinit { thread.cancel() }

    /// A correct answer to `query`: one A record.
    static func answer(_ query: Message, id: UInt16? = nil, name: String? = nil, ttl: UInt32 = 60) -> [UInt8] {
        var response = Message(header: Header(id: id ?? query.header.id, isResponse: true, isRecursionDesired: true, isRecursionAvailable: true))
        let question = name.map { Question(name: try! DomainName($0), type: .a) } ?? query.questions[0]
        response.questions = [question]
        response.answers = [ResourceRecord(name: question.name, ttl: ttl, data: .a(IPv4Address("192.0.2.77")!))]
        return response.encoded()
    }
}

final class Flag: Sendable {
    let state: Mutex<Bool>
    init(_ value: Bool) { state = Mutex(value) }
    var value: Bool {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}

/// The question names an upstream was asked, in order.
final class NameLog: Sendable {
    let names = Mutex<[String]>([])
    func add(_ name: String) { names.withLock { $0.append(name) } }
    func count(_ name: String) -> Int { names.withLock { $0.filter { $0 == name }.count } }
}

final class Counter: Sendable {
    let count = Mutex<Int>(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// Our server forwarding to `upstreams`, on a loopback port chosen by the kernel.
final class ForwardingServer: Sendable {
    let task: Task<Void, any Error>
    let port: UInt16
    let resolver: UpstreamResolver
    let registry: Registry
    let cluster: ClusterAuthority

    /// The resolver's clock (cache ages, read timeouts, the deadline, health probes): tests
    /// advance it instead of sleeping.
    let clock = ManualClock()

    init(upstreams: [SocketAddress], allowRecursion: [IPPrefix] = RecursionPolicy.privateRanges, allowTransfer: [IPPrefix] = [],
         configure: (inout UpstreamResolver.Configuration) -> Void = { _ in }) async throws {
        var configuration = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: upstreams)])
        configuration.readTimeout = .milliseconds(400)
        configuration.deadline = .milliseconds(1200)
        configuration.healthCheckInterval = .milliseconds(100)
        configure(&configuration)
        resolver = UpstreamResolver(configuration: configuration, clock: clock)
        registry = try Registry()
        for entry in Manifest.decode(manifests + """

            ---
            apiVersion: v1
            kind: Service
            metadata: {name: ext, namespace: default}
            spec: {type: ExternalName, externalName: alias.upstream.test}
            """) { try await registry.apply(try entry.result.get()) }
        registry.markLoaded()
        let cluster = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR]),
                                       snapshot: registry.snapshot())
        self.cluster = cluster
        let responder = Responder(catalog: Catalog(cluster.authorities), allowTransfer: allowTransfer,
                                  recursion: RecursionPolicy(allowed: allowRecursion, domains: [.root]))
        let server = DNSServer(configuration: .init(addresses: [SocketAddress(address: IPAddress("127.0.0.1")!, port: 0)]),
                               handler: QueryHandler(responder: responder, resolver: resolver), logger: Logger(label: "test"))
        task = Task { try await server.run() }
        guard let bound = await server.boundAddresses.first else { task.cancel(); throw NotBound() }
        port = bound.port
    }

    var address: SocketAddress { SocketAddress(address: IPAddress("127.0.0.1")!, port: port) }

    /// One question over UDP (or TCP); the decoded response.
    func ask(_ name: String, _ type: RecordType = .a, tcp: Bool = false, edns: Bool = true, timeout: Int = 3000) throws -> Message {
        let query = Message(header: Header(id: UInt16.random(in: 1...65535), isRecursionDesired: true),
                            questions: [Question(name: try DomainName(name), type: type)], edns: edns ? EDNS() : nil).encoded()
        if tcp {
            let fd = Client.tcpConnect(port: port)
            defer { close(fd) }
            let framed = Client.framed(query)
            _ = send(fd, framed, framed.count, 0)
            return try Message(decoding: try #require(Client.tcpRead(fd)))
        }
        return try Message(decoding: try #require(Client.udp(query, port: port, timeout: timeout)))
    }

    /// Makes (or points elsewhere) the ExternalName service `name` in `default`, and serves
    /// the zone that has it.
    func externalName(_ name: String, _ target: String) async throws {
        _ = try await registry.apply(try Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: default}
            spec: {type: ExternalName, externalName: \(target)}
            """)[0].result.get())
        cluster.update(registry.snapshot())
    }

    /// Moves the resolver's clock on and lets it act on the new time (timeouts, probes) before
    /// returning.
    func advance(by duration: Duration) {
        clock.advance(by: duration)
        resolver.sweep()
    }

    /// `ask` on another thread, for a question whose answer waits for the clock.
    func asking(_ name: String, _ type: RecordType = .a) -> Task<Message?, Never> {
        onThread { [self] in try? ask(name, type) }
    }

    deinit { task.cancel() }
}

@Suite(.serialized) struct ForwardingTests {
    func answers(_ message: Message) -> [String] { message.answers.map(\.description) }

    @Test func recordsComeThroughFromARealUpstream() async throws {
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [knot.address])
        let a = try server.ask("www.upstream.test.")
        #expect(a.rcode == .noError && a.header.isRecursionAvailable && !a.header.isAuthoritative)
        #expect(answers(a) == ["www.upstream.test. 300 IN A 192.0.2.1"])
        #expect(answers(try server.ask("www.upstream.test.", .aaaa)) == ["www.upstream.test. 300 IN AAAA 2001:db8::1"])
        let mx = try server.ask("www.upstream.test.", .mx)
        #expect(answers(mx) == ["www.upstream.test. 300 IN MX 10 mail.upstream.test."])
        #expect(answers(try server.ask("www.upstream.test.", .txt)) == ["www.upstream.test. 300 IN TXT \"hello\""])
        #expect(answers(try server.ask("WWW.Upstream.TEST.", .a, tcp: true)) == ["WWW.Upstream.TEST. 300 IN A 192.0.2.1"])
        // NXDOMAIN and NODATA with the upstream's SOA.
        let nx = try server.ask("nope.upstream.test.")
        #expect(nx.rcode == .nameError)
        #expect(nx.authorities.map(\.type) == [.soa])
        let nodata = try server.ask("www.upstream.test.", .srv)
        #expect(nodata.rcode == .noError && nodata.answers.isEmpty && nodata.authorities.map(\.type) == [.soa])
        // dig, the client people use.
        let dig = try run("dig", ["@127.0.0.1", "-p", String(server.port), "+time=3", "+tries=1", "+short", "www.upstream.test", "A"])
        #expect(dig.output == "192.0.2.1\n")
        // The cluster zone is still ours.
        #expect(answers(try server.ask("kubernetes.default.svc.cluster.local.")) == ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"])
    }

    @Test func externalNameOutsideTheClusterIsFollowedUpstream() async throws {
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [knot.address])
        let response = try server.ask("ext.default.svc.cluster.local.")
        #expect(response.rcode == .noError)
        #expect(answers(response) == ["ext.default.svc.cluster.local. 5 IN CNAME alias.upstream.test.",
                                      "alias.upstream.test. 300 IN CNAME www.upstream.test.",
                                      "www.upstream.test. 300 IN A 192.0.2.1"])
        // A name that does not exist upstream: the CNAME, then the upstream's NXDOMAIN.
        try await server.externalName("gone", "gone.upstream.test")
        let gone = try server.ask("gone.default.svc.cluster.local.")
        #expect(gone.rcode == .nameError)
        #expect(answers(gone) == ["gone.default.svc.cluster.local. 5 IN CNAME gone.upstream.test."])
        #expect(gone.authorities.map(\.name.description) == ["upstream.test."])
        // The upstream's answer records only: its additional section (the MX's address) belongs
        // to its zone, not to the name asked (CoreDNS joins only the answer records).
        let direct = try server.ask("www.upstream.test.", .mx)
        #expect(direct.additionals.map(\.description) == ["mail.upstream.test. 300 IN A 192.0.2.25"], "the upstream sends it")
        let mx = try server.ask("ext.default.svc.cluster.local.", .mx)
        #expect(mx.rcode == .noError)
        #expect(answers(mx) == ["ext.default.svc.cluster.local. 5 IN CNAME alias.upstream.test.",
                                "alias.upstream.test. 300 IN CNAME www.upstream.test.",
                                "www.upstream.test. 300 IN MX 10 mail.upstream.test."])
        #expect(mx.authorities.isEmpty && mx.additionals.isEmpty)
        // SRV for an ExternalName: NODATA from the cluster zone, nothing asked upstream.
        let srv = try server.ask("ext.default.svc.cluster.local.", .srv)
        #expect(srv.rcode == .noError && srv.answers.isEmpty && srv.authorities.map(\.name.description) == ["cluster.local."])
    }

    /// An ExternalName's chased answer is kept for the fast path: each later client gets, byte
    /// for byte, what the general path gives it (the server without a cache here), whatever
    /// its letters, EDNS, DO, CD and RD; the upstream's TTLs age, our CNAME's does not; a
    /// change of the service is answered at once.
    @Test func externalNameAnswersAreKeptForTheFastPath() async throws {
        let knot = try KnotUpstream()
        let kept = try await ForwardingServer(upstreams: [knot.address])
        let plain = try await ForwardingServer(upstreams: [knot.address]) { $0.cache.capacity = 0 }
        for server in [kept, plain] {
            try await server.externalName("gone", "gone.upstream.test")
        }
        var random = SplitMix64(state: 27)
        func spelled(_ name: String) -> String {
            String(name.map { Bool.random(using: &random) ? Character($0.uppercased()) : $0 })
        }
        var keys = Set<String>()
        for round in 0..<48 {
            let name = spelled(round % 3 == 0 ? "gone.default.svc.cluster.local." : "ext.default.svc.cluster.local.")
            let type = [RecordType.a, .aaaa, .mx, .txt][Int.random(in: 0..<4, using: &random)]
            let edns = Bool.random(using: &random)
            let dnssecOK = edns && Bool.random(using: &random)
            var header = Header(id: UInt16(round + 1), isRecursionDesired: Bool.random(using: &random))
            header.isCheckingDisabled = Bool.random(using: &random)
            let query = Message(header: header, questions: [Question(name: try DomainName(name), type: type)],
                                edns: edns ? EDNS(udpPayloadSize: [512, 1232, 4096][round % 3], isDNSSECOK: dnssecOK) : nil).encoded()
            let first = try #require(Client.udp(query, port: kept.port, timeout: 3000))
            let again = try #require(Client.udp(query, port: kept.port, timeout: 3000))
            let reference = try #require(Client.udp(query, port: plain.port, timeout: 3000))
            #expect(first == reference, "round \(round): \(name) \(type)")
            #expect(again == reference, "round \(round): \(name) \(type), kept")
            keys.insert("\(name.lowercased()) \(type) \(dnssecOK) \(header.isCheckingDisabled)")
        }
        // Each was kept, and answered from there.
        for key in keys {
            let parts = key.split(separator: " ")
            let question = Question(name: try DomainName(String(parts[0])), type: RecordType(mnemonic: parts[1])!)
            let entry = kept.resolver.cache.entry(for: ResponseCache.Key(question, dnssecOK: parts[2] == "true", checkingDisabled: parts[3] == "true"))
            #expect(entry?.source != nil && (entry?.hitCount ?? 0) >= 1, "\(key)")
        }
        // 2.5 s later: the upstream's TTLs are 2 s lower, our CNAME's is the zone's.
        kept.advance(by: .milliseconds(2500))
        #expect(answers(try kept.ask("ext.default.svc.cluster.local.")) == ["ext.default.svc.cluster.local. 5 IN CNAME alias.upstream.test.",
                                                                               "alias.upstream.test. 298 IN CNAME www.upstream.test.",
                                                                               "www.upstream.test. 298 IN A 192.0.2.1"])
        // The service points elsewhere: answered from the new zone at once.
        try await kept.externalName("ext", "www.upstream.test")
        // (www.upstream.test's A was not asked before: fresh from upstream.)
        #expect(answers(try kept.ask("ext.default.svc.cluster.local.")) == ["ext.default.svc.cluster.local. 5 IN CNAME www.upstream.test.",
                                                                               "www.upstream.test. 300 IN A 192.0.2.1"])
        // Kept from an upstream entry older than itself: it ages from the entry's time.
        _ = try kept.ask("www.upstream.test.", .mx)
        kept.advance(by: .seconds(3))
        for _ in 0..<2 {
            #expect(answers(try kept.ask("ext.default.svc.cluster.local.", .mx)) == ["ext.default.svc.cluster.local. 5 IN CNAME www.upstream.test.",
                                                                                        "www.upstream.test. 297 IN MX 10 mail.upstream.test."])
        }
    }

    /// A client allowed to transfer the zone is an ordinary client for every other question:
    /// forwarded names over TCP are forwarded for it (with RA), not refused; AXFR still works.
    @Test func transferClientsGetOrdinaryAnswersOverTCP() async throws {
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [knot.address], allowTransfer: [try IPPrefix(parsing: "127.0.0.0/8")])
        let forwarded = try server.ask("www.upstream.test.", tcp: true)
        #expect(forwarded.rcode == .noError && forwarded.header.isRecursionAvailable)
        #expect(answers(forwarded) == ["www.upstream.test. 300 IN A 192.0.2.1"])
        let cluster = try server.ask("kubernetes.default.svc.cluster.local.", tcp: true)
        #expect(cluster.header.isRecursionAvailable && answers(cluster) == ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"])
        let axfr = try run("dig", ["@127.0.0.1", "-p", String(server.port), "+time=2", "+tries=1", "+noall", "+answer", "AXFR", "cluster.local"])
        #expect(axfr.output.split(separator: "\n").count > 80, "\(axfr.output.prefix(300))")
    }

    @Test func truncatedUpstreamAnswersAreRetriedOverTCP() async throws {
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [knot.address])
        // Over TCP to us: the whole RRset, which the upstream could only send over TCP.
        let tcp = try server.ask("big.upstream.test.", .txt, tcp: true)
        #expect(tcp.answers.count == 2 && !tcp.header.isTruncated, "\(tcp)")
        // Over UDP without EDNS: truncated for the client, who retries over TCP (dig does).
        let udp = try server.ask("big.upstream.test.", .txt, edns: false)
        #expect(udp.header.isTruncated)
        let dig = try run("dig", ["@127.0.0.1", "-p", String(server.port), "+time=3", "+tries=1", "+noedns", "big.upstream.test", "TXT"])
        #expect(dig.output.contains("ANSWER: 2"), "\(dig.output)")
        // Each time at the first attempt: UDP, TC, then TCP.
        #expect(server.resolver.upstreams[0].failures == 0)
    }

    @Test func cacheAnswersWithDecreasingTTLAndNegativeEntries() async throws {
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [knot.address])
        #expect(answers(try server.ask("www.upstream.test.")) == ["www.upstream.test. 300 IN A 192.0.2.1"])
        _ = try server.ask("nope.upstream.test.")
        #expect(answers(try server.ask("short.upstream.test.")) == ["short.upstream.test. 2 IN A 192.0.2.2"])
        let sent = server.resolver.upstreams[0].queries
        server.clock.advance(by: .milliseconds(1100))
        knot.stop()
        // Served from the cache with the upstream gone, TTL lowered by the time spent there.
        let cached = try server.ask("www.upstream.test.")
        #expect(cached.answers.count == 1)
        #expect(answers(cached) == ["www.upstream.test. 299 IN A 192.0.2.1"])
        // Negative answers too, for the SOA's negative TTL (min(SOA TTL, MINIMUM) = 60).
        let nx = try server.ask("nope.upstream.test.")
        #expect(nx.rcode == .nameError && nx.authorities.map(\.ttl) == [59])
        // The same over TCP and without EDNS (the general path).
        #expect(try server.ask("www.upstream.test.", tcp: true).answers.count == 1)
        #expect(try server.ask("www.upstream.test.", edns: false).answers.count == 1)
        #expect(server.resolver.upstreams[0].queries == sent)
        #expect(server.resolver.cache.hits >= 4)
        // A short TTL expires: asked again upstream, which is down now: SERVFAIL.
        #expect(answers(try server.ask("short.upstream.test.")) == ["short.upstream.test. 1 IN A 192.0.2.2"])
        server.clock.advance(by: .seconds(1))
        let expired = try server.ask("short.upstream.test.")
        #expect(expired.rcode == .serverFailure && expired.answers.isEmpty)
        #expect(server.resolver.upstreams[0].queries > sent, "asked upstream again")
    }

    /// An upstream that answers NXDOMAIN without an SOA (some resolvers and proxies do) is asked
    /// once per name for 5 seconds, as Unbound and CoreDNS ask it, not once per query: the
    /// ExternalName chase included.
    @Test func negativeAnswersWithoutSOAAreCachedBriefly() async throws {
        let fake = FakeUpstream { query in
            var response = Message(header: Header(id: query.header.id, isResponse: true, isRecursionDesired: true, isRecursionAvailable: true),
                                   questions: query.questions)
            response.rcode = .nameError
            return [FakeUpstream.Reply(bytes: response.encoded())]
        }
        let server = try await ForwardingServer(upstreams: [fake.address])
        try await server.externalName("gone", "gone.upstream.test")
        for _ in 0..<3 {
            let gone = try server.ask("gone.default.svc.cluster.local.")
            #expect(gone.rcode == .nameError && answers(gone) == ["gone.default.svc.cluster.local. 5 IN CNAME gone.upstream.test."])
            #expect(try server.ask("nope.upstream.test.").rcode == .nameError)
        }
        #expect(fake.queries == 2, "one question upstream for each name")
        server.clock.advance(by: .milliseconds(4900))
        #expect(try server.ask("nope.upstream.test.").rcode == .nameError)
        #expect(fake.queries == 2)
        server.clock.advance(by: .milliseconds(200))
        #expect(try server.ask("nope.upstream.test.").rcode == .nameError)
        #expect(try server.ask("gone.default.svc.cluster.local.").rcode == .nameError)
        #expect(fake.queries == 4, "asked again once expired")
    }

    @Test func aSilentUpstreamFailsOverToTheNextAndRecovers() async throws {
        let answering = Flag(false)
        let asked = NameLog()
        let first = FakeUpstream { query in
            asked.add(query.questions.first?.name.description ?? "")
            return answering.value ? [FakeUpstream.Reply(bytes: FakeUpstream.answer(query))] : []
        }
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [first.address, knot.address]) { $0.policy = .sequential }
        // The first upstream is silent: each question waits for its read timeout (400 ms) there,
        // not a moment less, then the next one answers.
        for (type, answer) in [(RecordType.a, "www.upstream.test. 300 IN A 192.0.2.1"), (.aaaa, "www.upstream.test. 300 IN AAAA 2001:db8::1")] {
            let asking = server.asking("www.upstream.test.", type)
            let before = asked.count("www.upstream.test.")
            #expect(await eventually { asked.count("www.upstream.test.") == before + 1 })
            server.advance(by: .milliseconds(399))
            #expect(server.resolver.pending == 1, "still waiting for the silent upstream")
            server.advance(by: .milliseconds(1))
            #expect(await asking.value.map(answers) == [answer])
        }
        #expect(asked.count("www.upstream.test.") == 2)
        // After max_fails (2) it is down: asked after the healthy one, so not at all while that answers.
        #expect(server.resolver.upstreams[0].isHealthy == false)
        #expect(answers(try server.ask("www.upstream.test.", .mx)) == ["www.upstream.test. 300 IN MX 10 mail.upstream.test."])
        #expect(asked.count("www.upstream.test.") == 2, "a down upstream is not asked first")
        // It answers again: its health probe (. NS, every 100 ms here) finds it, and it is first again.
        answering.value = true
        server.advance(by: .milliseconds(99))
        #expect(asked.count(".") == 0, "not probed before the interval")
        server.advance(by: .milliseconds(1))
        #expect(await eventually { server.resolver.upstreams[0].isHealthy }, "the probe marks it healthy")
        #expect(asked.count(".") == 1, "probed once with . NS")
        let back = try server.ask("back.upstream.test.")
        #expect(back.answers.map(\.data.presentation) == ["192.0.2.77"], "answered by the recovered upstream")
    }

    /// Knot is told its port before it binds it: when another socket took it in between, Knot
    /// exits saying so and is started again on another.
    @Test func knotStartsOnAnotherPortWhenItsPortWasTaken() throws {
        let (holder, taken) = Client.boundUDP()
        defer { close(holder) }
        var first = true
        let knot = try KnotUpstream {
            defer { first = false }
            return first ? taken : freePort()
        }
        #expect(knot.port != taken)
        let probe = Message(header: Header(id: 1), questions: [Question(name: try DomainName("www.upstream.test."), type: .a)]).encoded()
        #expect(Client.udp(probe, port: knot.port, timeout: 2000) != nil, "Knot answers on the other port")
    }

    @Test func everyUpstreamDownIsSERVFAILWithinTheDeadlineThenRecovery() async throws {
        // Knot's port once it has stopped: nothing listens there (below the ephemeral range, so no
        // other test's client takes it meanwhile).
        let knot = try KnotUpstream()
        knot.stop()
        let address = knot.address
        let silent = FakeUpstream { _ in [] }
        let server = try await ForwardingServer(upstreams: [address, silent.address]) {
            $0.cache.serverFailureTTL = 0
            $0.policy = .sequential
            $0.maxFails = 1
        }
        // The first refuses (ICMP port unreachable), the second is silent: SERVFAIL at the
        // deadline (1.2 s here), not later.
        let asking = server.asking("www.upstream.test.")
        #expect(await eventually { silent.queries == 1 })
        server.advance(by: .milliseconds(1199))
        #expect(server.resolver.pending == 1)
        server.advance(by: .milliseconds(1))
        #expect(await asking.value?.rcode == .serverFailure)
        #expect(server.resolver.upstreams.map(\.isHealthy) == [false, false])
        // The first comes back: its health probe finds it, and answers flow again.
        #expect(try knot.restart(), "knotd did not start again on port \(knot.port)")
        server.advance(by: .milliseconds(100))
        #expect(await eventually { server.resolver.upstreams[0].isHealthy })
        #expect(try server.ask("www.upstream.test.").rcode == .noError)
        knot.stop()
    }

    @Test func spoofedRepliesAreIgnored() async throws {
        // Wrong ID, wrong question, and a right answer from the wrong port come first; the real
        // answer last.
        let fake = FakeUpstream { query in
            [FakeUpstream.Reply(bytes: FakeUpstream.answer(query, id: query.header.id &+ 1)),
             FakeUpstream.Reply(bytes: FakeUpstream.answer(query, name: "evil.example.")),
             FakeUpstream.Reply(bytes: FakeUpstream.answer(query), fromOtherPort: true),
             FakeUpstream.Reply(bytes: FakeUpstream.answer(query))]
        }
        let server = try await ForwardingServer(upstreams: [fake.address])
        let response = try server.ask("victim.example.")
        #expect(answers(response) == ["victim.example. 60 IN A 192.0.2.77"])
        // The one from the other port never reaches the connected socket.
        #expect(server.resolver.mismatches == 2)
    }

    @Test func clientsOutsideAllowRecursionAreRefused() async throws {
        let knot = try KnotUpstream()
        let server = try await ForwardingServer(upstreams: [knot.address], allowRecursion: [try IPPrefix(parsing: "10.0.0.0/8")])
        let refused = try server.ask("www.upstream.test.")
        #expect(refused.rcode == .refused && !refused.header.isRecursionAvailable)
        // Our own zones still answer.
        #expect(try server.ask("kubernetes.default.svc.cluster.local.").rcode == .noError)
        #expect(knot.port > 0)
        #expect(server.resolver.upstreams[0].queries == 0)
    }

    @Test func aQueryForwardedBackToUsIsALoop() async throws {
        // The upstream is a fake that relays every query to our server, as a misconfigured
        // resolver pointing back at us would.
        let target = Mutex<UInt16>(0)
        let relay = FakeUpstream { query in
            let port = target.withLock { $0 }
            _ = Client.udp(query.encoded(), port: port, timeout: 500)
            return []
        }
        let server = try await ForwardingServer(upstreams: [relay.address])
        target.withLock { $0 = server.port }
        let asking = server.asking("loop.example.")
        #expect(await eventually { server.resolver.loopsDetected == 1 })
        // The relay never answers the first query: SERVFAIL at the deadline.
        server.advance(by: .milliseconds(1200))
        #expect(await asking.value?.rcode == .serverFailure)
    }

    @Test func tooManyQuestionsInFlightAreRefused() async throws {
        let silent = FakeUpstream { _ in [] }
        let server = try await ForwardingServer(upstreams: [silent.address]) { $0.maxConcurrent = 1 }
        let first = server.asking("one.example.")
        #expect(await eventually { silent.queries == 1 })
        let second = try server.ask("two.example.")
        #expect(second.rcode == .refused)
        server.advance(by: .milliseconds(1200))
        #expect(await first.value?.rcode == .serverFailure)
        // Room again.
        let third = server.asking("three.example.")
        #expect(await eventually { silent.queries == 2 })
        server.advance(by: .milliseconds(1200))
        #expect(await third.value?.rcode == .serverFailure)
    }

    @Test func expiredAnswersAreServedStaleWhenEveryUpstreamFails() async throws {
        let up = Flag(true)
        let fake = FakeUpstream { query in up.value ? [FakeUpstream.Reply(bytes: FakeUpstream.answer(query, ttl: 1))] : [] }
        let server = try await ForwardingServer(upstreams: [fake.address]) {
            $0.cache.staleWindow = 60
            $0.cache.serverFailureTTL = 0
        }
        #expect(try server.ask("stale.example.").answers.map(\.ttl) == [1])
        server.clock.advance(by: .milliseconds(1100))
        up.value = false
        let asking = server.asking("stale.example.")
        #expect(await eventually { fake.queries == 2 })
        server.advance(by: .milliseconds(1200))
        let stale = try #require(await asking.value)
        #expect(stale.rcode == .noError)
        #expect(stale.answers.map(\.description) == ["stale.example. 30 IN A 192.0.2.77"])
        // Without serve-stale the same would be SERVFAIL.
        let plain = try await ForwardingServer(upstreams: [fake.address]) { $0.cache.serverFailureTTL = 0 }
        let plainAsking = plain.asking("stale.example.")
        #expect(await eventually { fake.queries == 3 })
        plain.advance(by: .milliseconds(1200))
        #expect(await plainAsking.value?.rcode == .serverFailure)
    }

    @Test func popularAnswersArePrefetchedBeforeTheyExpire() async throws {
        let fake = FakeUpstream { query in [FakeUpstream.Reply(bytes: FakeUpstream.answer(query, ttl: 2))] }
        let server = try await ForwardingServer(upstreams: [fake.address]) {
            $0.cache.prefetchFraction = 0.6
            $0.cache.prefetchHits = 2
        }
        _ = try server.ask("popular.example.")
        _ = try server.ask("popular.example.")
        _ = try server.ask("popular.example.")
        #expect(fake.queries == 1)
        let key = ResponseCache.Key(Question(name: try DomainName("popular.example."), type: .a))
        let first = try #require(server.resolver.cache.entry(for: key)).stored
        server.clock.advance(by: .milliseconds(1100))
        // Less than 60 % of the TTL left and asked often: this hit refreshes it in the background.
        #expect(try server.ask("popular.example.").answers.count == 1)
        // Waits for the refreshed entry itself (the upstream's having been asked is not enough:
        // its answer may not be stored yet on a busy machine).
        #expect(await eventually { server.resolver.cache.entry(for: key).map { $0.stored != first } ?? false }, "the entry was refreshed")
        #expect(fake.queries == 2)
        server.clock.advance(by: .milliseconds(1000))
        // The refreshed entry is fresh past the first one's expiry: no miss, no new upstream query.
        let missesBefore = server.resolver.cache.misses
        #expect(try server.ask("popular.example.").answers.count == 1)
        #expect(server.resolver.cache.misses == missesBefore)
    }

    /// RFC 7766 §6.2.1.1: queries sent together on one connection, before any reply is read,
    /// are answered as each is ready: a forwarded one that waits on a slow upstream comes after
    /// the cluster's, which do not wait for it.
    @Test func pipelinedQueriesAreAnsweredOutOfOrder() async throws {
        let slow = FakeUpstream { query in
            usleep(200_000)
            return [FakeUpstream.Reply(bytes: FakeUpstream.answer(query))]
        }
        let server = try await ForwardingServer(upstreams: [slow.address])
        let fd = Client.tcpConnect(port: server.port)
        #expect(fd >= 0)
        defer { close(fd) }
        func query(_ id: UInt16, _ name: String) -> [UInt8] {
            Client.framed(Message(header: Header(id: id, isRecursionDesired: true),
                                  questions: [Question(name: try! DomainName(name), type: .a)]).encoded())
        }
        let all = query(1, "slow.example.") + query(2, "kubernetes.default.svc.cluster.local.") + query(3, "web.default.svc.cluster.local.")
        #expect(send(fd, all, all.count, Int32(MSG_NOSIGNAL)) == all.count, "three queries in one write")
        var replies: [Message] = []
        for _ in 0..<3 { replies.append(try Message(decoding: try #require(Client.tcpRead(fd)))) }
        #expect(replies.map(\.header.id) == [2, 3, 1])
        #expect(replies.map { $0.answers.map(\.data.presentation) } == [["10.96.0.1"], ["10.96.0.10"], ["192.0.2.77"]])
    }

    @Test func stubDomainsGoToTheirOwnServers() async throws {
        let general = FakeUpstream { query in [FakeUpstream.Reply(bytes: FakeUpstream.answer(query))] }
        let corp = FakeUpstream { query in [FakeUpstream.Reply(bytes: FakeUpstream.answer(query))] }
        let server = try await ForwardingServer(upstreams: [general.address]) {
            $0.groups.append(UpstreamGroup(domain: try! DomainName("corp.example."), servers: [corp.address]))
        }
        _ = try server.ask("www.corp.example.")
        _ = try server.ask("deep.www.CORP.example.")
        _ = try server.ask("corp.example.")
        _ = try server.ask("notcorp.example.")
        _ = try server.ask("www.example.org.")
        #expect(corp.queries == 3)
        #expect(general.queries == 2)
    }

    @Test func roundRobinSpreadsQuestionsOverEveryUpstream() async throws {
        let upstreams = (0..<3).map { _ in FakeUpstream { query in [FakeUpstream.Reply(bytes: FakeUpstream.answer(query))] } }
        let server = try await ForwardingServer(upstreams: upstreams.map(\.address)) { $0.policy = .roundRobin }
        for i in 0..<9 { _ = try server.ask("host\(i).example.") }
        #expect(upstreams.map(\.queries) == [3, 3, 3])
    }

    @Test func reverseNamesOutsideTheClusterGoUpstreamAndInsideStayHere() async throws {
        let fake = FakeUpstream { query in
            var response = Message(header: Header(id: query.header.id, isResponse: true, isRecursionDesired: true, isRecursionAvailable: true))
            response.questions = query.questions
            response.answers = [ResourceRecord(name: query.questions[0].name, ttl: 60, data: .ptr(try! DomainName("dns.example.")))]
            return [FakeUpstream.Reply(bytes: response.encoded())]
        }
        let server = try await ForwardingServer(upstreams: [fake.address])
        let outside = try server.ask("8.8.8.8.in-addr.arpa.", .ptr)
        #expect(answers(outside) == ["8.8.8.8.in-addr.arpa. 60 IN PTR dns.example."])
        #expect(fake.queries == 1)
        // A ClusterIP's reverse name is ours, authoritative, never forwarded.
        let inside = try server.ask("1.0.96.10.in-addr.arpa.", .ptr)
        #expect(answers(inside) == ["1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."])
        #expect(inside.header.isAuthoritative)
        // An unknown address inside the service range: NXDOMAIN here, not upstream.
        #expect(try server.ask("99.0.96.10.in-addr.arpa.", .ptr).rcode == .nameError)
        #expect(fake.queries == 1)
    }
}
