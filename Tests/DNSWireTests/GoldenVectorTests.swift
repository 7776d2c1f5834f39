import DNSWire
import Testing

/// Messages encoded by dnspython (and one query sent by dig), checked three ways: our decoder
/// reads them to the same records dnspython prints, our encoder writes the same bytes back
/// (compression choices included), and decode(encode(m)) == m.
@Suite struct GoldenVectorTests {
    @Test(arguments: goldenVectors)
    func decodes(_ vector: GoldenVector) throws {
        let message = try Message(decoding: hexBytes(vector.hex))
        #expect(message.rcode.rawValue == vector.rcode)
        #expect(message.answers.map(\.description) == vector.answers)
        #expect(message.authorities.map(\.description) == vector.authority)
        #expect(message.additionals.map(\.description) == vector.additional)
    }

    @Test(arguments: goldenVectors)
    func encodesToTheSameBytes(_ vector: GoldenVector) throws {
        let bytes = hexBytes(vector.hex)
        let message = try Message(decoding: bytes)
        #expect(hexString(message.encoded()) == hexString(bytes))
    }

    @Test(arguments: goldenVectors)
    func roundTrips(_ vector: GoldenVector) throws {
        let message = try Message(decoding: hexBytes(vector.hex))
        let again = try Message(decoding: message.encoded())
        #expect(again == message)
    }

    @Test func queryFieldsFromDnspython() throws {
        let message = try Message(decoding: hexBytes(goldenVectors[0].hex))
        #expect(message.header.id == 0x1234)
        #expect(message.header.isRecursionDesired)
        #expect(!message.header.isResponse)
        #expect(message.questions == [Question(name: try DomainName("www.example.com."), type: .a)])
        let edns = try #require(message.edns)
        #expect(edns.udpPayloadSize == 1232)
        #expect(edns.isDNSSECOK)
        #expect(edns.version == 0)
        #expect(edns.options == [EDNSOption(code: .cookie, data: [1, 2, 3, 4, 5, 6, 7, 8])])
    }

    @Test func extendedRCodeThroughOPT() throws {
        let vector = try #require(goldenVectors.first { $0.name == "response-badvers" })
        let message = try Message(decoding: hexBytes(vector.hex))
        #expect(message.header.rcodeBits == 0)
        #expect(message.edns?.extendedRCodeBits == 1)
        #expect(message.rcode == .badVersion)
    }

    @Test func digQuery() throws {
        let vector = try #require(goldenVectors.first { $0.name == "dig-query" })
        let message = try Message(decoding: hexBytes(vector.hex))
        #expect(message.questions.first?.description == "Web.Default.svc.cluster.local. IN AAAA")
        #expect(message.header.isRecursionDesired && message.header.isAuthenticData)
        #expect(message.edns?.options.first?.code == .cookie)
        #expect(message.edns?.udpPayloadSize == 1232)
    }
}
