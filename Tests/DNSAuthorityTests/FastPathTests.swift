import DNSAuthority
import DNSWire
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
    ])
    func takesTheFastPath(_ name: String, _ type: RecordType) throws {
        let query = Message(questions: [Question(name: try DomainName(name), type: type)], edns: EDNS()).encoded()
        let (fast, _) = try both(query)
        #expect(fast != nil)
    }

    @Test func leavesTheRestToTheGeneralPath() throws {
        for (name, type) in [("10-244-1-5.shop.pod.cluster.local.", RecordType.a), ("cluster.local.", .any),
                             ("cluster.local.", .axfr), ("example.com.", .a)] {
            let query = Message(questions: [Question(name: try DomainName(name), type: type)]).encoded()
            #expect(try both(query).fast == nil, "\(name) \(type)")
        }
    }
}
