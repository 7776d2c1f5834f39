import DNSAuthority
import KubernetesDNS
import DNSWire
import NetAddress
import Testing
import ZoneFile

let staticZoneText = """
    $ORIGIN example.com.
    $TTL 3600
    @        IN SOA ns1 hostmaster 7 7200 900 1209600 300
             IN NS  ns1
             IN MX  10 mail
             IN A   192.0.2.10
    ns1      IN A   192.0.2.53
    mail     IN A   192.0.2.25
    mail     IN AAAA 2001:db8::25
    www      IN CNAME @
    alias    IN CNAME www
    dangling IN CNAME nothere
    outside  IN CNAME web.shop.svc.cluster.local.
    away     IN CNAME www.example.net.
    loop1    IN CNAME loop2
    loop2    IN CNAME loop1
    a.b.c    IN TXT "deep"
    *.wild   IN A   192.0.2.99
    *.wild   IN TXT "wildcard"
    x.wild   IN A   192.0.2.100
    _sip._tcp IN SRV 0 5 5060 mail
    lab      IN NS  ns.lab
    ptr      IN PTR www
    @        IN CAA 0 issue "ca.example"
    info     IN A   192.0.2.30
    info     IN TYPE65280 \\# 4 0a000001
    ns.lab   IN A   192.0.2.98
    deep.lab IN A   192.0.2.97
    """

let exSOA = "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 7 7200 900 1209600 300"

let staticCases: [Case] = [
    Case(name: "example.com.", type: .a, answer: ["example.com. 3600 IN A 192.0.2.10"]),
    Case(name: "example.com.", type: .mx, answer: ["example.com. 3600 IN MX 10 mail.example.com."],
         additional: ["mail.example.com. 3600 IN A 192.0.2.25", "mail.example.com. 3600 IN AAAA 2001:db8::25"]),
    Case(name: "example.com.", type: .ns, answer: ["example.com. 3600 IN NS ns1.example.com."],
         additional: ["ns1.example.com. 3600 IN A 192.0.2.53"]),
    Case(name: "example.com.", type: .aaaa, authority: [exSOA]),
    Case(name: "mail.example.com.", type: .txt, authority: [exSOA]),
    Case(name: "nope.example.com.", type: .a, rcode: .nameError, authority: [exSOA]),
    // CNAME chains inside the zone, to NODATA, to NXDOMAIN, and loops.
    Case(name: "www.example.com.", type: .a, answer: ["www.example.com. 3600 IN CNAME example.com.", "example.com. 3600 IN A 192.0.2.10"]),
    Case(name: "alias.example.com.", type: .a, answer: ["alias.example.com. 3600 IN CNAME www.example.com.",
                                                         "www.example.com. 3600 IN CNAME example.com.", "example.com. 3600 IN A 192.0.2.10"]),
    Case(name: "www.example.com.", type: .cname, answer: ["www.example.com. 3600 IN CNAME example.com."]),
    Case(name: "www.example.com.", type: .aaaa, answer: ["www.example.com. 3600 IN CNAME example.com."], authority: [exSOA]),
    Case(name: "dangling.example.com.", type: .a, rcode: .nameError,
         answer: ["dangling.example.com. 3600 IN CNAME nothere.example.com."], authority: [exSOA]),
    Case(name: "loop1.example.com.", type: .a, answer: ["loop1.example.com. 3600 IN CNAME loop2.example.com.",
                                                        "loop2.example.com. 3600 IN CNAME loop1.example.com."]),
    // Leaving the zone: followed into the cluster zone we also serve; elsewhere, the CNAME alone.
    Case(name: "outside.example.com.", type: .a, answer: ["outside.example.com. 3600 IN CNAME web.shop.svc.cluster.local.",
                                                          "web.shop.svc.cluster.local. 5 IN A 10.96.0.10"]),
    Case(name: "away.example.com.", type: .a, answer: ["away.example.com. 3600 IN CNAME www.example.net."]),
    // Empty non-terminals exist: NODATA, not NXDOMAIN.
    Case(name: "b.c.example.com.", type: .a, authority: [exSOA]),
    Case(name: "c.example.com.", type: .txt, authority: [exSOA]),
    Case(name: "a.b.c.example.com.", type: .txt, answer: ["a.b.c.example.com. 3600 IN TXT \"deep\""]),
    // Wildcards (RFC 4592): synthesised with the query's name; an existing name blocks them.
    Case(name: "any.wild.example.com.", type: .a, answer: ["any.wild.example.com. 3600 IN A 192.0.2.99"]),
    Case(name: "any.wild.example.com.", type: .txt, answer: ["any.wild.example.com. 3600 IN TXT \"wildcard\""]),
    Case(name: "any.wild.example.com.", type: .mx, authority: [exSOA]),
    Case(name: "x.wild.example.com.", type: .a, answer: ["x.wild.example.com. 3600 IN A 192.0.2.100"]),
    Case(name: "x.wild.example.com.", type: .txt, authority: [exSOA]),
    Case(name: "wild.example.com.", type: .a, authority: [exSOA]),
    Case(name: "deeper.x.wild.example.com.", type: .a, rcode: .nameError, authority: [exSOA]),
    // SRV with its target's addresses.
    Case(name: "_sip._tcp.example.com.", type: .srv, answer: ["_sip._tcp.example.com. 3600 IN SRV 0 5 5060 mail.example.com."],
         additional: ["mail.example.com. 3600 IN A 192.0.2.25", "mail.example.com. 3600 IN AAAA 2001:db8::25"]),
    // Delegation: a referral (not authoritative) with glue, for the cut and everything below.
    Case(name: "lab.example.com.", type: .a, authority: ["lab.example.com. 3600 IN NS ns.lab.example.com."],
         additional: ["ns.lab.example.com. 3600 IN A 192.0.2.98"]),
    Case(name: "deep.lab.example.com.", type: .a, authority: ["lab.example.com. 3600 IN NS ns.lab.example.com."],
         additional: ["ns.lab.example.com. 3600 IN A 192.0.2.98"]),
    Case(name: "host.lab.example.com.", type: .mx, authority: ["lab.example.com. 3600 IN NS ns.lab.example.com."],
         additional: ["ns.lab.example.com. 3600 IN A 192.0.2.98"]),
    Case(name: "lab.example.com.", type: .ds, authority: [exSOA]),
    // Types the fast path pre-encodes beyond the cluster's (PTR, CAA), and a name that also
    // holds a type it does not: that type, and the types the name lacks, take the general path.
    Case(name: "ptr.example.com.", type: .ptr, answer: ["ptr.example.com. 3600 IN PTR www.example.com."]),
    Case(name: "example.com.", type: .caa, answer: ["example.com. 3600 IN CAA 0 issue \"ca.example\""]),
    Case(name: "info.example.com.", type: .a, answer: ["info.example.com. 3600 IN A 192.0.2.30"]),
    Case(name: "info.example.com.", type: RecordType(65280), answer: ["info.example.com. 3600 IN TYPE65280 \\# 4 0a000001"]),
    Case(name: "info.example.com.", type: .txt, authority: [exSOA]),
]

