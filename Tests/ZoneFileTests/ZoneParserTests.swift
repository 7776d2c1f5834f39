import DNSWire
import Foundation
import Testing
@testable import ZoneFile

let soaAndNS = """
    $TTL 300
    @ IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60
    @ IN NS ns.example.

    """

let origin = try! DomainName("example.")

/// Parses `body` after a fixed SOA and NS, returning every record but those two, in zone order.
func records(_ body: String, options: ZoneParser.Options = .init()) throws -> [String] {
    let zone = try ZoneParser(options: options).parse(soaAndNS + body, origin: origin)
    return zone.records.map(\.description).filter {
        $0 != "example. 300 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60"
            && $0 != "example. 300 IN NS ns.example."
    }
}

@Suite struct ZoneParserTests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let body: String
        let expected: [String]
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "relative and absolute owners", body: "www IN A 192.0.2.1\nabs.example. IN A 192.0.2.2\n",
             expected: ["abs.example. 300 IN A 192.0.2.2", "www.example. 300 IN A 192.0.2.1"]),
        Case(name: "@ is the origin", body: "@ IN A 192.0.2.1\n", expected: ["example. 300 IN A 192.0.2.1"]),
        Case(name: "blank owner repeats the previous one", body: "www IN A 192.0.2.1\n     IN AAAA 2001:db8::1\n\tIN TXT hi\n",
             expected: ["www.example. 300 IN A 192.0.2.1", "www.example. 300 IN TXT \"hi\"", "www.example. 300 IN AAAA 2001:db8::1"]),
        Case(name: "TTL then class", body: "a 60 IN A 192.0.2.1\n", expected: ["a.example. 60 IN A 192.0.2.1"]),
        Case(name: "class then TTL", body: "a IN 60 A 192.0.2.1\n", expected: ["a.example. 60 IN A 192.0.2.1"]),
        Case(name: "no class, no TTL", body: "a A 192.0.2.1\n", expected: ["a.example. 300 IN A 192.0.2.1"]),
        Case(name: "TTL units", body: "a 1h30m A 192.0.2.1\nb 2D A 192.0.2.2\nc 1w2d3h4m5s A 192.0.2.3\nd 1h5 A 192.0.2.4\n",
             expected: ["a.example. 5400 IN A 192.0.2.1", "b.example. 172800 IN A 192.0.2.2",
                        "c.example. 788645 IN A 192.0.2.3", "d.example. 3605 IN A 192.0.2.4"]),
        Case(name: "$TTL applies to later records", body: "$TTL 1m\na A 192.0.2.1\n", expected: ["a.example. 60 IN A 192.0.2.1"]),
        Case(name: "$ORIGIN changes relative names", body: "$ORIGIN sub.example.\nwww A 192.0.2.1\n@ A 192.0.2.2\n",
             expected: ["sub.example. 300 IN A 192.0.2.2", "www.sub.example. 300 IN A 192.0.2.1"]),
        Case(name: "relative $ORIGIN", body: "$ORIGIN sub\nwww A 192.0.2.1\n", expected: ["www.sub.example. 300 IN A 192.0.2.1"]),
        Case(name: "parentheses over lines with comments", body: "mx IN MX ( 10 ; preference\n  mail ) ; exchange\n",
             expected: ["mx.example. 300 IN MX 10 mail.example."]),
        Case(name: "quoted strings with escapes", body: #"t TXT "a \"quoted\" word" "semi;colon" "back\\slash" "\065\066" unquoted\ space"# + "\n",
             expected: [#"t.example. 300 IN TXT "a \"quoted\" word" "semi;colon" "back\\slash" "AB" "unquoted space""#]),
        Case(name: "TXT over 255 octets is split", body: "t TXT \"" + String(repeating: "a", count: 300) + "\"\n",
             expected: ["t.example. 300 IN TXT \"" + String(repeating: "a", count: 255) + "\" \"" + String(repeating: "a", count: 45) + "\""]),
        Case(name: "escaped owner", body: "a\\.b A 192.0.2.1\n\\065 A 192.0.2.2\n",
             expected: ["A.example. 300 IN A 192.0.2.2", "a\\.b.example. 300 IN A 192.0.2.1"]),
        Case(name: "SRV, MX, CNAME, PTR, CAA, NS", body: """
            _http._tcp.web SRV 0 100 80 web
            mail MX 10 mail.example.net.
            alias CNAME www
            1.2 PTR host.example.
            @ CAA 0 issue "letsencrypt.org"
            sub NS ns.sub
            ns.sub A 192.0.2.53

            """,
             expected: ["example. 300 IN CAA 0 issue \"letsencrypt.org\"",
                        "1.2.example. 300 IN PTR host.example.",
                        "alias.example. 300 IN CNAME www.example.",
                        "mail.example. 300 IN MX 10 mail.example.net.",
                        "sub.example. 300 IN NS ns.sub.example.",
                        "ns.sub.example. 300 IN A 192.0.2.53",
                        "_http._tcp.web.example. 300 IN SRV 0 100 80 web.example."]),
        Case(name: "RFC 3597 unknown type", body: "u TYPE65280 \\# 4 0a000001\n", expected: ["u.example. 300 IN TYPE65280 \\# 4 0a000001"]),
        Case(name: "RFC 3597 form of a known type", body: "u TYPE1 \\# 4 0a000001\nv CLASS1 A \\# 4 ( 0a00 0002 )\n",
             expected: ["u.example. 300 IN A 10.0.0.1", "v.example. 300 IN A 10.0.0.2"]),
        Case(name: "RFC 3597 empty data", body: "u TYPE65280 \\# 0\n", expected: ["u.example. 300 IN TYPE65280 \\# 0"]),
        Case(name: "known mnemonic in generic form", body: "h HINFO \\# 2 0000\n", expected: ["h.example. 300 IN HINFO \\# 2 0000"]),
        Case(name: "duplicates are dropped", body: "a A 192.0.2.1\na A 192.0.2.1\n", expected: ["a.example. 300 IN A 192.0.2.1"]),
        Case(name: "mixed case types and classes", body: "a in a 192.0.2.1\nb Aaaa 2001:DB8::1\n",
             expected: ["a.example. 300 IN A 192.0.2.1", "b.example. 300 IN AAAA 2001:db8::1"]),
        Case(name: "CRLF line ends", body: "a A 192.0.2.1\r\nb A 192.0.2.2\r\n",
             expected: ["a.example. 300 IN A 192.0.2.1", "b.example. 300 IN A 192.0.2.2"]),
        Case(name: "no final newline", body: "a A 192.0.2.1", expected: ["a.example. 300 IN A 192.0.2.1"]),
    ]

    @Test(arguments: cases)
    func parses(_ c: Case) throws {
        #expect(try records(c.body) == c.expected)
    }

    @Test func ttlFallsBackToThePreviousExplicitTTL() throws {
        let zone = try ZoneParser().parse("""
            @ 100 IN SOA ns hostmaster 1 2 3 4 5
              IN NS ns
            ns A 192.0.2.1
            """, origin: origin)
        #expect(zone.records.allSatisfy { $0.ttl == 100 })
    }

    @Test func includeIsRelativeToTheIncludingFile() throws {
        let path = try #require(Bundle.module.path(forResource: "Fixtures/include/main", ofType: "zone"))
        let zone = try ZoneParser(options: .init(allowInclude: true)).load(file: path, origin: origin)
        #expect(zone.records.map(\.description).filter { $0.contains(" A ") } == [
            "after.example. 300 IN A 192.0.2.99",
            "box.lab.example. 300 IN A 192.0.2.3",
            "ns.example. 300 IN A 192.0.2.1",
            "www.example. 300 IN A 192.0.2.2",
        ])
    }

    @Test func includeIsOffByDefault() throws {
        let path = try #require(Bundle.module.path(forResource: "Fixtures/include/main", ofType: "zone"))
        #expect {
            try ZoneParser().load(file: path, origin: origin)
        } throws: { error in
            let e = error as! ZoneFileError
            return e.line == 4 && e.column == 1 && e.token == "$INCLUDE" && e.message.contains("disabled")
        }
    }

    @Test func includeDepthIsLimited() throws {
        let path = try #require(Bundle.module.path(forResource: "Fixtures/include/loop", ofType: "zone"))
        #expect {
            try ZoneParser(options: .init(allowInclude: true, maxIncludeDepth: 5)).load(file: path, origin: origin)
        } throws: { error in
            let e = error as! ZoneFileError
            return e.file.hasSuffix("loop.inc") && e.message == "$INCLUDE nested deeper than 5 files"
        }
    }

    @Test func missingFile() {
        #expect {
            try ZoneParser().load(file: "/nonexistent/x.zone", origin: origin)
        } throws: { error in
            "\(error)" == "/nonexistent/x.zone:0:0: cannot read: No such file or directory"
        }
    }
}

