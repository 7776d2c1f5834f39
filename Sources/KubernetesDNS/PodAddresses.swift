import HashTreeCollections
import NetAddress
import ServiceRegistry

/// Pod IPs and the pods that hold them, in one index: what `--pods verified` checks a pod name
/// against, and the namespace whose search path a query from a pod's address walks (autopath).
/// An address almost always has one holder; it has several while a pod is replaced or when
/// pods share their node's network.
struct PodAddresses {
    struct Holder: Hashable {
        /// Lower-cased.
        var namespace: String
        /// Resolves through the cluster's search path from this address (`Pod.searchesClusterFromOwnAddress`).
        var searchesCluster: Bool
    }

    /// One holder inline: no array per address for the common case.
    enum Holders {
        case one(Holder)
        case many([Holder])

        var all: [Holder] {
            switch self {
            case .one(let holder): [holder]
            case .many(let holders): holders
            }
        }

        init?(_ holders: [Holder]) {
            switch holders.count {
            case 0: return nil
            case 1: self = .one(holders[0])
            default: self = .many(holders)
            }
        }
    }

    struct Pod {
        var addresses: [IPAddress]
        var holder: Holder
    }

    private(set) var byPod: TreeDictionary<ObjectKey, Pod> = [:]
    private(set) var byAddress: TreeDictionary<IPAddress, Holders> = [:]

    /// Records the pod's addresses now (none: the pod is gone or has none yet).
    mutating func set(_ key: ObjectKey, addresses: [IPAddress], searchesCluster: Bool) {
        if let old = byPod[key] {
            for ip in old.addresses { remove(old.holder, from: ip) }
        }
        guard !addresses.isEmpty else {
            byPod[key] = nil
            return
        }
        let holder = Holder(namespace: key.namespace.lowercased(), searchesCluster: searchesCluster)
        byPod[key] = Pod(addresses: addresses, holder: holder)
        for ip in addresses { add(holder, to: ip) }
    }

    private mutating func add(_ holder: Holder, to ip: IPAddress) {
        byAddress[ip] = Holders((byAddress[ip]?.all ?? []) + [holder])
    }

    private mutating func remove(_ holder: Holder, from ip: IPAddress) {
        guard var holders = byAddress[ip]?.all, let index = holders.firstIndex(of: holder) else { return }
        holders.remove(at: index)
        byAddress[ip] = Holders(holders)
    }

    /// Whether a pod of `namespace` (lower-cased) holds `ip`.
    func holds(_ ip: IPAddress, namespace: String) -> Bool {
        switch byAddress[ip] {
        case .one(let holder): holder.namespace == namespace
        case .many(let holders): holders.contains { $0.namespace == namespace }
        case nil: false
        }
    }

    /// The namespace of the pod that sends queries from `ip` through the cluster's search path;
    /// nil when no pod holds it, a holder does not search the cluster (a `hostNetwork` pod on a
    /// node's address), or holders of different namespaces share it: then whose search path a
    /// query walks is not known.
    func searchNamespace(of ip: IPAddress) -> String? {
        switch byAddress[ip.unmappedIPv4 ?? ip] {
        case .one(let holder):
            return holder.searchesCluster ? holder.namespace : nil
        case .many(let holders):
            let first = holders[0]
            return holders.allSatisfy { $0 == first } && first.searchesCluster ? first.namespace : nil
        case nil:
            return nil
        }
    }
}
