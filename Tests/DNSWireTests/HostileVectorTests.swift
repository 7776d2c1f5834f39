import DNSWire
import Testing

/// One malformed message per decoder error, each with the exact error and offset expected.
@Suite struct HostileVectorTests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let hex: String
        let error: WireError
        var description: String { name }
    }

    /// A query header with the given counts.
    static func header(qd: Int = 1, an: Int = 0, ns: Int = 0, ar: Int = 0) -> String {
        String(format4: 0xABCD) + "0100" + String(format4: qd) + String(format4: an) + String(format4: ns) + String(format4: ar)
    }

    /// A chain of `count` pointers inside an unknown record's RDATA, each pointing at the one
    /// before, then a record whose owner points at the last: following it takes count+1 hops.
    static func pointerChain(_ count: Int) -> String {
        // Question: root, type A, class IN at 12...16. Record 1 at 17: owner root (1 byte),
        // TYPE65280, IN, TTL, RDLENGTH, then the chain starting at 28.
        var rdata = "c00c"  // first link points at the question's root name
        for i in 1..<count { rdata += String(format4: 0xC000 | (28 + 2 * (i - 1))) }
        let last = 28 + 2 * (count - 1)
        return header(an: 2) + "00" + "00010001"
            + "00" + "ff00" + "0001" + "00000000" + String(format4: 2 * count) + rdata
            + String(format4: 0xC000 | last) + "0001" + "0001" + "00000000" + "0004" + "7f000001"
    }

    static let cases: [Case] = [
        Case(name: "no header", hex: "abcd0100", error: .headerTooShort(length: 4)),
        Case(name: "label runs past the end", hex: header() + "0377777707", error: .truncated(offset: 16, what: "a name label of 7 octets")),
        Case(name: "question ends before its class", hex: header() + "016100" + "0001" + "00", error: .truncated(offset: 17, what: "a question class")),
        Case(name: "label type 0x40", hex: header() + "4100" + "00010001", error: .badLabelType(offset: 12, byte: 0x41)),
        Case(name: "label type 0x80", hex: header() + "8100" + "00010001", error: .badLabelType(offset: 12, byte: 0x81)),
        Case(name: "name over 255 octets", hex: header() + String(repeating: "3f" + String(repeating: "61", count: 63), count: 4) + "00" + "00010001",
             error: .nameTooLong(offset: 12)),
        Case(name: "forward pointer", hex: header() + "c020" + "00010001", error: .forwardPointer(offset: 12, target: 32)),
        Case(name: "pointer into the header", hex: header(an: 1) + "00" + "00010001" + "c004" + "0001000100000000000401020304",
             error: .forwardPointer(offset: 17, target: 4)),
        Case(name: "pointer to itself", hex: header(an: 1) + "00" + "00010001" + "c011" + "0001000100000000000401020304",
             error: .pointerLoop(offset: 17)),
        Case(name: "pointer back into its own name", hex: header() + "0161c00c" + "00010001", error: .pointerLoop(offset: 14)),
        Case(name: "too many pointers", hex: pointerChain(70), error: .tooManyPointers(offset: 168)),
        Case(name: "A with 5 bytes", hex: header(an: 1) + "00" + "00010001" + "00" + "00010001" + "00000000" + "0005" + "0102030405",
             error: .badRDataLength(type: .a, offset: 28, length: 5, reason: "an A record has 4 bytes")),
        Case(name: "AAAA with 4 bytes", hex: header(an: 1) + "00" + "00010001" + "00" + "001c0001" + "00000000" + "0004" + "01020304",
             error: .badRDataLength(type: .aaaa, offset: 28, length: 4, reason: "an AAAA record has 16 bytes")),
        Case(name: "RDLENGTH past the end", hex: header(an: 1) + "00" + "00010001" + "00" + "00010001" + "00000000" + "0010" + "01020304",
             error: .truncated(offset: 28, what: "A record data of 16 bytes")),
        Case(name: "CNAME name overruns RDLENGTH", hex: header(an: 1) + "00" + "00010001" + "00" + "00050001" + "00000000" + "0002" + "03616263" + "00",
             error: .badRDataLength(type: .cname, offset: 28, length: 2, reason: "ends inside a name label of 3 octets")),
        Case(name: "MX with a byte left over", hex: header(an: 1) + "00" + "00010001" + "00" + "000f0001" + "00000000" + "0004" + "000a" + "00" + "ff",
             error: .badRDataLength(type: .mx, offset: 28, length: 4, reason: "1 bytes left over")),
        Case(name: "TXT string longer than RDATA", hex: header(an: 1) + "00" + "00010001" + "00" + "00100001" + "00000000" + "0003" + "056162",
             error: .badRDataLength(type: .txt, offset: 28, length: 3, reason: "ends inside a TXT string")),
        Case(name: "empty TXT", hex: header(an: 1) + "00" + "00010001" + "00" + "00100001" + "00000000" + "0000",
             error: .badRDataLength(type: .txt, offset: 28, length: 0, reason: "ends inside a TXT string length")),
        Case(name: "SOA cut short", hex: header(an: 1) + "00" + "00010001" + "00" + "00060001" + "00000000" + "0006" + "0000" + "00000001",
             error: .badRDataLength(type: .soa, offset: 28, length: 6, reason: "ends inside SOA refresh")),
        Case(name: "CAA with an empty tag", hex: header(an: 1) + "00" + "00010001" + "00" + "01010001" + "00000000" + "0003" + "00" + "00" + "61",
             error: .badRDataLength(type: .caa, offset: 29, length: 0, reason: "a CAA tag is 1 to 15 ASCII letters and digits")),
        Case(name: "answer count beyond the bytes", hex: header(an: 1000) + "00" + "00010001", error: .countExceedsMessage(section: .answer, count: 1000, offset: 17)),
        Case(name: "question count beyond the bytes", hex: header(qd: 65535) + "00" + "00010001", error: .countExceedsMessage(section: .question, count: 65535, offset: 12)),
        Case(name: "trailing garbage", hex: header() + "00" + "00010001" + "ffff", error: .trailingBytes(offset: 17, count: 2)),
        Case(name: "OPT in the answer section", hex: header(an: 1) + "00" + "00010001" + "00" + "0029" + "1000" + "00000000" + "0000",
             error: .badOPT(offset: 17, reason: "OPT record in the answer section")),
        Case(name: "two OPT records", hex: header(ar: 2) + "00" + "00010001" + String(repeating: "00" + "0029" + "1000" + "00000000" + "0000", count: 2),
             error: .badOPT(offset: 28, reason: "more than one OPT record")),
        Case(name: "OPT not owned by the root", hex: header(ar: 1) + "00" + "00010001" + "0161" + "00" + "0029" + "1000" + "00000000" + "0000",
             error: .badOPT(offset: 17, reason: "owner is a., not the root")),
        Case(name: "OPT option overruns", hex: header(ar: 1) + "00" + "00010001" + "00" + "0029" + "1000" + "00000000" + "0006" + "000a" + "0008" + "0102",
             error: .badOPT(offset: 28, reason: "option 10 of 8 bytes runs past RDLENGTH")),
        Case(name: "OPT option header cut", hex: header(ar: 1) + "00" + "00010001" + "00" + "0029" + "1000" + "00000000" + "0002" + "000a",
             error: .badOPT(offset: 28, reason: "option header runs past RDLENGTH")),
    ]

    @Test(arguments: cases)
    func decoderRefuses(_ c: Case) {
        #expect(throws: c.error) { try Message(decoding: hexBytes(c.hex)) }
    }

    @Test func errorsSayWhatAndWhere() {
        #expect(WireError.forwardPointer(offset: 12, target: 32).description
                == "compression pointer at offset 12 points forward or into the header (target 32)")
        #expect(WireError.truncated(offset: 16, what: "a name label of 7 octets").description
                == "message ends at offset 16 while reading a name label of 7 octets")
    }

    @Test func aLongPointerChainWithinTheCapDecodes() throws {
        let message = try Message(decoding: hexBytes(Self.pointerChain(60)))
        #expect(message.answers.count == 2)
        #expect(message.answers[1].name == .root)
    }
}

extension String {
    init(format4 value: Int) {
        let hex = String(value & 0xFFFF, radix: 16)
        self = String(repeating: "0", count: 4 - hex.count) + hex
    }
}
