public import DispatchSockets
public import DNSWire
import NetAddress

/// The `nameserver` lines of a resolv.conf (port 53), in order; other lines are ignored,
/// as are IPv6 zone indexes (`fe80::1%eth0`), which a socket address cannot carry.
public enum ResolvConf {
    public static func nameservers(in text: String) -> [SocketAddress] {
        var out: [SocketAddress] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            let text = fields[1].prefix { $0 != "%" }
            if let address = IPAddress(text) { out.append(SocketAddress(address: address, port: 53)) }
        }
        return out
    }

    /// The search domains: the last `search` or `domain` line's, as glibc reads them (a later
    /// line replaces an earlier one). Names that do not parse are left out.
    public static func searchDomains(in text: String) -> [DomainName] {
        var out: [DomainName] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = fields.first, keyword == "search" || keyword == "domain" else { continue }
            let names = keyword == "domain" ? fields.dropFirst().prefix(1) : fields.dropFirst()
            out = names.compactMap { field in
                let text = field.hasSuffix(".") ? String(field) : field + "."
                return try? DomainName(unicode: text)
            }
        }
        return out
    }

    /// `servers` without the addresses we serve on ourselves (forwarding to them would loop):
    /// an exact match, or any address on the port of a wildcard (unspecified) listener that is
    /// local (loopback). 127.0.0.53 is another server than 127.0.0.1, even on port 53.
    public static func excludingSelf(_ servers: [SocketAddress], listening: [SocketAddress]) -> [SocketAddress] {
        servers.filter { server in
            !listening.contains { own in
                own.port == server.port && (own.address == server.address
                    || (own.address.isUnspecified && Self.isLoopback(server.address)))
            }
        }
    }

    static func isLoopback(_ address: IPAddress) -> Bool {
        switch address.unmappedIPv4 ?? address {
        case .v4(let a): a.rawValue >> 24 == 127
        case .v6(let a): a.high == 0 && a.low == 1
        }
    }
}
