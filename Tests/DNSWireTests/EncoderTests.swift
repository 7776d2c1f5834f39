import DNSWire
import NetAddress
import Testing

func name(_ text: String) -> DomainName { try! DomainName(text) }

func response(_ question: String, _ type: RecordType = .a) -> Message {
    Message(header: Header(id: 0x0102, isResponse: true, isAuthoritative: true),
            questions: [Question(name: name(question), type: type)])
}

@Suite struct CompressionTests {
    @Test func suffixMatchIgnoresCase() {
        var m = response("www.example.com.")
        m.answers = [ResourceRecord(name: name("WWW.EXAMPLE.COM."), ttl: 5, data: .a(IPv4Address(10, 0, 0, 1))),
                     ResourceRecord(name: name("Mail.Example.Com."), ttl: 5, data: .a(IPv4Address(10, 0, 0, 2)))]
        let bytes = m.encoded()
        // Question name at 12 (17 bytes) + type/class: the first answer is a pointer to 12,
        // the second "Mail" + a pointer to "example.com" at 16.
        #expect(Array(bytes[33...34]) == [0xC0, 0x0C])
        #expect(Array(bytes[49...55]) == [4] + Array("Mail".utf8) + [0xC0, 0x10])
        // The letters of each owner as written are those of the first occurrence.
        let decoded = try? Message(decoding: bytes)
        #expect(decoded?.answers[0].name.description == "www.example.com.")
    }

    @Test func srvTargetIsNeverCompressed() {
        var m = response("_http._tcp.web.default.svc.cluster.local.", .srv)
        m.answers = [ResourceRecord(name: m.questions[0].name, ttl: 5,
                                    data: .srv(SRV(priority: 0, weight: 100, port: 80, target: name("web.default.svc.cluster.local."))))]
        let bytes = m.encoded()
        let target = [3] + Array("web".utf8) + [7] + Array("default".utf8) + [3] + Array("svc".utf8)
            + [7] + Array("cluster".utf8) + [5] + Array("local".utf8) + [0]
        #expect(Array(bytes.suffix(target.count)) == target)
    }

    @Test func unknownDataIsNeitherCompressedNorATarget() {
        var m = response("a.b.")
        let embedded: [UInt8] = [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0]
        m.answers = [ResourceRecord(name: name("a.b."), ttl: 5, data: .unknown(type: RecordType(65280), data: embedded)),
                     ResourceRecord(name: name("a.b."), ttl: 5, data: .cname(name("example.com.")))]
        let bytes = m.encoded()
        // The CNAME's target is written out in full, not as a pointer into the unknown RDATA.
        #expect(Array(bytes.suffix(embedded.count)) == embedded)
        #expect(bytes.count == 12 + 9 + (2 + 10 + embedded.count) + (2 + 10 + embedded.count))
    }

    /// The writer remembers the last names it wrote by their storage: the same name again is a
    /// pointer at once, but never to bytes a roll-back removed, nor across a reset.
    @Test func rememberedNamesNeverPointAtRemovedBytes() {
        let shared = name("web.default.svc.cluster.local.")
        let wire: [UInt8] = [3] + Array("web".utf8) + [7] + Array("default".utf8) + [3] + Array("svc".utf8)
            + [7] + Array("cluster".utf8) + [5] + Array("local".utf8) + [0]
        var writer = WireWriter()
        writer.writeUInt16(0xAAAA)
        writer.writeName(shared)
        writer.writeName(shared)
        #expect(writer.bytes == [0xAA, 0xAA] + wire + [0xC0, 0x02])

        writer.rollBack(to: 2)
        writer.writeUInt32(0xBBBB_BBBB)
        writer.writeName(shared)
        #expect(writer.bytes == [0xAA, 0xAA, 0xBB, 0xBB, 0xBB, 0xBB] + wire)

        // A name compressed against an earlier suffix is remembered where its own bytes start.
        let child = name("api.web.default.svc.cluster.local.")
        writer.writeName(child)
        writer.writeName(child)
        #expect(Array(writer.bytes.suffix(8)) == [3] + Array("api".utf8) + [0xC0, 0x06, 0xC0, UInt8(6 + wire.count)])

        writer.reset()
        writer.writeName(shared)
        #expect(writer.bytes == wire)
    }

