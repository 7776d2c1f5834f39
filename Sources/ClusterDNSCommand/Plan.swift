import ArgumentParser
import FoundationEssentials
import NetAddress
import ServiceRegistry

/// `clusterdns plan`: the IP-address arithmetic of AKS's kubenet and Azure CNI models.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan the subnet addresses an AKS-style cluster needs (kubenet or Azure CNI).",
        discussion: """
            kubenet: only nodes take subnet addresses; pods come from --pod-cidr, one /24 per node. \
            Azure CNI: every pod takes a subnet address and each node reserves --max-pods up front. \
            Both plan one extra node for upgrades; Azure keeps 5 addresses of every subnet. \
            Exits 1 when the plan does not fit.
            """
    )

    enum Output: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(help: "kubenet or azure-cni.")
    var network: String

    @Option(help: "The node subnet, for instance 10.240.0.0/24.")
    var subnet: String

    @Option(help: "Number of nodes.")
    var nodes: Int

    @Option(help: "Maximum pods per node (10-250).")
    var maxPods: Int = 110

    @Option(help: "kubenet's pod CIDR.")
    var podCIDR: String = "10.244.0.0/16"

    @Option(help: "The service CIDR (must not overlap the subnet or the pod CIDR).")
    var serviceCIDR: String = "10.0.0.0/16"

    @Option(help: "text or json.")
    var output: Output = .text

    func run() throws {
        guard let model = AddressPlan.Network(rawValue: network) else {
            throw ValidationError("--network must be kubenet or azure-cni, not \"\(network)\"")
        }
        let subnetPrefix = try parse(subnet, "--subnet")
        let podPrefix = try parse(podCIDR, "--pod-cidr")
        let servicePrefix = try parse(serviceCIDR, "--service-cidr")
        let plan: AddressPlan
        do {
            plan = try AddressPlan(network: model, subnet: subnetPrefix, nodes: nodes, maxPods: maxPods,
                                   podCIDR: podPrefix, serviceCIDR: servicePrefix)
        } catch {
            throw ValidationError(error.description)
        }
        switch output {
        case .text:
            print("network: \(plan.network.rawValue), \(plan.nodes) nodes, max \(plan.maxPods) pods per node")
            for line in plan.explanation { print(line) }
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(plan), as: UTF8.self))
        }
        if !plan.fits { throw ExitCode(1) }
    }

    func parse(_ text: String, _ flag: String) throws -> IPPrefix {
        do { return try IPPrefix(parsing: text) } catch { throw ValidationError("\(flag): \(error)") }
    }
}