@Suite struct ZoneFileErrorTests {
    struct Case: CustomStringConvertible, Sendable {
        let text: String
        let line: Int
        let column: Int
        let token: String
        let message: String
        var description: String { message }
    }

    /// Each case is a whole zone; the error's line, column, token and message are exact.
    static let cases: [Case] = [
        Case(text: soaAndNS + "www IN A 192.0.2.256\n", line: 4, column: 10, token: "192.0.2.256", message: "expected an IPv4 address"),
        Case(text: soaAndNS + "www IN AAAA 1::2::3\n", line: 4, column: 13, token: "1::2::3", message: "expected an IPv6 address"),
        Case(text: soaAndNS + "www IN BOGUS x\n", line: 4, column: 8, token: "BOGUS", message: "expected a TTL, a class or a record type"),
        Case(text: soaAndNS + "www IN\n", line: 4, column: 5, token: "IN", message: "record has no type"),
        Case(text: soaAndNS + "www CH A 192.0.2.1\n", line: 4, column: 5, token: "CH", message: "class CH is not served (only IN)"),
        Case(text: soaAndNS + "www 99999999999 A 192.0.2.1\n", line: 4, column: 5, token: "99999999999",
             message: "expected a TTL: seconds or units such as 1h30m, at most 2147483647"),
        Case(text: soaAndNS + "www 1x A 192.0.2.1\n", line: 4, column: 5, token: "1x",
             message: "expected a TTL: seconds or units such as 1h30m, at most 2147483647"),
        Case(text: soaAndNS + "www 60 60 A 192.0.2.1\n", line: 4, column: 8, token: "60", message: "a second TTL"),
        Case(text: soaAndNS + "www A 192.0.2.1 extra\n", line: 4, column: 17, token: "extra", message: "unexpected data after the A record"),
        Case(text: soaAndNS + "www MX 10\n", line: 4, column: 8, token: "10", message: "missing a mail exchange"),
        Case(text: soaAndNS + "www MX 99999999999999999999999 mail\n", line: 4, column: 8, token: "99999999999999999999999",
             message: "expected a preference: a number from 0 to 65535"),  // found by libFuzzer: overflowed
        Case(text: soaAndNS + "www MX 70000 mail\n", line: 4, column: 8, token: "70000", message: "expected a preference: a number from 0 to 65535"),
        Case(text: soaAndNS + "a..b A 192.0.2.1\n", line: 4, column: 1, token: "a..b", message: "invalid domain name: empty label"),
        Case(text: soaAndNS + String(repeating: "x", count: 64) + " A 192.0.2.1\n", line: 4, column: 1,
             token: String(repeating: "x", count: 64), message: "invalid domain name: label longer than 63 octets"),
        Case(text: soaAndNS + "t TXT \"unterminated\n", line: 4, column: 7, token: "", message: "unterminated quoted string"),
        Case(text: soaAndNS + "mx MX ( 10\n mail\n", line: 4, column: 7, token: "", message: "'(' is never closed"),
        Case(text: soaAndNS + "mx MX 10 mail )\n", line: 4, column: 15, token: "", message: "')' without a matching '('"),
        Case(text: soaAndNS + "mx MX ( ( 10 mail ) )\n", line: 4, column: 9, token: "", message: "nested parentheses"),
        Case(text: soaAndNS + "$GENERATE 1-10 h$ A 192.0.2.$\n", line: 4, column: 1, token: "$GENERATE",
             message: "unknown directive (expected $ORIGIN, $TTL or $INCLUDE)"),
        Case(text: soaAndNS + "$ORIGIN\n", line: 4, column: 1, token: "$ORIGIN", message: "$ORIGIN takes exactly one domain name"),
        Case(text: soaAndNS + "h HINFO \"pc\" \"linux\"\n", line: 4, column: 3, token: "HINFO",
             message: "record type HINFO is only supported in the RFC 3597 form (\\# LENGTH HEX)"),
        Case(text: soaAndNS + "u TYPE65280 \\# 4 0a0000\n", line: 4, column: 3, token: "TYPE65280", message: "RDATA length is 4 but 3 bytes follow"),
        Case(text: soaAndNS + "u TYPE65280 \\# 2 0g00\n", line: 4, column: 18, token: "0g00", message: "expected hexadecimal data"),
        Case(text: soaAndNS + "u TYPE65280 \\# 2 000\n", line: 4, column: 18, token: "000", message: "expected hexadecimal data in pairs of digits"),
        Case(text: soaAndNS + "u A \\# 3 0a0000\n", line: 4, column: 3, token: "A",
             message: "A data in RFC 3597 form does not decode: A record data at offset 0 with RDLENGTH 3: an A record has 4 bytes"),
        Case(text: soaAndNS + "c CAA 0 is-sue \"x\"\n", line: 4, column: 9, token: "is-sue", message: "a CAA tag is 1 to 15 ASCII letters and digits"),
        Case(text: soaAndNS + "t TXT \"\\300\"\n", line: 4, column: 7, token: "\\300", message: "\\DDD escape 300 is larger than 255"),
        Case(text: soaAndNS + "  IN NS ns2.example.\nopt OPT \\# 0\n", line: 5, column: 5, token: "OPT", message: "OPT is not a record type that can appear in a zone"),
        Case(text: "@ IN SOA ns hostmaster 1 2 3 4 5\n", line: 1, column: 6, token: "SOA", message: "no TTL given and no $TTL before this record"),
        Case(text: "$TTL 300\n  IN A 192.0.2.1\n", line: 2, column: 3, token: "IN", message: "a record without an owner, and no previous owner to repeat"),
        // Zone checks: reported at the line of the record at fault.
        Case(text: soaAndNS + "www.other. A 192.0.2.1\n", line: 4, column: 1, token: "", message: "www.other. is outside the zone example."),
        Case(text: soaAndNS + "sub SOA ns hostmaster 1 2 3 4 5\n", line: 4, column: 1, token: "", message: "SOA record at sub.example., not at the zone apex example."),
        Case(text: soaAndNS + "@ SOA ns hostmaster 2 2 3 4 5\n", line: 4, column: 1, token: "", message: "more than one SOA record (the first is at line 2)"),
        Case(text: soaAndNS + "www CNAME a\nwww A 192.0.2.1\n", line: 4, column: 1, token: "", message: "CNAME at www.example. beside other data (A)"),
        Case(text: soaAndNS + "@ CNAME a\n", line: 2, column: 1, token: "", message: "CNAME at example. beside other data (NS, SOA)"),
        Case(text: soaAndNS + "sub NS ns.elsewhere.\nwww.sub TXT hidden\n", line: 5, column: 1, token: "",
             message: "TXT record at www.sub.example. lies below the delegation at sub.example. (only address glue may)"),
        Case(text: soaAndNS + "a 60 A 192.0.2.1\na 70 A 192.0.2.2\n", line: 5, column: 1, token: "",
             message: "TTL 70 differs from the TTL 60 of the same A RRset at line 4 (RFC 2181 §5.2)"),
        Case(text: "$TTL 300\n@ NS ns\n", line: 0, column: 1, token: "", message: "zone example. has no SOA record at its apex"),
        Case(text: "$TTL 300\n@ SOA ns hostmaster 1 2 3 4 5\n", line: 2, column: 1, token: "", message: "zone example. has no NS records at its apex"),
    ]

    @Test(arguments: cases)
    func reports(_ c: Case) {
        #expect {
            try ZoneParser().parse(c.text, file: "test.zone", origin: origin)
        } throws: { error in
            guard let e = error as? ZoneFileError else { return false }
            #expect(e.message == c.message)
            #expect(e.line == c.line)
            #expect(e.column == c.column)
            #expect(e.token == c.token)
            #expect(e.file == "test.zone")
            return true
        }
    }

    @Test func description() {
        let e = ZoneFileError(file: "zones/x.zone", line: 4, column: 10, token: "192.0.2.256", message: "expected an IPv4 address")
        #expect(e.description == "zones/x.zone:4:10: expected an IPv4 address (at \"192.0.2.256\")")
    }
}

