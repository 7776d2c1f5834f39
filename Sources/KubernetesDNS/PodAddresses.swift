import HashTreeCollections
import NetAddress
import ServiceRegistry

/// Pod IPs and who holds them, in one index: what `--pods verified` checks a pod name against,
/// and the namespace whose search path a query from a pod's address walks (autopath).
///
/// It is built for 100,000 pods at a few bytes each: an address maps to the number of its
/// holder (a namespace and whether it searches the cluster), so no string, array or object key
/// is stored per pod. A pod's old addresses come from the registry's event (`WatchEvent.previous`),
/// not from a copy of them here. An address almost always has one holder; it has several while
/// a pod is replaced or when pods share their node's network, and those few are listed apart.
struct PodAddresses {
    struct Holder: Hashable {
        /// Lower-cased.
        var namespace: String
        /// Resolves through the cluster's search path from this address (`Pod.searchesClusterFromOwnAddress`).
        var searchesCluster: Bool
    }

    /// Every holder seen, by number. It only grows (by a namespace's first pod), so the copy a
    /// served zone shares is never duplicated by a pod's change.
    private(set) var holders: [Holder] = []
    private var numbers: [Holder: UInt32] = [:]
    /// IPv4 addresses by their 32 bits, IPv6 by their 128: the holder's number, or `shared`.
    private var v4: TreeDictionary<UInt32, UInt32> = [:]
    private var v6: TreeDictionary<IPv6Address, UInt32> = [:]
    /// The holders of addresses held more than once (a number per holding pod).
    private var sharedHolders: TreeDictionary<IPAddress, [UInt32]> = [:]
    private static let shared = UInt32.max

    /// How many addresses are indexed.
    var count: Int { v4.count + v6.count }

    /// A pod's addresses change from `old` to `new` (either empty: the pod is new, or gone).
    mutating func replace(_ old: [IPAddress], _ oldHolder: Holder?, with new: [IPAddress], _ newHolder: Holder?) {
        if let oldHolder, let number = numbers[oldHolder] {
            for ip in old { remove(number, at: ip) }
        }
        if let newHolder, !new.isEmpty {
            let number = intern(newHolder)
            for ip in new { add(number, at: ip) }
        }
    }

    private mutating func intern(_ holder: Holder) -> UInt32 {
        if let number = numbers[holder] { return number }
        let number = UInt32(holders.count)
        holders.append(holder)
        numbers[holder] = number
        return number
    }

    private mutating func add(_ number: UInt32, at ip: IPAddress) {
        switch ip {
        case .v4(let a): Self.add(number, at: a.rawValue, ip: ip, to: &v4, shared: &sharedHolders)
        case .v6(let a): Self.add(number, at: a, ip: ip, to: &v6, shared: &sharedHolders)
        }
    }

    private mutating func remove(_ number: UInt32, at ip: IPAddress) {
        switch ip {
        case .v4(let a): Self.remove(number, at: a.rawValue, ip: ip, from: &v4, shared: &sharedHolders)
        case .v6(let a): Self.remove(number, at: a, ip: ip, from: &v6, shared: &sharedHolders)
        }
    }

    private static func add<Key: Hashable>(_ number: UInt32, at key: Key, ip: IPAddress,
                                           to table: inout TreeDictionary<Key, UInt32>,
                                           shared: inout TreeDictionary<IPAddress, [UInt32]>) {
        switch table[key] {
        case nil:
            table[key] = number
        case Self.shared?:
            shared[ip, default: []].append(number)
        case let only?:
            table[key] = Self.shared
            shared[ip] = [only, number]
        }
    }

    private static func remove<Key: Hashable>(_ number: UInt32, at key: Key, ip: IPAddress,
                                              from table: inout TreeDictionary<Key, UInt32>,
                                              shared: inout TreeDictionary<IPAddress, [UInt32]>) {
        switch table[key] {
        case Self.shared?:
            guard var numbers = shared[ip], let index = numbers.firstIndex(of: number) else { return }
            numbers.remove(at: index)
            if numbers.count == 1 {
                table[key] = numbers[0]
                shared[ip] = nil
            } else {
                shared[ip] = numbers
            }
        case number?:
            table[key] = nil
        default:
            return
        }
    }

    /// The holders of `ip`, by number (with repeats when several pods of one namespace hold it).
    private func numbers(of ip: IPAddress) -> ArraySlice<UInt32> {
        let entry: UInt32?
        switch ip {
        case .v4(let a): entry = v4[a.rawValue]
        case .v6(let a): entry = v6[a]
        }
        switch entry {
        case nil: return []
        case Self.shared?: return sharedHolders[ip]?[...] ?? []
        case let number?: return [number]
        }
    }

    /// Every address and its holders in a canonical order: two indexes of the same pods compare
    /// equal whatever order their pods came in.
    var contents: [IPAddress: [Holder]] {
        var all: [IPAddress: [Holder]] = [:]
        for ip in v4.keys.map({ IPAddress.v4(IPv4Address(rawValue: $0)) }) + v6.keys.map(IPAddress.v6) {
            all[ip] = numbers(of: ip).map { holders[Int($0)] }
                .sorted { ($0.namespace, $0.searchesCluster ? 1 : 0) < ($1.namespace, $1.searchesCluster ? 1 : 0) }
        }
        return all
    }

    /// Whether a pod of `namespace` (lower-cased) holds `ip`.
    func holds(_ ip: IPAddress, namespace: String) -> Bool {
        numbers(of: ip).contains { holders[Int($0)].namespace == namespace }
    }

    /// The namespace of the pod that sends queries from `ip` through the cluster's search path;
    /// nil when no pod holds it, a holder does not search the cluster (a `hostNetwork` pod on a
    /// node's address), or holders of different namespaces share it: then whose search path a
    /// query walks is not known.
    func searchNamespace(of ip: IPAddress) -> String? {
        let numbers = numbers(of: ip.unmappedIPv4 ?? ip)
        guard let first = numbers.first, numbers.allSatisfy({ $0 == first }) else { return nil }
        let holder = holders[Int(first)]
        return holder.searchesCluster ? holder.namespace : nil
    }
}
