public import NetAddress

/// How a registry allocates: service CIDRs (one IPv4, optionally one IPv6), the NodePort range,
/// and the load-balancer pool.
public struct RegistryConfiguration: Hashable, Sendable {
    public var serviceCIDRs: [IPPrefix]
    public var nodePortRange: ClosedRange<Int>
    public var loadBalancerPool: [IPPrefix]
    /// Events buffered per watcher that has not read them; one more cuts it off (it must
    /// re-list) rather than hold writers back or grow without bound.
    public var watcherBuffer = 65536

    public static let defaultServiceCIDR = try! IPPrefix(parsing: "10.96.0.0/12")

    public init(serviceCIDRs: [IPPrefix] = [defaultServiceCIDR], nodePortRange: ClosedRange<Int> = 30000...32767,
                loadBalancerPool: [IPPrefix] = []) {
        self.serviceCIDRs = serviceCIDRs
        self.nodePortRange = nodePortRange
        self.loadBalancerPool = loadBalancerPool
    }

    /// Checks the configuration itself: at most one CIDR per family, a usable NodePort range.
    public func validate() throws(RegistryError) {
        let v4 = serviceCIDRs.filter(\.network.isIPv4)
        let v6 = serviceCIDRs.filter { !$0.network.isIPv4 }
        if serviceCIDRs.isEmpty || v4.count > 1 || v6.count > 1 {
            throw .badManifest("--service-cidr: give one IPv4 CIDR, one IPv6 CIDR, or one of each (got \(serviceCIDRs.map(\.description).joined(separator: ", ")))")
        }
        for cidr in serviceCIDRs where cidr.addressCount < 4 {
            throw .badManifest("--service-cidr \(cidr): too small to hold a service address")
        }
        if nodePortRange.lowerBound < 1 || nodePortRange.upperBound > 65535 {
            throw .badManifest("--service-node-port-range \(nodePortRange.lowerBound)-\(nodePortRange.upperBound): ports are 1-65535")
        }
    }
}
