import NetAddress
import Testing
@testable import ServiceRegistry

/// Numbers worked by hand from Azure's documentation.
@Suite struct AddressPlanTests {
    struct Case: CustomStringConvertible, Sendable {
        let network: AddressPlan.Network
        let subnet: String
        let nodes: Int
        let maxPods: Int
        let needed: UInt64
        let available: UInt64
        let maxNodes: Int
        let fits: Bool
        var description: String { "\(network.rawValue) \(subnet) \(nodes)x\(maxPods)" }
    }

    static let cases: [Case] = [
        // Azure CNI, the documentation's example: 50 nodes x 30 pods: (50+1) + (50+1) x 30 = 1581,
        // so a /21 (2048 - 5 = 2043 usable) fits; floor(2043 / 31) - 1 = 64 nodes at most.
        Case(network: .azureCNI, subnet: "10.240.0.0/21", nodes: 50, maxPods: 30, needed: 1581, available: 2043, maxNodes: 64, fits: true),
        // ... and a /22 (1019 usable) does not.
        Case(network: .azureCNI, subnet: "10.240.0.0/22", nodes: 50, maxPods: 30, needed: 1581, available: 1019, maxNodes: 31, fits: false),
        // 3 nodes x 110 pods: 4 x 111 = 444 > 251 in a /24; a /23 (507) fits, 3 nodes at most.
        Case(network: .azureCNI, subnet: "10.240.0.0/24", nodes: 3, maxPods: 110, needed: 444, available: 251, maxNodes: 1, fits: false),
        Case(network: .azureCNI, subnet: "10.240.0.0/23", nodes: 3, maxPods: 110, needed: 444, available: 507, maxNodes: 3, fits: true),
        // kubenet: a /24 holds 251 node addresses; with one upgrade node, 250 nodes.
        Case(network: .kubenet, subnet: "10.240.0.0/24", nodes: 3, maxPods: 110, needed: 4, available: 251, maxNodes: 250, fits: true),
        Case(network: .kubenet, subnet: "10.240.0.0/24", nodes: 251, maxPods: 110, needed: 252, available: 251, maxNodes: 250, fits: false),
        // A /16 subnet: the 400-node route-table limit and the 256 /24s of 10.244.0.0/16 bind first.
        Case(network: .kubenet, subnet: "10.240.0.0/16", nodes: 255, maxPods: 250, needed: 256, available: 65531, maxNodes: 255, fits: true),
        Case(network: .kubenet, subnet: "10.240.0.0/16", nodes: 256, maxPods: 250, needed: 257, available: 65531, maxNodes: 255, fits: false),
        // A /29: 8 - 5 = 3 addresses.
        Case(network: .kubenet, subnet: "10.240.0.0/29", nodes: 2, maxPods: 110, needed: 3, available: 3, maxNodes: 2, fits: true),
    ]

    @Test(arguments: cases)
    func arithmetic(_ c: Case) throws {
        let plan = try AddressPlan(network: c.network, subnet: IPPrefix(parsing: c.subnet), nodes: c.nodes, maxPods: c.maxPods,
                                   serviceCIDR: IPPrefix(parsing: "10.0.0.0/16"))
        #expect(plan.neededAddresses == c.needed)
        #expect(plan.availableAddresses == c.available)
        #expect(plan.maxNodes == c.maxNodes)
        #expect(plan.fits == c.fits)
        #expect(plan.explanation.last?.hasPrefix(c.fits ? "fits: yes" : "fits: no") == true)
    }

    @Test func kubenetRouteLimit() throws {
        let plan = try AddressPlan(network: .kubenet, subnet: IPPrefix(parsing: "10.240.0.0/16"), nodes: 401, maxPods: 30,
                                   podCIDR: IPPrefix(parsing: "172.16.0.0/12"), serviceCIDR: IPPrefix(parsing: "10.0.0.0/16"))
        #expect(!plan.fits)
        #expect(plan.maxNodes == 400)
        #expect(plan.explanation.last == "fits: no: kubenet clusters are limited to 400 nodes (Azure route tables)")
    }

    @Test func overlapsAreReported() throws {
        let plan = try AddressPlan(network: .kubenet, subnet: IPPrefix(parsing: "10.0.0.0/24"), nodes: 3, maxPods: 30,
                                   serviceCIDR: IPPrefix(parsing: "10.0.0.0/16"))
        #expect(!plan.fits)
        #expect(plan.explanation.last == "fits: no: the service CIDR 10.0.0.0/16 overlaps the subnet 10.0.0.0/24")
    }

    @Test(arguments: [(5, "--max-pods must be between 10 and 250 (AKS limits)"), (251, "--max-pods must be between 10 and 250 (AKS limits)")])
    func refusesBadInput(_ maxPods: Int, _ message: String) {
        #expect(throws: AddressPlan.Failure(description: message)) {
            try AddressPlan(network: .azureCNI, subnet: IPPrefix(parsing: "10.240.0.0/24"), nodes: 3, maxPods: maxPods,
                            serviceCIDR: IPPrefix(parsing: "10.0.0.0/16"))
        }
    }
}
