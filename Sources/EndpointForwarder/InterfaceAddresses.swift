#if canImport(Glibc)
import Glibc
#endif
import CShims
public import NetAddress
import Synchronization

/// The `interface` mode: service addresses assigned to one network interface (a dummy one
/// created if it does not exist, as IPVS-mode kube-proxy does with kube-ipvs0) through
/// rtnetlink, each as a /32 (/128), and removed when no service uses them any more.
public final class InterfaceAddresses: Sendable {
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case noPrivilege(String)
        case noDummyInterfaces(String)
        case netlink(String, errno: Int32)

        public var description: String {
            switch self {
            case .noPrivilege(let what): "\(what): not permitted: the interface mode needs CAP_NET_ADMIN (run as root, or use --forwarder-mode bind)"
            case .noDummyInterfaces(let name): "cannot create the dummy interface \(name): this kernel has no dummy driver; create an interface yourself and pass it with --forwarder-interface, or use --forwarder-mode bind"
            case .netlink(let what, let errno): "\(what): \(String(cString: strerror(errno)))"
            }
        }
    }

    public let name: String
    let index: Int32
    /// Whether we created the interface (then it is ours to remove... we leave it, as kube-proxy does).
    public let created: Bool
    let assigned = Mutex<Set<IPAddress>>([])

    /// Uses interface `name`, creating a dummy interface of that name if there is none.
    public init(name: String) throws(Failure) {
        self.name = name
        var index = Int32(if_nametoindex(name))
        var created = false
        if index == 0 {
            let rc = cdns_link_add_dummy(name)
            switch -rc {
            case 0, EEXIST: break
            case EPERM, EACCES: throw .noPrivilege("creating interface \(name)")
            case EOPNOTSUPP, EINVAL: throw .noDummyInterfaces(name)
            default: throw .netlink("creating interface \(name)", errno: -rc)
            }
            created = rc == 0
            index = Int32(if_nametoindex(name))
            guard index > 0 else { throw .netlink("interface \(name) after creation", errno: ENODEV) }
        }
        let up = cdns_link_up(index)
        if up != 0 {
            if -up == EPERM || -up == EACCES { throw .noPrivilege("setting \(name) up") }
            throw .netlink("setting \(name) up", errno: -up)
        }
        self.index = index
        self.created = created
    }

    public var addresses: Set<IPAddress> { assigned.withLock { $0 } }

    /// Assigns `address` (once).
    public func add(_ address: IPAddress) throws(Failure) {
        if assigned.withLock({ $0.contains(address) }) { return }
        let rc = Self.change(add: true, index: index, address)
        guard rc == 0 || -rc == EEXIST else {
            if -rc == EPERM || -rc == EACCES { throw .noPrivilege("adding \(address) to \(name)") }
            throw .netlink("adding \(address) to \(name)", errno: -rc)
        }
        assigned.withLock { _ = $0.insert(address) }
    }

    /// Removes an address this object assigned.
    public func remove(_ address: IPAddress) {
        guard assigned.withLock({ $0.remove(address) }) != nil else { return }
        _ = Self.change(add: false, index: index, address)
    }

    /// Removes every address this object assigned.
    public func removeAll() {
        for address in assigned.withLock({ $0 }) { remove(address) }
    }

    static func change(add: Bool, index: Int32, _ address: IPAddress) -> Int32 {
        switch address {
        case .v4(let a):
            var bytes: [UInt8] = [UInt8(a.rawValue >> 24), UInt8((a.rawValue >> 16) & 0xFF), UInt8((a.rawValue >> 8) & 0xFF), UInt8(a.rawValue & 0xFF)]
            return cdns_address(add ? 1 : 0, index, AF_INET, &bytes, 32)
        case .v6(let a):
            var bytes = a.bytes
            return cdns_address(add ? 1 : 0, index, AF_INET6, &bytes, 128)
        }
    }
}
