import DNSAuthority
import KubernetesDNS
import DNSWire
import ServiceRegistry
import ZoneFile
import Testing

/// The pre-encoded fast path answers exactly what the general path answers.
@Suite struct FastPathTests {
    static let responder = try! makeResponder()

    func both(_ query: [UInt8], transport: Responder.Transport = .udp) throws -> (fast: Message?, general: Message) {
        let general = try Message(decoding: try #require(Self.responder.respond(to: query, transport: transport)))
        var buffer = [UInt8](repeating: 0, count: 65535)
        let length = query.withUnsafeBytes { q in
            buffer.withUnsafeMutableBytes { Self.responder.fastRespond(to: q, into: $0, transport: transport) }
        }
        let fast = try length.map { try Message(decoding: Array(buffer[0..<$0])) }
        return (fast, general)
    }

    @Test(arguments: cases)
    func agreesWithTheGeneralPath(_ c: Case) throws {
        for edns in [nil, EDNS(udpPayloadSize: 4096)] {
            for name in [c.name, c.name.uppercased(), String(c.name.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.uppercased()) : $0.element })] {
                var query = Message(header: Header(id: 0x4242, isRecursionDesired: true, isCheckingDisabled: true),
                                    questions: [Question(name: try DomainName(name), type: c.type)])
                query.edns = edns
                let (fast, general) = try both(query.encoded())
                if let fast { #expect(fast == general, "\(name) \(c.type) edns=\(edns != nil)") }
            }
        }
    }

    @Test(arguments: [
        ("web.shop.svc.cluster.local.", RecordType.a), ("_http._tcp.web.shop.svc.cluster.local.", .srv),
        ("nope.shop.svc.cluster.local.", .a), ("web.shop.svc.cluster.local.", .aaaa), ("cluster.local.", .soa),
        ("db.shop.svc.cluster.local.", .a), ("alias.shop.svc.cluster.local.", .a),
        // An ExternalName out of the zone: nothing to chase (no other zone, no recursion).
        ("search.shop.svc.cluster.local.", .a), ("search.shop.svc.cluster.local.", .aaaa),
    ])
    func takesTheFastPath(_ name: String, _ type: RecordType) throws {
        let query = Message(questions: [Question(name: try DomainName(name), type: type)], edns: EDNS()).encoded()
        let (fast, _) = try both(query)
        #expect(fast != nil)
    }

    /// A headless service whose answers do not fit a UDP payload: the fast path cuts them as
    /// the general path does (the answer records that fit, TC), byte for byte.
    @Test func truncatesLikeTheGeneralPath() throws {
        var manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\n"
            + "spec: {clusterIP: None, selector: {app: big}, ports: [{name: http, port: 80}]}\n"
        for i in 0..<60 {
            manifest += "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p\(i), namespace: default, labels: {app: big}}\n"
                + "spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}\nstatus: {podIP: 10.244.9.\(i + 1)}\n"
        }
        let registry = try Registry()
        for entry in Manifest.decode(manifest) { try registry.apply(try entry.result.get()) }
        registry.markLoaded()
        let cluster = ClusterAuthority(configuration: ClusterConfiguration(), snapshot: registry.snapshot())
        let responder = Responder(catalog: Catalog(cluster.authorities))
        var fastCuts = 0
        for (name, type) in [("big.default.svc.cluster.local.", RecordType.a), ("_http._tcp.big.default.svc.cluster.local.", .srv),
                             ("big.default.svc.cluster.local.", .srv)] {
            for size in [nil, 512, 700, 1232, 4096] as [UInt16?] {
                for transport in [Responder.Transport.udp, .tcp] {
                    var query = Message(header: Header(id: 0x0707, isRecursionDesired: true),
                                        questions: [Question(name: try DomainName(name), type: type)])
                    query.edns = size.map { EDNS(udpPayloadSize: $0) }
                    let bytes = query.encoded()
                    let general = try #require(responder.respond(to: bytes, transport: transport))
                    var buffer = [UInt8](repeating: 0, count: 65535)
                    let length = bytes.withUnsafeBytes { q in
                        buffer.withUnsafeMutableBytes { responder.fastRespond(to: q, into: $0, transport: transport) }
                    }
                    let context = "\(name) \(type) size=\(size.map(String.init) ?? "none") \(transport)"
                    if transport == .udp && type == .a {
                        #expect(length != nil, "the fast path cuts it: \(context)")
                    }
                    if let length { #expect(Array(buffer[0..<length]) == general, "\(context)") }
                    let decoded = try Message(decoding: general)
                    if decoded.header.isTruncated && length != nil { fastCuts += 1 }
                    #expect(transport == .udp || !decoded.header.isTruncated, "\(context)")
                }
            }
        }
        // A without EDNS, at 512 and 700; SRV at every UDP size.
        #expect(fastCuts >= 8)
    }

    /// An ExternalName's target the general path can follow: into another zone we serve, or
    /// upstream for a client allowed recursion; and a target in the cluster zone that is not
    /// there (its NXDOMAIN is added). All three are left to the general path.
    @Test func leavesChasedTargetsToTheGeneralPath() throws {
        let zone = try ZoneParser().parse("$TTL 60\n@ SOA ns h 1 1 1 1 1\n NS ns\nns A 192.0.2.1\nsearch A 192.0.2.80\n",
                                          origin: try DomainName("example.com."))
        let responder = try makeResponder()
        responder.catalog.add(StaticAuthority(zone: zone))
        func fast(_ responder: Responder, _ name: String, recursion: Bool = false) throws -> Int? {
            let query = Message(questions: [Question(name: try DomainName(name), type: .a)], edns: EDNS()).encoded()
            var buffer = [UInt8](repeating: 0, count: 65535)
            return query.withUnsafeBytes { q in
                buffer.withUnsafeMutableBytes { responder.fastRespond(to: q, into: $0, transport: .udp, recursionAvailable: recursion) }
            }
        }
        #expect(try fast(responder, "search.shop.svc.cluster.local.") == nil, "chased into example.com")
        let general = try Message(decoding: try #require(responder.respond(to: Message(
            questions: [Question(name: try DomainName("search.shop.svc.cluster.local."), type: .a)]).encoded(), transport: .udp)))
        #expect(general.answers.map(\.description) == ["search.shop.svc.cluster.local. 5 IN CNAME search.example.com.",
                                                        "search.example.com. 60 IN A 192.0.2.80"])
        let alone = try makeResponder()
        #expect(try fast(alone, "search.shop.svc.cluster.local.") != nil)
        #expect(try fast(alone, "search.shop.svc.cluster.local.", recursion: true) == nil, "the target goes upstream")
        #expect(try fast(alone, "dangling.shop.svc.cluster.local.") == nil, "the target's NXDOMAIN is added")
    }

    @Test func leavesTheRestToTheGeneralPath() throws {
        for (name, type) in [("10-244-1-5.shop.pod.cluster.local.", RecordType.a), ("cluster.local.", .any),
                             ("cluster.local.", .axfr), ("example.com.", .a)] {
            let query = Message(questions: [Question(name: try DomainName(name), type: type)]).encoded()
            #expect(try both(query).fast == nil, "\(name) \(type)")
        }
    }
}
