import DNSWire
import Testing

@Suite struct DomainNameTests {
    struct Presentation: CustomStringConvertible, Sendable {
        let input: String
        let labels: [String]
        let isAbsolute: Bool
        let output: String
        var description: String { input }
    }

    static let presentations: [Presentation] = [
        .init(input: "example.com.", labels: ["example", "com"], isAbsolute: true, output: "example.com."),
        .init(input: "Example.COM", labels: ["Example", "COM"], isAbsolute: false, output: "Example.COM"),
        .init(input: ".", labels: [], isAbsolute: true, output: "."),
        .init(input: "a\\.b.c.", labels: ["a.b", "c"], isAbsolute: true, output: "a\\.b.c."),
        .init(input: "\\065bc.", labels: ["Abc"], isAbsolute: true, output: "Abc."),
        .init(input: "a\\032b.", labels: ["a b"], isAbsolute: true, output: "a\\032b."),
        .init(input: "a\\ b.", labels: ["a b"], isAbsolute: true, output: "a\\032b."),
        .init(input: "\\000.x.", labels: ["\u{0}", "x"], isAbsolute: true, output: "\\000.x."),
        .init(input: "semi\\;colon.", labels: ["semi;colon"], isAbsolute: true, output: "semi\\;colon."),
        .init(input: "_http._tcp.web", labels: ["_http", "_tcp", "web"], isAbsolute: false, output: "_http._tcp.web"),
        .init(input: "ab--cd.default.", labels: ["ab--cd", "default"], isAbsolute: true, output: "ab--cd.default."),
        .init(input: "@\\@.", labels: ["@@"], isAbsolute: true, output: "\\@\\@."),
    ]

    @Test(arguments: presentations)
    func presentation(_ c: Presentation) throws {
        let name = try DomainName(c.input)
        #expect(name.labels.map { String(decoding: $0, as: UTF8.self) } == c.labels)
        #expect(name.isAbsolute == c.isAbsolute)
        #expect(name.description == c.output)
        #expect(try DomainName(name.description) == name)
    }

    static let invalid: [(String, String)] = [
        ("a..b", "empty label"),
        ("..", "empty label"),
        (".a", "empty label"),
        ("", "empty name"),
        (String(repeating: "x", count: 64) + ".com", "label longer than 63 octets"),
        (Array(repeating: String(repeating: "x", count: 63), count: 4).joined(separator: "."), "name longer than 255 octets"),
        ("\\256.", "\\DDD escape 256 is larger than 255"),
        ("abc\\", "backslash at the end"),
        ("\\12.", "\\DDD escape needs exactly three digits"),
    ]

    @Test(arguments: invalid)
    func rejects(_ input: String, _ reason: String) {
        #expect(throws: WireError.invalidName(input, reason: reason)) { try DomainName(input) }
    }

    @Test func limitsAtTheBoundary() throws {
        // 63-octet labels and a 255-octet name are the largest allowed.
        let label = String(repeating: "a", count: 63)
        let longest = [label, label, label, String(repeating: "b", count: 61)].joined(separator: ".") + "."
        let name = try DomainName(longest)
        #expect(name.wireLength == 255)
        #expect(throws: WireError.self) { try DomainName("c" + longest) }
    }

    @Test func comparesAndHashesIgnoringASCIICase() throws {
        let a = try DomainName("WWW.Example.com.")
        let b = try DomainName("www.example.COM.")
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(Set([a, b]).count == 1)
        #expect(a.description == "WWW.Example.com.", "original letters are kept")
        #expect(a != (try DomainName("www.example.com")), "relative and absolute differ")
        // Only ASCII letters fold: 0xC4 and 0xE4 stay different.
        #expect(try DomainName("\\196.") != (try DomainName("\\228.")))
    }

