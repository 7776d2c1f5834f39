import DNSWire
import Testing

@Suite struct QueryViewTests {
    func parse(_ bytes: [UInt8]) throws(WireError) -> (QueryView, [UInt8]) {
        var key = [UInt8](repeating: 0xEE, count: 255)
        let result: Result<QueryView, WireError> = bytes.withUnsafeBytes { packet in
            key.withUnsafeMutableBytes { buffer in
                do throws(WireError) { return .success(try QueryView.parse(packet, nameBuffer: buffer)) } catch { return .failure(error) }
            }
        }
        let view = try result.get()
        return (view, Array(key[0..<view.nameLength]))
    }

    @Test func digQuery() throws {
        let bytes = hexBytes(goldenVectors.first { $0.name == "dig-query" }!.hex)
        let (view, key) = try parse(bytes)
        #expect(view.type == .aaaa)
        #expect(view.recordClass == .internet)
        #expect(view.questionCount == 1 && view.additionalCount == 1)
        #expect(key == (try DomainName("web.default.svc.cluster.local.")).lookupKey)
        #expect(view.questionEnd == 12 + key.count + 4)
        #expect(view.header.isRecursionDesired)
        let edns = try #require(view.edns)
        #expect(edns.udpPayloadSize == 1232 && !edns.isDNSSECOK && edns.version == 0)
        #expect(edns.optionsLength == 12)
    }

    @Test func agreesWithTheFullDecoder() throws {
        for vector in goldenVectors where vector.name.contains("query") {
            let bytes = hexBytes(vector.hex)
            let message = try Message(decoding: bytes)
            let (view, key) = try parse(bytes)
            #expect(key == message.questions[0].name.lookupKey)
            #expect(view.type == message.questions[0].type)
            #expect(view.id == message.header.id)
            #expect(view.flags == message.header.flags)
            #expect(view.edns?.isDNSSECOK == message.edns?.isDNSSECOK)
            #expect(view.edns?.udpPayloadSize == message.edns?.udpPayloadSize)
        }
    }

    @Test(arguments: [
        ("no header", "abcd", WireError.headerTooShort(length: 2)),
        ("two questions", "abcd01000002000000000000" + "0000010001" + "0000010001", .countExceedsMessage(section: .question, count: 2, offset: 12)),
        ("no question", "abcd01000000000000000000", .countExceedsMessage(section: .question, count: 0, offset: 12)),
        ("compressed question", "abcd01000001000000000000" + "c00c00010001", .forwardPointer(offset: 12, target: 12)),
        ("label type", "abcd01000001000000000000" + "4000010001", .badLabelType(offset: 12, byte: 0x40)),
        ("cut name", "abcd01000001000000000000" + "0561", .truncated(offset: 13, what: "a name label of 5 octets")),
        ("trailing", "abcd01000001000000000000" + "0000010001" + "00", .trailingBytes(offset: 17, count: 1)),
        ("OPT overrun", "abcd01000001000000000001" + "0000010001" + "00" + "0029" + "04d0" + "00000000" + "0004" + "000a0008", .badOPT(offset: 28, reason: "option of 8 bytes runs past RDLENGTH")),
        ("two OPT", "abcd01000001000000000002" + "0000010001" + "00002904d0000000000000" + "00002904d0000000000000", .badOPT(offset: 28, reason: "more than one OPT record")),
    ] as [(String, String, WireError)])
    func refuses(_ label: String, _ hex: String, _ error: WireError) {
        #expect(throws: error, "\(label)") { try parse(hexBytes(hex)) }
    }

    @Test func longestNameFits() throws {
        let label = String(repeating: "A", count: 63)
        let n = try DomainName([label, label, label, String(repeating: "b", count: 61)].joined(separator: ".") + ".")
        var m = Message(questions: [Question(name: n, type: .a)])
        m.header.id = 9
        let (view, key) = try parse(m.encoded())
        #expect(view.nameLength == 255)
        #expect(key == n.lookupKey)
    }
}