    @Test func namesInsideKnownRDATAAreCompressed() throws {
        var m = response("example.com.", .mx)
        m.answers = [ResourceRecord(name: name("example.com."), ttl: 5, data: .mx(MX(preference: 10, exchange: name("mail.example.com."))))]
        let bytes = m.encoded()
        #expect(Array(bytes.suffix(7)) == [4] + Array("mail".utf8) + [0xC0, 0x0C])
        #expect(try Message(decoding: bytes) == m)
    }
}

@Suite struct TruncationTests {
    static let owner = "a-rather-long-service-name.default.svc.cluster.local."

    func manyAddresses(_ count: Int) -> [ResourceRecord] {
        (0..<count).map { ResourceRecord(name: name(Self.owner), ttl: 5, data: .a(IPv4Address(rawValue: 0x0A00_0000 + UInt32($0)))) }
    }

    @Test(arguments: [512, 600, 1232])
    func keepsTheLargestPrefixThatFits(_ limit: Int) throws {
        var m = response(Self.owner)
        m.answers = manyAddresses(200)
        var writer = WireWriter()
        let truncated = m.encode(into: &writer, maxSize: limit)
        #expect(truncated)
        #expect(writer.count <= limit)
        #expect(writer.count + 16 > limit, "one more 16-byte record would have fitted")
        let decoded = try Message(decoding: writer.bytes)
        #expect(decoded.header.isTruncated)
        #expect(decoded.answers == Array(m.answers.prefix(decoded.answers.count)))
        #expect(decoded.answers.count == (limit - 12 - (Self.owner.utf8.count + 1) - 4) / 16)
    }

    @Test func keepsTheOPTRecord() throws {
        var m = response(Self.owner)
        m.answers = manyAddresses(100)
        m.edns = EDNS(udpPayloadSize: 1232, options: [EDNSOption(code: .nsid, data: Array("ns1".utf8))])
        m.rcode = .badCookie
        let bytes = m.encoded(maxSize: 512)
        #expect(bytes.count <= 512)
        let decoded = try Message(decoding: bytes)
        #expect(decoded.header.isTruncated)
        #expect(decoded.edns?.options == m.edns?.options)
        #expect(decoded.rcode == .badCookie)
    }

    @Test func dropsAdditionalRRsetsWithoutTC() throws {
        var m = response(Self.owner)
        m.answers = Array(manyAddresses(1))
        m.additionals = (0..<10).map { i in
            ResourceRecord(name: name("glue\(i).example.com."), ttl: 5, data: .txt(TXT(String(repeating: "x", count: 60))))
        }
        let bytes = m.encoded(maxSize: 512)
        let decoded = try Message(decoding: bytes)
        #expect(!decoded.header.isTruncated)
        #expect(decoded.answers.count == 1)
        #expect(decoded.additionals.count > 0 && decoded.additionals.count < 10)
        #expect(decoded.additionals == Array(m.additionals.prefix(decoded.additionals.count)))
    }

    @Test func authorityCutSetsTCAndDropsAdditional() throws {
        var m = response("x.example.")
        m.authorities = (0..<40).map { i in ResourceRecord(name: name("example."), ttl: 5, data: .ns(name("ns\(i).some-long-provider-name.example.net."))) }
        m.additionals = [ResourceRecord(name: name("ns0.example."), ttl: 5, data: .a(IPv4Address(1, 2, 3, 4)))]
        let decoded = try Message(decoding: m.encoded(maxSize: 512))
        #expect(decoded.header.isTruncated)
        #expect(decoded.authorities.count < 40)
        #expect(decoded.additionals.isEmpty)
    }