    @Test(arguments: [
        ("a.b.example.com.", "example.com.", true),
        ("example.com.", "example.com.", true),
        ("EXAMPLE.com.", "example.COM.", true),
        ("evilexample.com.", "example.com.", false),
        ("example.com.", "a.example.com.", false),
        ("anything.at.all.", ".", true),
        ("x\\.example.com.", "example.com.", false),  // one label "x.example", then "com"
        ("a.x\\.example.com.", "x\\.example.com.", true),
        ("ax\\.example.com.", "x\\.example.com.", false),
    ])
    func subdomain(_ name: String, _ parent: String, _ expected: Bool) throws {
        #expect(try DomainName(name).isSubdomain(of: DomainName(parent)) == expected)
    }

    @Test func parentWalk() throws {
        let walk = try DomainName("a.b.c.").selfAndAncestors.map(\.description)
        #expect(walk == ["a.b.c.", "b.c.", "c.", "."])
        #expect(DomainName.root.parent == nil)
    }

    @Test func resolvesRelativeNames() throws {
        let origin = try DomainName("cluster.local.")
        #expect(try DomainName("svc").resolved(against: origin).description == "svc.cluster.local.")
        #expect(try DomainName("abs.").resolved(against: origin).description == "abs.")
        let long = try DomainName(Array(repeating: String(repeating: "x", count: 63), count: 3).joined(separator: "."))
        #expect(throws: WireError.self) { try long.resolved(against: DomainName(String(repeating: "y", count: 63) + ".")) }
    }

    @Test func lookupKeyIsLowerCasedWireForm() throws {
        let key = try DomainName("Web.Default.").lookupKey
        #expect(key == [3] + Array("web".utf8) + [7] + Array("default".utf8) + [0])
    }

    @Test func canonicalOrder() throws {
        // RFC 4034 §6.1's example, shuffled.
        let ordered = ["example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
                       "z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example."]
        let names = try ordered.map { try DomainName($0) }
        #expect(names.reversed().sorted() == names)
    }
}

@Suite struct IDNTests {
    @Test(arguments: [
        ("bücher.example", "xn--bcher-kva.example"),
        ("bücher.example.", "xn--bcher-kva.example."),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("faß.de", "xn--fa-hia.de"),  // non-transitional: ß is kept, not mapped to "ss"
        ("bücher\u{3002}example", "xn--bcher-kva.example"),
        ("ab--cd.default", "ab--cd.default"),
        ("_http._tcp.bücher.example", "_http._tcp.xn--bcher-kva.example"),
        ("münchen.DE", "xn--mnchen-3ya.DE"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ])
    func toASCII(_ unicode: String, _ ascii: String) throws {
        #expect(try DomainName(unicode: unicode).description == ascii)
    }

    @Test(arguments: [
        ("xn--bcher-kva.example.", "bücher.example."),
        ("xn--r8jz45g.xn--zckzah", "例え.テスト"),
        ("ab--cd.default.", "ab--cd.default."),
        ("xn--zz-invalid.example.", "xn--zz-invalid.example."),  // does not decode: shown as is
    ])
    func toUnicode(_ ascii: String, _ unicode: String) throws {
        #expect(try DomainName(ascii).unicodeDescription == unicode)
    }

    @Test(arguments: [
        "a\u{5D0}.example",      // Latin and Hebrew in one label: the Bidi rule (RFC 5893) refuses it
        "\u{2603}.example",      // SNOWMAN: disallowed in IDNA2008
        "a\u{200D}b.example",    // ZERO WIDTH JOINER outside its context (CONTEXTJ)
        "ex ämple.com",          // a space in a non-ASCII label breaks the STD3 rules
        "bücher..example",
    ])
    func rejects(_ unicode: String) {
        #expect {
            try DomainName(unicode: unicode)
        } throws: { error in
            guard case WireError.invalidName(let text, let reason) = error else { return false }
            return text == unicode && !reason.isEmpty
        }
    }

    @Test func errorCarriesLibidn2Reason() {
        #expect {
            try DomainName(unicode: "\u{2603}.example")
        } throws: { error in
            "\(error)".contains("label \"\u{2603}\"") && "\(error)".lowercased().contains("disallowed")
        }
    }
}
