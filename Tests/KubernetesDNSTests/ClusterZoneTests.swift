import DNSAuthority
import KubernetesDNS
import DNSWire
import NetAddress
import ServiceRegistry
import Testing

/// The cluster used by the answer tables, as manifests.
let clusterManifests = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: empty}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: kubernetes, namespace: default}
    spec:
      clusterIP: 10.96.0.1
      ports: [{name: https, port: 443, targetPort: 6443}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec:
      clusterIP: 10.96.0.10
      selector: {app: web}
      ports:
      - {name: http, port: 80, targetPort: http}
      - {name: dns, port: 53, protocol: UDP}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-0, namespace: shop, labels: {app: web}}
    spec: {containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]}
    status: {podIP: 10.244.1.5}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-1, namespace: shop, labels: {app: web}}
    spec: {containers: [{name: app, ports: [{name: http, containerPort: 8080}]}]}
    status: {podIP: 10.244.1.6, conditions: [{type: Ready, status: "False"}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: db, namespace: shop}
    spec:
      clusterIP: None
      selector: {app: db}
      ports: [{name: pg, port: 5432}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: db-0, namespace: shop, labels: {app: db}}
    spec: {hostname: db-0, subdomain: db, containers: [{name: pg}]}
    status: {podIP: 10.244.2.7}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: db-1, namespace: shop, labels: {app: db}}
    spec: {containers: [{name: pg}]}
    status: {podIP: 10.244.2.8}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: nobody, namespace: shop}
    spec: {clusterIP: None, selector: {app: nobody}, ports: [{port: 80}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: search, namespace: shop}
    spec: {type: ExternalName, externalName: search.example.com}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: alias, namespace: shop}
    spec: {type: ExternalName, externalName: web.shop.svc.cluster.local}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: loop-a, namespace: shop}
    spec: {type: ExternalName, externalName: loop-b.shop.svc.cluster.local}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: loop-b, namespace: shop}
    spec: {type: ExternalName, externalName: loop-a.shop.svc.cluster.local}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: by-ip, namespace: shop}
    spec: {type: ExternalName, externalName: 192.0.2.1}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: dangling, namespace: shop}
    spec: {type: ExternalName, externalName: gone.shop.svc.cluster.local}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: dual, namespace: shop}
    spec:
      clusterIPs: [10.96.0.20, "fd00:10:96::20"]
      ipFamilyPolicy: RequireDualStack
      ports: [{name: http, port: 80}]
    ---
    # A headless service without a selector whose endpoints come in two EndpointSlices: m-0 is
    # listed in both, and two endpoints share the hostname "shared".
    apiVersion: v1
    kind: Service
    metadata: {name: multi, namespace: shop}
    spec: {clusterIP: None, ports: [{name: http, port: 8080}]}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: multi-a, namespace: shop, labels: {kubernetes.io/service-name: multi}}
    addressType: IPv4
    ports: [{name: http, port: 8080, protocol: TCP}]
    endpoints:
    - {addresses: [10.244.3.1], hostname: m-0}
    - {addresses: [10.244.3.2], hostname: shared}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: multi-b, namespace: shop, labels: {kubernetes.io/service-name: multi}}
    addressType: IPv4
    ports: [{name: http, port: 8080, protocol: TCP}]
    endpoints:
    - {addresses: [10.244.3.1], hostname: m-0}
    - {addresses: [10.244.3.3], hostname: shared}
    """

func makeResponder(pods: ClusterConfiguration.PodsMode = .verified, loaded: Bool = true) throws -> Responder {
    let registry = try Registry(configuration: RegistryConfiguration(serviceCIDRs: [
        try IPPrefix(parsing: "10.96.0.0/12"), try IPPrefix(parsing: "fd00:10:96::/112"),
    ]))
    for entry in Manifest.decode(clusterManifests) { try registry.apply(try entry.result.get()) }
    if loaded { registry.markLoaded() }
    let configuration = ClusterConfiguration(pods: pods, serviceCIDRs: registry.configuration.serviceCIDRs,
                                             serverAddresses: [IPAddress("10.96.0.53")!])
    let cluster = ClusterAuthority(configuration: configuration, snapshot: registry.snapshot())
    return Responder(catalog: Catalog(cluster.authorities))
}

/// One question and the whole expected response, CoreDNS-test style, in zone-file syntax.
struct Case: CustomStringConvertible, Sendable {
    var name: String
    var type: RecordType
    var rcode: ResponseCode = .noError
    var answer: [String] = []
    var authority: [String] = []
    var additional: [String] = []
    var description: String { "\(name) \(type)" }
}

let soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"

func nodata(_ name: String, _ type: RecordType) -> Case { Case(name: name, type: type, authority: [soa]) }
func nxdomain(_ name: String, _ type: RecordType = .a) -> Case { Case(name: name, type: type, rcode: .nameError, authority: [soa]) }

let cases: [Case] = [
    // Services.
    Case(name: "kubernetes.default.svc.cluster.local.", type: .a, answer: ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]),
    Case(name: "web.shop.svc.cluster.local.", type: .a, answer: ["web.shop.svc.cluster.local. 5 IN A 10.96.0.10"]),
    nodata("web.shop.svc.cluster.local.", .aaaa),
    nodata("web.shop.svc.cluster.local.", .txt),
    nodata("web.shop.svc.cluster.local.", .mx),
    nodata("web.shop.svc.cluster.local.", .hinfo),
    Case(name: "dual.shop.svc.cluster.local.", type: .aaaa, answer: ["dual.shop.svc.cluster.local. 5 IN AAAA fd00:10:96::20"]),
    Case(name: "dual.shop.svc.cluster.local.", type: .a, answer: ["dual.shop.svc.cluster.local. 5 IN A 10.96.0.20"]),
    // SRV: named ports, the bare name with every port, unnamed ports have no _port name.
    // A ClusterIP service's SRV targets are the service name, its addresses in additional.
    Case(name: "_http._tcp.web.shop.svc.cluster.local.", type: .srv,
         answer: ["_http._tcp.web.shop.svc.cluster.local. 5 IN SRV 0 100 80 web.shop.svc.cluster.local."],
         additional: ["web.shop.svc.cluster.local. 5 IN A 10.96.0.10"]),
    Case(name: "_dns._udp.web.shop.svc.cluster.local.", type: .srv,
         answer: ["_dns._udp.web.shop.svc.cluster.local. 5 IN SRV 0 100 53 web.shop.svc.cluster.local."],
         additional: ["web.shop.svc.cluster.local. 5 IN A 10.96.0.10"]),
    Case(name: "_https._tcp.kubernetes.default.svc.cluster.local.", type: .srv,
         answer: ["_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."],
         additional: ["kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]),
    // Dual stack: both families of the target.
    Case(name: "_http._tcp.dual.shop.svc.cluster.local.", type: .srv,
         answer: ["_http._tcp.dual.shop.svc.cluster.local. 5 IN SRV 0 100 80 dual.shop.svc.cluster.local."],
         additional: ["dual.shop.svc.cluster.local. 5 IN A 10.96.0.20", "dual.shop.svc.cluster.local. 5 IN AAAA fd00:10:96::20"]),
    nxdomain("_dns._tcp.web.shop.svc.cluster.local.", .srv),
    nodata("_tcp.web.shop.svc.cluster.local.", .srv),
    Case(name: "web.shop.svc.cluster.local.", type: .srv,
         answer: ["web.shop.svc.cluster.local. 5 IN SRV 0 50 80 web.shop.svc.cluster.local.",
                  "web.shop.svc.cluster.local. 5 IN SRV 0 50 53 web.shop.svc.cluster.local."],
         additional: ["web.shop.svc.cluster.local. 5 IN A 10.96.0.10"]),
    // ClusterIP service endpoints by dashed IP (ready ones only).
    Case(name: "10-244-1-5.web.shop.svc.cluster.local.", type: .a, answer: ["10-244-1-5.web.shop.svc.cluster.local. 5 IN A 10.244.1.5"]),
    nxdomain("10-244-1-6.web.shop.svc.cluster.local."),
    // Headless: every ready endpoint; hostnames and dashed names; SRV to endpoint names with glue.
    Case(name: "db.shop.svc.cluster.local.", type: .a,
         answer: ["db.shop.svc.cluster.local. 5 IN A 10.244.2.7", "db.shop.svc.cluster.local. 5 IN A 10.244.2.8"]),
    Case(name: "db-0.db.shop.svc.cluster.local.", type: .a, answer: ["db-0.db.shop.svc.cluster.local. 5 IN A 10.244.2.7"]),
    Case(name: "10-244-2-7.db.shop.svc.cluster.local.", type: .a, answer: ["10-244-2-7.db.shop.svc.cluster.local. 5 IN A 10.244.2.7"]),
    Case(name: "10-244-2-8.db.shop.svc.cluster.local.", type: .a, answer: ["10-244-2-8.db.shop.svc.cluster.local. 5 IN A 10.244.2.8"]),
    Case(name: "_pg._tcp.db.shop.svc.cluster.local.", type: .srv,
         answer: ["_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.shop.svc.cluster.local.",
                  "_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-2-8.db.shop.svc.cluster.local."],
         additional: ["db-0.db.shop.svc.cluster.local. 5 IN A 10.244.2.7", "10-244-2-8.db.shop.svc.cluster.local. 5 IN A 10.244.2.8"]),
    nxdomain("nobody.shop.svc.cluster.local."),  // headless without ready endpoints
    // ExternalName: CNAME; chased inside the zone; loops bounded; IP-valued ignored; nothing below it.
    Case(name: "search.shop.svc.cluster.local.", type: .a, answer: ["search.shop.svc.cluster.local. 5 IN CNAME search.example.com."]),
    Case(name: "search.shop.svc.cluster.local.", type: .cname, answer: ["search.shop.svc.cluster.local. 5 IN CNAME search.example.com."]),
    Case(name: "alias.shop.svc.cluster.local.", type: .a,
         answer: ["alias.shop.svc.cluster.local. 5 IN CNAME web.shop.svc.cluster.local.", "web.shop.svc.cluster.local. 5 IN A 10.96.0.10"]),
    Case(name: "loop-a.shop.svc.cluster.local.", type: .a,
         answer: ["loop-a.shop.svc.cluster.local. 5 IN CNAME loop-b.shop.svc.cluster.local.",
                  "loop-b.shop.svc.cluster.local. 5 IN CNAME loop-a.shop.svc.cluster.local."]),
    nxdomain("by-ip.shop.svc.cluster.local."),
    // A target inside the zone that does not exist: the CNAME and the target's NXDOMAIN.
    Case(name: "dangling.shop.svc.cluster.local.", type: .a, rcode: .nameError,
         answer: ["dangling.shop.svc.cluster.local. 5 IN CNAME gone.shop.svc.cluster.local."], authority: [soa]),
    nxdomain("x.search.shop.svc.cluster.local."),
    // An ExternalName has no SRV records and its CNAME is left out of SRV answers (CoreDNS).
    nodata("search.shop.svc.cluster.local.", .srv),
    nodata("alias.shop.svc.cluster.local.", .srv),
    // An RRset never holds a record twice: m-0 is in both slices, "shared" names two endpoints.
    Case(name: "multi.shop.svc.cluster.local.", type: .a,
         answer: ["multi.shop.svc.cluster.local. 5 IN A 10.244.3.1", "multi.shop.svc.cluster.local. 5 IN A 10.244.3.2",
                  "multi.shop.svc.cluster.local. 5 IN A 10.244.3.3"]),
    Case(name: "m-0.multi.shop.svc.cluster.local.", type: .a, answer: ["m-0.multi.shop.svc.cluster.local. 5 IN A 10.244.3.1"]),
    Case(name: "10-244-3-1.multi.shop.svc.cluster.local.", type: .a,
         answer: ["10-244-3-1.multi.shop.svc.cluster.local. 5 IN A 10.244.3.1"]),
    Case(name: "shared.multi.shop.svc.cluster.local.", type: .a,
         answer: ["shared.multi.shop.svc.cluster.local. 5 IN A 10.244.3.2", "shared.multi.shop.svc.cluster.local. 5 IN A 10.244.3.3"]),
    Case(name: "_http._tcp.multi.shop.svc.cluster.local.", type: .srv,
         answer: ["_http._tcp.multi.shop.svc.cluster.local. 5 IN SRV 0 50 8080 m-0.multi.shop.svc.cluster.local.",
                  "_http._tcp.multi.shop.svc.cluster.local. 5 IN SRV 0 50 8080 shared.multi.shop.svc.cluster.local."],
         additional: ["m-0.multi.shop.svc.cluster.local. 5 IN A 10.244.3.1", "shared.multi.shop.svc.cluster.local. 5 IN A 10.244.3.2",
                      "shared.multi.shop.svc.cluster.local. 5 IN A 10.244.3.3"]),
    Case(name: "1.3.244.10.in-addr.arpa.", type: .ptr, answer: ["1.3.244.10.in-addr.arpa. 5 IN PTR m-0.multi.shop.svc.cluster.local."]),
    Case(name: "3.3.244.10.in-addr.arpa.", type: .ptr, answer: ["3.3.244.10.in-addr.arpa. 5 IN PTR shared.multi.shop.svc.cluster.local."]),
    // Namespaces, the zone's structure, NXDOMAIN for everything else.
    nodata("shop.svc.cluster.local.", .a),
    nodata("empty.svc.cluster.local.", .a),
    nodata("svc.cluster.local.", .a),
    nodata("pod.cluster.local.", .a),
    nxdomain("nope.svc.cluster.local."),
    nxdomain("nope.shop.svc.cluster.local."),
    nxdomain("web.shop.svc.cluster.local.shop.svc.cluster.local."),
    nxdomain("web.shop.cluster.local."),
    nxdomain("other.cluster.local."),
    nxdomain("www.example.com.shop.svc.cluster.local.", .aaaa),
    // Pods (verified: only registered pod IPs in that namespace).
    Case(name: "10-244-1-5.shop.pod.cluster.local.", type: .a, answer: ["10-244-1-5.shop.pod.cluster.local. 5 IN A 10.244.1.5"]),
    nxdomain("10-244-1-5.default.pod.cluster.local."),
    nxdomain("10-9-9-9.shop.pod.cluster.local."),
    // The apex.
    Case(name: "cluster.local.", type: .soa, answer: [soa]),
    Case(name: "cluster.local.", type: .ns, answer: ["cluster.local. 5 IN NS ns.dns.cluster.local."],
         additional: ["ns.dns.cluster.local. 5 IN A 10.96.0.53"]),
    Case(name: "ns.dns.cluster.local.", type: .a, answer: ["ns.dns.cluster.local. 5 IN A 10.96.0.53"]),
    Case(name: "dns-version.cluster.local.", type: .txt, answer: ["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""]),
    nodata("dns-version.cluster.local.", .a),
    // Reverse: cluster IPs win, endpoints have one PTR per service, unknown service IPs NXDOMAIN.
    Case(name: "10.0.96.10.in-addr.arpa.", type: .ptr, answer: ["10.0.96.10.in-addr.arpa. 5 IN PTR web.shop.svc.cluster.local."]),
    Case(name: "5.1.244.10.in-addr.arpa.", type: .ptr, answer: ["5.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-5.web.shop.svc.cluster.local."]),
    Case(name: "7.2.244.10.in-addr.arpa.", type: .ptr, answer: ["7.2.244.10.in-addr.arpa. 5 IN PTR db-0.db.shop.svc.cluster.local."]),
    Case(name: "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", type: .ptr,
         answer: ["0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.shop.svc.cluster.local."]),
    nxdomain("99.0.96.10.in-addr.arpa.", .ptr),
]

@Suite struct ClusterAnswerTests {
    static let responder = try! makeResponder()

    func ask(_ responder: Responder, _ name: String, _ type: RecordType) throws -> Message {
        var query = Message(header: Header(id: 42, isRecursionDesired: true),
                            questions: [Question(name: try DomainName(name), type: type)], edns: EDNS())
        query.header.id = 42
        let bytes = try #require(responder.respond(to: query.encoded()))
        return try Message(decoding: bytes)
    }

    @Test(arguments: cases)
    func answers(_ c: Case) throws {
        let response = try ask(Self.responder, c.name, c.type)
        #expect(response.rcode == c.rcode)
        #expect(response.header.isAuthoritative)
        #expect(response.header.isResponse && response.header.id == 42 && response.header.isRecursionDesired)
        #expect(response.answers.map(\.description).sorted() == c.answer.sorted())
        #expect(response.authorities.map(\.description).sorted() == c.authority.sorted())
        #expect(response.additionals.map(\.description).sorted() == c.additional.sorted())
    }

    @Test func answerEchoesTheQuestionsLetters() throws {
        let response = try ask(Self.responder, "WEB.Shop.SVC.cluster.LOCAL.", .a)
        #expect(response.questions[0].name.description == "WEB.Shop.SVC.cluster.LOCAL.")
        #expect(response.answers.map(\.description) == ["WEB.Shop.SVC.cluster.LOCAL. 5 IN A 10.96.0.10"])
    }

    /// Names inside the zone copy the question's letters for the zone's apex only; the labels
    /// below it are the objects' names, lower-case (CoreDNS keeps the zone as the question
    /// wrote it). Compared letter for letter, on the general path and the fast path.
    @Test(arguments: [
        ("ALIAS.Shop.SVC.Cluster.LOCAL.", RecordType.a,
         ["ALIAS.Shop.SVC.Cluster.LOCAL. 5 IN CNAME web.shop.svc.Cluster.LOCAL.", "web.shop.svc.Cluster.LOCAL. 5 IN A 10.96.0.10"],
         [String](), [String]()),
        ("_HTTP._tcp.Web.shop.svc.CLUSTER.local.", .srv,
         ["_HTTP._tcp.Web.shop.svc.CLUSTER.local. 5 IN SRV 0 100 80 web.shop.svc.CLUSTER.local."], [],
         ["web.shop.svc.CLUSTER.local. 5 IN A 10.96.0.10"]),
        ("_PG._Tcp.DB.Shop.Svc.Cluster.LOCAL.", .srv,
         ["_PG._Tcp.DB.Shop.Svc.Cluster.LOCAL. 5 IN SRV 0 50 5432 10-244-2-8.db.shop.svc.Cluster.LOCAL.",
          "_PG._Tcp.DB.Shop.Svc.Cluster.LOCAL. 5 IN SRV 0 50 5432 db-0.db.shop.svc.Cluster.LOCAL."], [],
         ["db-0.db.shop.svc.Cluster.LOCAL. 5 IN A 10.244.2.7", "10-244-2-8.db.shop.svc.Cluster.LOCAL. 5 IN A 10.244.2.8"]),
        ("Nope.Shop.SVC.Cluster.Local.", .a, [], ["Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. 1 7200 1800 86400 5"], []),
        ("NS.DNS.Cluster.Local.", .txt, [], ["Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. 1 7200 1800 86400 5"], []),
        ("Cluster.LOCAL.", .ns, ["Cluster.LOCAL. 5 IN NS ns.dns.Cluster.LOCAL."], [], ["ns.dns.Cluster.LOCAL. 5 IN A 10.96.0.53"]),
    ])
    func namesInTheZoneTakeTheApexLettersOfTheQuestion(_ name: String, _ type: RecordType, _ answer: [String],
                                                        _ authority: [String], _ additional: [String]) throws {
        let query = Message(header: Header(id: 7), questions: [Question(name: try DomainName(name), type: type)], edns: EDNS()).encoded()
        let general = try #require(Self.responder.respond(to: query))
        var buffer = [UInt8](repeating: 0, count: 1232)
        let length = query.withUnsafeBytes { q in buffer.withUnsafeMutableBytes { Self.responder.fastRespond(to: q, into: $0, transport: .udp) } }
        for reply in [general] + (length.map { [Array(buffer[0..<$0])] } ?? []) {
            let response = try Message(decoding: reply)
            #expect(response.answers.map(\.description).sorted() == answer.sorted())
            #expect(response.authorities.map(\.description) == authority)
            #expect(response.additionals.map(\.description).sorted() == additional.sorted())
        }
        #expect(length != nil, "the fast path answers it too")
    }

    @Test func beforeTheFirstLoadNXDOMAINIsSERVFAIL() throws {
        let responder = try makeResponder(loaded: false)
        #expect(try ask(responder, "nope.shop.svc.cluster.local.", .a).rcode == .serverFailure)
        #expect(try ask(responder, "web.shop.svc.cluster.local.", .a).rcode == .noError)
    }

    @Test(arguments: [
        (ClusterConfiguration.PodsMode.insecure, "10-9-9-9.shop.pod.cluster.local.", ResponseCode.noError, 1),
        (.insecure, "not-an-ip.shop.pod.cluster.local.", .nameError, 0),
        (.disabled, "10-244-1-5.shop.pod.cluster.local.", .nameError, 0),
        (.verified, "fd00--1.shop.pod.cluster.local.", .nameError, 0),
    ])
    func podModes(_ mode: ClusterConfiguration.PodsMode, _ name: String, _ rcode: ResponseCode, _ answers: Int) throws {
        let response = try ask(try makeResponder(pods: mode), name, .a)
        #expect(response.rcode == rcode)
        #expect(response.answers.count == answers)
    }
}

@Suite struct ResponderTests {
    static let responder = try! makeResponder()

    @Test func garbageIsDropped() {
        #expect(Self.responder.respond(to: [1, 2, 3]) == nil)
        // A response (QR set) is never answered.
        #expect(Self.responder.respond(to: [0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == nil)
    }

    @Test(arguments: [
        ("bad body", "abcd01000001000000000000" + "03777777", ResponseCode.formatError, 0),
        ("two questions", "abcd01000002000000000000" + "0000010001" + "0000010001", .formatError, 2),
        ("no question", "abcd01000000000000000000", .formatError, 0),
        ("notify opcode", "abcd21000001000000000000" + "0000060001", .notImplemented, 1),
        ("chaos class", "abcd01000001000000000000" + "0000100003", .refused, 1),
        ("axfr", "abcd01000001000000000000" + "07636c7573746572056c6f63616c0000fc0001", .refused, 1),
        ("not our zone", "abcd01000001000000000000" + "076578616d706c6503636f6d0000010001", .refused, 1),
    ])
    func errorCodes(_ label: String, _ hex: String, _ rcode: ResponseCode, _ questions: Int) throws {
        let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
        let response = try Message(decoding: try #require(Self.responder.respond(to: bytes)))
        #expect(response.rcode == rcode, "\(label)")
        #expect(response.header.id == 0xABCD)
        #expect(response.questions.count == questions, "\(label)")
    }

    @Test func badEDNSVersion() throws {
        var query = Message(questions: [Question(name: try DomainName("web.shop.svc.cluster.local."), type: .a)])
        query.edns = EDNS(version: 1)
        let response = try Message(decoding: try #require(Self.responder.respond(to: query.encoded())))
        #expect(response.rcode == .badVersion)
        #expect(response.edns?.version == 0)
    }

    @Test func udpTruncatesToThePayloadSizeAndTCPDoesNot() throws {
        // 60 endpoints behind one headless service: far more than 512 bytes of A records.
        var manifest = "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\nspec: {clusterIP: None, selector: {app: big}, ports: [{port: 80}]}\n"
        for i in 0..<60 {
            manifest += "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p\(i), namespace: default, labels: {app: big}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.244.9.\(i + 1)}\n"
        }
        let registry = try Registry()
        for entry in Manifest.decode(manifest) { try registry.apply(try entry.result.get()) }
        registry.markLoaded()
        let cluster = ClusterAuthority(configuration: ClusterConfiguration(), snapshot: registry.snapshot())
        let responder = Responder(catalog: Catalog(cluster.authorities))
        let question = Question(name: try DomainName("big.default.svc.cluster.local."), type: .a)
        let plain = Message(questions: [question]).encoded()
        let udp = try Message(decoding: try #require(responder.respond(to: plain)))
        #expect(udp.header.isTruncated)
        #expect(try #require(responder.respond(to: plain)).count <= 512)
        let tcp = try Message(decoding: try #require(responder.respond(to: plain, transport: .tcp)))
        #expect(!tcp.header.isTruncated && tcp.answers.count == 60)
        let edns = Message(questions: [question], edns: EDNS(udpPayloadSize: 4096)).encoded()
        let big = try #require(responder.respond(to: edns))
        #expect(big.count <= 1232, "never more than our own maximum")
        #expect(try Message(decoding: big).answers.count > udp.answers.count)
    }
}

@Suite struct AddressNameTests {
    @Test(arguments: [("10.1.2.3", "10-1-2-3"), ("fd00::1", "fd00--1"), ("fd00::", "fd00--0"), ("::1", "0--1"), ("2001:db8:0:1::5", "2001-db8-0-1--5")])
    func dashedNames(_ address: String, _ dashed: String) {
        let ip = IPAddress(address)!
        #expect(ip.dashed == dashed)
        #expect(IPAddress.fromDashed(dashed) == ip)
    }

    @Test(arguments: [("10.1.2.3", "3.2.1.10.in-addr.arpa."), ("fd00:10:96::20", "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.")])
    func reverseNames(_ address: String, _ name: String) throws {
        let ip = IPAddress(address)!
        #expect(ip.reverseName.description == name)
        #expect(IPAddress.fromReverseName(try DomainName(name)) == ip)
    }

    @Test(arguments: [
        ("10.96.0.0/12", ["96.10.in-addr.arpa.", "111.10.in-addr.arpa."], 16),
        ("10.96.0.0/16", ["96.10.in-addr.arpa."], 1),
        ("10.96.0.0/24", ["0.96.10.in-addr.arpa."], 1),
        ("192.0.2.0/26", [], 0),  // finer than an octet: would need /32 zones... 64 of them
        ("fd00:10:96::/112", ["0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa."], 1),
    ])
    func reverseZones(_ cidr: String, _ someZones: [String], _ count: Int) throws {
        let zones = try IPPrefix(parsing: cidr).reverseZones(limit: count == 0 ? 16 : 4096).map(\.description)
        #expect(zones.count == count)
        for zone in someZones { #expect(zones.contains(zone), "\(zone)") }
    }
}
