import DNSWire
import NetAddress
import Testing

/// `ReplyShape.unshaped`: a reply as a cache keeps it, for other clients' shapes.
@Suite struct ReplyShapeTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let reason: String
        /// The client's query had EDNS (so the shape's replies end in OPT).
        let edns: Bool
        /// What is done to the reply the shape wrote before it is unshaped.
        let damage: @Sendable ([UInt8]) -> [UInt8]
        /// nil: refused; else the expected bytes are the reply encoded without OPT, ID 0, the
        /// question lower-cased.
        let kept: Bool
        var questionEnd: Int? = nil
        var testDescription: String { reason }
    }

    static let cases: [Case] = [
        Case(reason: "with EDNS: the OPT record goes, and its count", edns: true, damage: { $0 }, kept: true),
        Case(reason: "without EDNS: only the ID and the letters change", edns: false, damage: { $0 }, kept: true),
        Case(reason: "truncated: not kept", edns: true, damage: { var r = $0; r[2] |= 0x02; return r }, kept: false),
        Case(reason: "the OPT record the shape wrote is missing: refused", edns: true, damage: { Array($0.dropLast(11)) }, kept: false),
        Case(reason: "no additional record counted: refused", edns: true, damage: { var r = $0; r[10] = 0; r[11] = 0; return r }, kept: false),
        Case(reason: "a question end before any question could end: refused, not a crash", edns: true, damage: { $0 }, kept: false,
             questionEnd: 14),
        Case(reason: "a question end past the reply: refused", edns: false, damage: { Array($0.prefix(20)) }, kept: false),
    ]

    func reply(edns: Bool, id: UInt16, name text: String = "ExT.Default.SVC.cluster.local.") throws
        -> (shape: ReplyShape, bytes: [UInt8], questionEnd: Int) {
        let name = try DomainName(text)
        let query = Message(header: Header(id: id, isRecursionDesired: true), questions: [Question(name: name, type: .a)],
                            edns: edns ? EDNS(udpPayloadSize: 1232, isDNSSECOK: true) : nil)
        let shape = ReplyShape(query, transport: .udp, maxUDPPayload: 1232, recursionAvailable: true)
        var response = shape.message(questions: query.questions)
        response.answers = [ResourceRecord(name: name, ttl: 5, data: .cname(try DomainName("www.example."))),
                            ResourceRecord(name: try DomainName("www.example."), ttl: 300, data: .a(IPv4Address("192.0.2.1")!))]
        var writer = WireWriter()
        shape.encode(response, into: &writer)
        return (shape, writer.bytes, 12 + name.wireLength + 4)
    }

    @Test(arguments: cases) func unshaped(_ test: Case) throws {
        let (shape, bytes, questionEnd) = try reply(edns: test.edns, id: 0xBEEF)
        let stored = shape.unshaped(test.damage(bytes), questionEnd: test.questionEnd ?? questionEnd)
        guard test.kept else {
            #expect(stored == nil)
            return
        }
        // The reply to the lower-case question without OPT, ID 0.
        #expect(stored == (try reply(edns: false, id: 0, name: "ext.default.svc.cluster.local.").bytes))
        let decoded = try Message(decoding: try #require(stored))
        #expect(decoded.questions.map(\.name.description) == ["ext.default.svc.cluster.local."])
        #expect(decoded.edns == nil && decoded.answers.count == 2 && decoded.header.isRecursionAvailable)
    }
}
