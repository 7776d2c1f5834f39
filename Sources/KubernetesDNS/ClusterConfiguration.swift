public import DNSWire
public import NetAddress

/// How the cluster zone is answered.
public struct ClusterConfiguration: Hashable, Sendable {
    /// `--pods`: how `a-b-c-d.<ns>.pod.<zone>` is answered.
    public enum PodsMode: String, Hashable, Sendable, CaseIterable {
        /// No pod records.
        case disabled
        /// Any dashed IP answers with that IP (kube-dns' old behaviour).
        case insecure
        /// Only the IP of a registered pod in that namespace.
        case verified
    }

    public var domain: DomainName
    public var ttl: UInt32
    public var pods: PodsMode
    /// The service CIDRs: their reverse zones are answered here (unknown addresses NXDOMAIN).
    public var serviceCIDRs: [IPPrefix]
    /// The server's own addresses, the glue of `ns.dns.<zone>`.
    public var serverAddresses: [IPAddress]

    public static let defaultDomain = try! DomainName("cluster.local.")
    public static let schemaVersion = "1.1.0"
    public static let versionTTL: UInt32 = 28800

    public init(domain: DomainName = defaultDomain, ttl: UInt32 = 5, pods: PodsMode = .verified,
                serviceCIDRs: [IPPrefix] = [], serverAddresses: [IPAddress] = []) {
        self.domain = domain
        self.ttl = ttl
        self.pods = pods
        self.serviceCIDRs = serviceCIDRs
        self.serverAddresses = serverAddresses
    }
}
