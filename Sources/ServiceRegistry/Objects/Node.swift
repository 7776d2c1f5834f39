/// A v1 Node: its addresses, pod CIDRs and pod capacity.
public struct Node: Hashable, Sendable, Codable {
    public var metadata: ObjectMeta
    public var podCIDRs: [String]
    public var addresses: [Address]
    /// `status.capacity.pods` (or `allocatable.pods`); 110 when not given, as kubelet's default.
    public var maxPods: Int

    public struct Address: Hashable, Sendable, Codable {
        public var type: String
        public var address: String
        public init(type: String, address: String) {
            self.type = type
            self.address = address
        }
    }

    public init(metadata: ObjectMeta, podCIDRs: [String] = [], addresses: [Address] = [], maxPods: Int = 110) {
        self.metadata = metadata
        self.podCIDRs = podCIDRs
        self.addresses = addresses
        self.maxPods = maxPods
    }

    public var key: ObjectKey { ObjectKey(.node, name: metadata.name) }
}

/// A v1 Namespace.
public struct Namespace: Hashable, Sendable, Codable {
    public var metadata: ObjectMeta
    public init(metadata: ObjectMeta) { self.metadata = metadata }
    public var key: ObjectKey { ObjectKey(.namespace, name: metadata.name) }
}
