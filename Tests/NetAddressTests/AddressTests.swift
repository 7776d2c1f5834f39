import NetAddress
import Testing

@Suite struct IPv4Tests {
    @Test(arguments: ["0.0.0.0", "10.96.0.1", "255.255.255.255", "192.0.2.10"])
    func roundTrip(_ text: String) throws {
        #expect(try #require(IPv4Address(text)).description == text)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", "a.b.c.d", "1.2.3.-4", "1234.1.1.1"])
    func rejects(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test func octetsAndOrder() {
        let a = IPv4Address(10, 96, 0, 1)
        #expect(a.rawValue == 0x0A60_0001)
        #expect(a < IPv4Address(10, 96, 0, 2))
    }
}

@Suite struct IPv6Tests {
    @Test(arguments: [
        ("::", "::"),
        ("::1", "::1"),
        ("fd00::1", "fd00::1"),
        ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // RFC 5952 §4.2.3: the first of equal runs
        ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // a single zero group is not shortened
        ("0:0:0:0:0:0:0:0", "::"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
        ("1::", "1::"),
        ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
        ("fd00:10:96::a", "fd00:10:96::a"),
    ])
    func canonicalText(_ input: String, _ output: String) throws {
        let address = try #require(IPv6Address(input))
        #expect(address.description == output)
        #expect(IPv6Address(output) == address)
    }

    @Test(arguments: [":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", ":1::", "1:2:3:4:5:6:7:8::", "fe80::1%eth0", "::1.2.3", "1:2:3:4:5:6:7"])
    func rejects(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func bytes() throws {
        let a = try #require(IPv6Address("fd00::1:5"))
        #expect(a.bytes == [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 5])
        #expect(IPv6Address(bytes: a.bytes) == a)
        #expect(IPv6Address(bytes: [1, 2, 3]) == nil)
    }
}

@Suite struct PrefixTests {
    @Test(arguments: [
        ("10.96.0.0/12", "10.96.0.1", true),
        ("10.96.0.0/12", "10.111.255.255", true),
        ("10.96.0.0/12", "10.112.0.0", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("192.0.2.7/32", "192.0.2.7", true),
        ("fd00:10:96::/112", "fd00:10:96::ffff", true),
        ("fd00:10:96::/112", "fd00:10:97::", false),
        ("fd00::/8", "10.0.0.1", false),
        ("::/0", "::1", true),
    ])
    func contains(_ prefix: String, _ address: String, _ expected: Bool) throws {
        let p = try IPPrefix(parsing: prefix)
        #expect(p.contains(try #require(IPAddress(address))) == expected)
    }

    @Test(arguments: [
        ("10.96.0.0", IPPrefix.ParseError.missingSlash("10.96.0.0")),
        ("10.96.0/12", .badAddress("10.96.0/12")),
        ("10.96.0.0/33", .badLength("10.96.0.0/33")),
        ("10.96.0.0/", .badLength("10.96.0.0/")),
        ("10.96.0.0/-1", .badLength("10.96.0.0/-1")),
        ("10.96.0.1/12", .hostBitsSet("10.96.0.1/12")),
        ("fd00::1/129", .badLength("fd00::1/129")),
    ])
    func rejects(_ text: String, _ error: IPPrefix.ParseError) {
        #expect(throws: error) { try IPPrefix(parsing: text) }
    }

    @Test func nonStrictZeroesHostBits() throws {
        let p = try IPPrefix(parsing: "10.96.3.4/12", strict: false)
        #expect(p.description == "10.96.0.0/12")
        #expect(p.addressCount == 1 << 20)
        #expect(try IPPrefix(parsing: "fd00::/64").addressCount == UInt64.max)
    }
}
