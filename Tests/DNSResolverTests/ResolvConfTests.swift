import DispatchSockets
import DNSResolver
import DNSWire
import NetAddress
import Testing

/// resolv.conf as glibc reads it: the servers to forward to and the node's search domains that
/// autopath walks after the cluster's.
@Suite struct ResolvConfTests {
    @Test(arguments: [
        ("nameserver 10.0.0.1\nnameserver 10.0.0.2\n", ["10.0.0.1:53", "10.0.0.2:53"]),
        ("# comment\n\tnameserver\t192.0.2.1  \noptions ndots:5\n", ["192.0.2.1:53"]),
        ("nameserver fe80::1%eth0\nnameserver ::1\n", ["[fe80::1]:53", "[::1]:53"]),
        ("nameserver\nnameserver dns.example\nnameservers 10.0.0.1\n", []),
        ("", []),
        // Hostile lines (Fuzz/Sources/FuzzDecoders reads resolv.conf too): a zone index with no
        // address, a bare %, CR line ends, NUL bytes.
        ("nameserver %eth0\nnameserver %\nnameserver 10.0.0.3%\n", ["10.0.0.3:53"]),
        ("nameserver 10.0.0.1\r\nnameserver\u{0}10.0.0.2\n", ["10.0.0.1:53"]),
    ])
    func nameservers(_ text: String, _ expected: [String]) {
        #expect(ResolvConf.nameservers(in: text).map(\.description) == expected)
    }

    @Test(arguments: [
        ("search a.example b.example.\n", ["a.example.", "b.example."]),
        // The last search or domain line wins, as in glibc.
        ("search a.example\ndomain c.example\n", ["c.example."]),
        ("domain c.example d.example\nsearch a.example  b.example\n", ["a.example.", "b.example."]),
        ("search default.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n",
         ["default.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "corp.example."]),
        // A name that does not parse is left out; an empty line keeps nothing.
        ("search ok.example \(String(repeating: "x", count: 64)).example\n", ["ok.example."]),
        ("search a.example\nsearch\n", []),
        ("nameserver 10.0.0.1\n", []),
        ("search . .. a..example\n", ["."]),
        ("domain\n", []),
    ])
    func searchDomains(_ text: String, _ expected: [String]) {
        #expect(ResolvConf.searchDomains(in: text).map(\.description) == expected)
    }

    @Test(arguments: [
        // (servers, listening, kept)
        (["127.0.0.1:53", "10.0.0.1:53"], ["127.0.0.1:53"], ["10.0.0.1:53"]),
        (["127.0.0.53:53", "127.0.0.1:53"], ["127.0.0.1:53"], ["127.0.0.53:53"]),
        (["127.0.0.53:53", "[::1]:53", "10.0.0.1:53"], ["0.0.0.0:53"], ["10.0.0.1:53"]),
        (["127.0.0.1:53"], ["0.0.0.0:5353"], ["127.0.0.1:53"]),
    ])
    func ourOwnAddressesAreNotUpstreams(_ servers: [String], _ listening: [String], _ kept: [String]) throws {
        let parse = { (texts: [String]) throws -> [SocketAddress] in try texts.map { try #require(SocketAddress(parsing: $0)) } }
        #expect(ResolvConf.excludingSelf(try parse(servers), listening: try parse(listening)).map(\.description) == kept)
    }
}
