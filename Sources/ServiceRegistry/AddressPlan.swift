public import NetAddress

/// IP-address planning for the two AKS network models (the arithmetic of Azure's documentation):
///
/// - kubenet: only nodes take subnet addresses; pods are NATed from a separate pod CIDR, one /24
///   per node; Azure route tables cap a cluster at 400 nodes.
/// - Azure CNI: every pod takes a subnet address, and each node reserves its max-pods up front,
///   so a node costs 1 + max-pods addresses.
///
/// Both plan one extra node for rolling upgrades, and Azure keeps 5 addresses of every subnet.
public struct AddressPlan: Hashable, Sendable, Codable {
    public enum Network: String, Hashable, Sendable, Codable, CaseIterable {
        case kubenet
        case azureCNI = "azure-cni"
    }

    public static let azureReserved: UInt64 = 5
    public static let surgeNodes = 1
    public static let kubenetMaxNodes = 400
    public static let kubenetNodePrefix = 24

    public var network: Network
    public var subnet: String
    public var nodes: Int
    public var maxPods: Int
    public var podCIDR: String?
    public var serviceCIDR: String
    public var subnetAddresses: UInt64
    public var reservedAddresses: UInt64
    public var availableAddresses: UInt64
    public var neededAddresses: UInt64
    /// kubenet: how many per-node /24 ranges the pod CIDR holds.
    public var podRanges: UInt64?
    public var fits: Bool
    public var maxNodes: Int
    /// The arithmetic, one line per step, and why a plan does not fit.
    public var explanation: [String]

    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(network: Network, subnet: IPPrefix, nodes: Int, maxPods: Int, podCIDR: IPPrefix? = nil,
                serviceCIDR: IPPrefix) throws(Failure) {
        guard subnet.network.isIPv4 else { throw Failure(description: "--subnet: AKS node subnets are IPv4") }
        guard nodes >= 1 else { throw Failure(description: "--nodes must be at least 1") }
        guard (10...250).contains(maxPods) else { throw Failure(description: "--max-pods must be between 10 and 250 (AKS limits)") }
        guard subnet.length <= 29 else { throw Failure(description: "--subnet \(subnet): Azure subnets are /29 or larger") }
        let pods = network == .kubenet ? (podCIDR ?? (try? IPPrefix(parsing: "10.244.0.0/16"))) : nil
        if let pods {
            guard pods.network.isIPv4, pods.length <= Self.kubenetNodePrefix else {
                throw Failure(description: "--pod-cidr \(pods): needs to be IPv4 and hold at least one /24")
            }
        }
        var overlaps: [String] = []
        func overlap(_ a: IPPrefix, _ b: IPPrefix) -> Bool { a.contains(b.network) || b.contains(a.network) }
        if overlap(serviceCIDR, subnet) { overlaps.append("the service CIDR \(serviceCIDR) overlaps the subnet \(subnet)") }
        if let pods, overlap(pods, subnet) { overlaps.append("the pod CIDR \(pods) overlaps the subnet \(subnet)") }
        if let pods, overlap(pods, serviceCIDR) { overlaps.append("the pod CIDR \(pods) overlaps the service CIDR \(serviceCIDR)") }

        self.network = network
        self.subnet = subnet.description
        self.nodes = nodes
        self.maxPods = maxPods
        self.podCIDR = pods?.description
        self.serviceCIDR = serviceCIDR.description
        subnetAddresses = subnet.addressCount
        reservedAddresses = Self.azureReserved
        availableAddresses = subnetAddresses - reservedAddresses
        var lines = [
            "subnet \(subnet): \(subnetAddresses) addresses - \(reservedAddresses) reserved by Azure = \(availableAddresses) available",
        ]
        let planned = UInt64(nodes + Self.surgeNodes)
        var reasons: [String] = overlaps
        switch network {
        case .kubenet:
            neededAddresses = planned
            let ranges = UInt64(1) << UInt64(Self.kubenetNodePrefix - pods!.length)
            podRanges = ranges
            lines.append("nodes: \(nodes) + \(Self.surgeNodes) for upgrades = \(planned) subnet addresses needed (pods do not use the subnet)")
            lines.append("pods: pod CIDR \(pods!) gives \(ranges) per-node /\(Self.kubenetNodePrefix) ranges of \(maxPods) pods each; \(planned) needed")
            let bySubnet = Int(min(availableAddresses, UInt64(Int.max)))
            let byRanges = Int(min(ranges, UInt64(Int.max)))
            maxNodes = max(0, min(bySubnet, byRanges, Self.kubenetMaxNodes + Self.surgeNodes) - Self.surgeNodes)
            lines.append("largest node count: min(\(bySubnet) subnet addresses, \(byRanges) pod ranges, \(Self.kubenetMaxNodes) routes + \(Self.surgeNodes)) - \(Self.surgeNodes) for upgrades = \(maxNodes)")
            if neededAddresses > availableAddresses { reasons.append("\(neededAddresses) addresses needed but the subnet has \(availableAddresses)") }
            if planned > ranges { reasons.append("\(planned) nodes need \(planned) pod ranges but \(pods!) holds \(ranges)") }
            if nodes > Self.kubenetMaxNodes { reasons.append("kubenet clusters are limited to \(Self.kubenetMaxNodes) nodes (Azure route tables)") }
        case .azureCNI:
            let perNode = UInt64(maxPods + 1)
            neededAddresses = planned * perNode
            podRanges = nil
            lines.append("per node: 1 node address + \(maxPods) pod addresses reserved up front = \(perNode)")
            lines.append("needed: (\(nodes) + \(Self.surgeNodes) for upgrades) x \(perNode) = \(neededAddresses)")
            maxNodes = max(0, Int(availableAddresses / perNode) - Self.surgeNodes)
            lines.append("largest node count: floor(\(availableAddresses) / \(perNode)) - \(Self.surgeNodes) for upgrades = \(maxNodes)")
            if neededAddresses > availableAddresses { reasons.append("\(neededAddresses) addresses needed but the subnet has \(availableAddresses)") }
        }
        fits = reasons.isEmpty
        lines.append(fits ? "fits: yes" : "fits: no: " + reasons.joined(separator: "; "))
        explanation = lines
    }
}
