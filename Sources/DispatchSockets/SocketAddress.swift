#if canImport(Glibc)
public import Glibc
#endif
public import NetAddress

/// An IP address and port, convertible to and from `sockaddr_storage`.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `ADDR:PORT`, `[V6ADDR]:PORT`, or an address alone with `defaultPort`.
    public init?(parsing text: String, defaultPort: UInt16? = nil) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), let ip = IPv6Address(text[text.index(after: text.startIndex)..<close]) else { return nil }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty, let defaultPort { self.init(address: .v6(ip), port: defaultPort); return }
            guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()) else { return nil }
            self.init(address: .v6(ip), port: port)
            return
        }
        if let ip = IPAddress(text), let defaultPort { self.init(address: ip, port: defaultPort); return }
        guard let colon = text.lastIndex(of: ":"), let ip = IPv4Address(text[..<colon]),
              let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        self.init(address: .v4(ip), port: port)
    }

    public var description: String {
        switch address {
        case .v4: "\(address):\(port)"
        case .v6: "[\(address)]:\(port)"
        }
    }

    public var family: Int32 { address.isIPv4 ? AF_INET : AF_INET6 }

    /// Calls `body` with this address as a `sockaddr`.
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var storage = sockaddr_storage()
        let length = write(to: &storage)
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// Writes this address into `storage`; returns its length.
    func write(to storage: inout sockaddr_storage) -> socklen_t {
        switch address {
        case .v4(let a):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr.s_addr = a.rawValue.bigEndian
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee = sin } }
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6(let a):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                for (i, byte) in a.bytes.enumerated() { raw[i] = byte }
            }
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee = sin6 } }
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Reads an address from `storage`; nil for another family.
    public init?(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let sin = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            self.init(address: .v4(IPv4Address(rawValue: UInt32(bigEndian: sin.sin_addr.s_addr))), port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            let sin6 = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            let bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
            guard let a = IPv6Address(bytes: bytes) else { return nil }
            self.init(address: .v6(a), port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }
}
