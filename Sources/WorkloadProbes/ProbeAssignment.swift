public import ServiceRegistry

/// Which prober probes a pod, decided alike by every replica from the registry alone, so that a
/// pod is probed once however many replicas run `--probes`:
/// - while some pod names a node (`spec.nodeName`), each node probes its own pods, as each
///   kubelet does;
/// - otherwise the pods are shared among the probers that announce themselves (a Node annotated
///   `clusterdns.io/prober` whose lease is held), each pod to one of them by rendezvous hashing:
///   when a prober goes away only its pods move, and when it returns only they move back;
/// - with no prober announced (one replica, no shared registry) every prober probes every pod.
public struct ProbeAssignment: Hashable, Sendable {
    /// The annotation a node agent puts on its Node when its replica probes.
    public static let proberAnnotation = "clusterdns.io/prober"

    /// Some pod of the registry names a node.
    public var podsNameNodes: Bool
    /// The probers announced and ready, sorted.
    public var probers: [String]

    public init(podsNameNodes: Bool, probers: [String]) {
        self.podsNameNodes = podsNameNodes
        self.probers = probers.sorted()
    }

    /// The nodes of `snapshot` that announce a prober and are ready (their lease held).
    public static func probers(in snapshot: RegistrySnapshot) -> [String] {
        snapshot.list(.node).compactMap { object -> String? in
            guard case .node(let node) = object, node.metadata.annotations[proberAnnotation] == "true",
                  snapshot.isNodeReady(node.metadata.name) else { return nil }
            return node.metadata.name
        }
    }

    /// Whether the prober of node `node` probes `pod`. A prober without a node name probes the
    /// pods that name none.
    public func probes(_ pod: Pod, as node: String?) -> Bool {
        if podsNameNodes {
            guard let node else { return pod.spec.nodeName.isEmpty }
            return pod.spec.nodeName == node
        }
        guard let node, !probers.isEmpty else { return true }
        return Self.owner(of: pod.key, among: probers) == node
    }

    /// The prober of `among` with the highest score for the pod (ties to the first name): the
    /// same answer on every replica, whatever order it learnt of the probers in.
    public static func owner(of pod: ObjectKey, among probers: [String]) -> String? {
        var best: (score: UInt64, name: String)? = nil
        for name in probers {
            let score = Self.score(node: name, pod: pod)
            if let current = best, current.score > score || (current.score == score && current.name < name) { continue }
            best = (score, name)
        }
        return best?.name
    }

    /// FNV-1a over the node and the pod's namespace and name, then a 64-bit finaliser
    /// (splitmix64's) to spread near keys: stable across processes and releases, unlike
    /// Swift's seeded `Hasher`.
    static func score(node: String, pod: ObjectKey) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) {
            for byte in bytes {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
        }
        mix(node.utf8)
        mix([0])
        mix(pod.namespace.utf8)
        mix([UInt8(ascii: "/")])
        mix(pod.name.utf8)
        hash ^= hash >> 30
        hash &*= 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 27
        hash &*= 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        return hash
    }
}