    @Test func fitsWithoutTruncation() throws {
        var m = response(Self.owner)
        m.answers = manyAddresses(3)
        var writer = WireWriter()
        #expect(!m.encode(into: &writer, maxSize: 512))
        #expect(try Message(decoding: writer.bytes) == m)
    }

    @Test func writerIsReusable() {
        var m = response(Self.owner)
        m.answers = manyAddresses(3)
        var writer = WireWriter()
        m.encode(into: &writer)
        let first = writer.bytes
        m.encode(into: &writer)
        #expect(writer.bytes == first)
    }
}

@Suite struct PresentationTests {
    @Test(arguments: [
        (ResourceRecord(name: name("example.com."), ttl: 60, data: .unknown(type: RecordType(65280), data: [10, 0, 0, 1])),
         "example.com. 60 IN TYPE65280 \\# 4 0a000001"),
        (ResourceRecord(name: name("example.com."), ttl: 60, data: .unknown(type: .hinfo, data: [])),
         "example.com. 60 IN HINFO \\# 0"),
        (ResourceRecord(name: name("x."), recordClass: RecordClass(42), ttl: 0, data: .a(IPv4Address(1, 2, 3, 4))),
         "x. 0 CLASS42 A 1.2.3.4"),
        (ResourceRecord(name: name("x."), ttl: 1, data: .txt(try! TXT(strings: [Array("say \"hi\"\\".utf8), [0x09, 0xFF], []]))),
         "x. 1 IN TXT \"say \\\"hi\\\"\\\\\" \"\\009\\255\" \"\""),
        (ResourceRecord(name: name("x."), ttl: 1, data: .caa(try! CAA(flags: 128, tag: "issuewild", value: Array(";".utf8)))),
         "x. 1 IN CAA 128 issuewild \";\""),
        (ResourceRecord(name: name("x."), ttl: 1, data: .aaaa(IPv6Address("fd00:0:0:0:0:0:0:1")!)),
         "x. 1 IN AAAA fd00::1"),
        (ResourceRecord(name: name("x."), ttl: 1, data: .soa(SOA(mname: name("ns."), rname: name("h\\.m.x."), serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5))),
         "x. 1 IN SOA ns. h\\.m.x. 1 2 3 4 5"),
    ])
    func recordPresentation(_ record: ResourceRecord, _ text: String) {
        #expect(record.description == text)
    }

    @Test func longTextIsSplitInto255OctetStrings() throws {
        let txt = TXT(String(repeating: "a", count: 600))
        #expect(txt.strings.map(\.count) == [255, 255, 90])
        #expect(throws: WireError.self) { try TXT(strings: [[UInt8](repeating: 0, count: 256)]) }
        var m = response("t.")
        m.answers = [ResourceRecord(name: name("t."), ttl: 1, data: .txt(txt))]
        #expect(try Message(decoding: m.encoded()) == m)
    }

    @Test(arguments: ["A", "a", "SRV", "TYPE65280", "type1", "CAA"])
    func typeMnemonics(_ text: String) {
        #expect(RecordType(mnemonic: text) != nil)
    }

    @Test func typeAndClassCodes() {
        #expect(RecordType(mnemonic: "TYPE1") == .a)
        #expect(RecordType(65280).description == "TYPE65280")
        #expect(RecordType(mnemonic: "TYPE65536") == nil)
        #expect(RecordType(mnemonic: "BOGUS") == nil)
        #expect(RecordClass(mnemonic: "CLASS1") == .internet)
        #expect(ResponseCode(rawValue: 3841).description == "RCODE3841")
        #expect(OpCode(rawValue: 15).description == "OPCODE15")
    }

    @Test func headerFlagsRoundTrip() {
        for flags in stride(from: 0, through: 0xFFFF, by: 1) {
            let header = Header(id: 0, flags: UInt16(flags))
            #expect(header.flags == UInt16(flags))
        }
    }
}