@Suite struct StaticZoneTests {
    static let responder: Responder = {
        let base = try! makeResponder()
        let zone = try! ZoneParser().parse(staticZoneText, origin: DomainName("example.com."))
        base.catalog.add(StaticAuthority(zone: zone))
        return base
    }()

    func ask(_ name: String, _ type: RecordType) throws -> Message {
        let query = Message(header: Header(id: 7, isRecursionDesired: true),
                            questions: [Question(name: try DomainName(name), type: type)], edns: EDNS())
        return try Message(decoding: try #require(Self.responder.respond(to: query.encoded())))
    }

    @Test(arguments: staticCases)
    func answers(_ c: Case) throws {
        let response = try ask(c.name, c.type)
        #expect(response.rcode == c.rcode)
        let isReferral = response.answers.isEmpty && response.authorities.contains { $0.type == .ns }
        #expect(response.header.isAuthoritative == !isReferral)
        #expect(response.answers.map(\.description) == c.answer)
        #expect(response.authorities.map(\.description).sorted() == c.authority.sorted())
        #expect(response.additionals.map(\.description).sorted() == c.additional.sorted())
    }

    @Test func namesOutsideEveryZoneAreRefusedWithoutRecursion() throws {
        let response = try ask("www.example.net.", .a)
        #expect(response.rcode == .refused)
        #expect(!response.header.isAuthoritative && !response.header.isRecursionAvailable)
    }

    /// The static table's cases through the fast path too: a zone file's answers are
    /// pre-encoded like the cluster's, and where the fast path answers it answers the same.
    @Test func theFastPathAnswersStaticZones() throws {
        var fast = 0
        for c in staticCases {
            let query = Message(header: Header(id: 7, isRecursionDesired: true),
                                questions: [Question(name: try DomainName(c.name), type: c.type)], edns: EDNS()).encoded()
            var buffer = [UInt8](repeating: 0, count: 1232)
            guard let length = query.withUnsafeBytes({ q in buffer.withUnsafeMutableBytes { Self.responder.fastRespond(to: q, into: $0, transport: .udp) } })
            else { continue }
            fast += 1
            #expect(Array(buffer[0..<length]) == Self.responder.respond(to: query), "\(c)")
        }
        #expect(fast >= staticCases.count / 2, "\(fast) of \(staticCases.count) on the fast path")
    }

    /// AXFR of a zone file's zone, for a client allowed to transfer: the SOA, every record,
    /// the SOA again; refused to anyone else.
    @Test func staticZonesTransferToAllowedClients() throws {
        var responder = Self.responder
        responder.allowTransfer = [try IPPrefix(parsing: "127.0.0.0/8")]
        let axfr = Message(header: Header(id: 9), questions: [Question(name: try DomainName("example.com."), type: .axfr)]).encoded()
        let messages = try #require(responder.transfer(axfr, from: IPAddress("127.0.0.1")))
        let records = try messages.flatMap { try Message(decoding: $0).answers }
        let zone = try ZoneParser().parse(staticZoneText, origin: try DomainName("example.com."))
        #expect(records.first?.type == .soa && records.last?.type == .soa)
        #expect(records.count == zone.records.count + 1)
        #expect(responder.transfer(axfr, from: IPAddress("192.0.2.1")) == nil, "not allowed: the ordinary path refuses it")
    }

    @Test func zonesAreRoutedByLabelsNotBySuffix() throws {
        #expect(try ask("badexample.com.", .a).rcode == .refused)
        #expect(try ask("MAIL.Example.COM.", .a).answers.map(\.description) == ["MAIL.Example.COM. 3600 IN A 192.0.2.25"])
    }
}
