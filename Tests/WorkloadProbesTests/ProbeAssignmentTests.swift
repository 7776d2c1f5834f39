import NetAddress
import ServiceRegistry
import Testing
import TestSupport
import WorkloadProbes

/// Which prober probes which pod: every replica decides alike from the registry, a pod has one
/// prober, and a prober that goes away moves only its own pods.
struct ProbeAssignmentTests {
    static let nodes = ["node-a", "node-b", "node-c"]

    static func key(_ name: String, _ namespace: String = "shop") -> ObjectKey { ObjectKey(.pod, namespace: namespace, name: name) }

    /// Pinned owners (computed apart from this code, by a script of the FNV-1a and splitmix64
    /// steps): replicas of different builds or releases must agree on them, which a seeded
    /// hash would not.
    @Test func ownersArePinnedAcrossBuilds() {
        let owners = (0..<12).map { ProbeAssignment.owner(of: Self.key("p\($0)"), among: Self.nodes) ?? "" }
        #expect(owners == ["node-b", "node-a", "node-c", "node-a", "node-b", "node-b", "node-a", "node-c", "node-b", "node-c", "node-c", "node-b"])
        // The order the probers are learnt in does not matter.
        #expect((0..<12).allSatisfy { ProbeAssignment.owner(of: Self.key("p\($0)"), among: Self.nodes.reversed()) == owners[$0] })
        #expect(ProbeAssignment.owner(of: Self.key("p0"), among: []) == nil)
    }

    @Test func aProberThatGoesMovesOnlyItsOwnPods() {
        let pods = (0..<300).map { Self.key("p\($0)") }
        let before = pods.map { ProbeAssignment.owner(of: $0, among: Self.nodes)! }
        // Spread over all three (300 pods: 90, 104 and 106 of them).
        for node in Self.nodes { #expect(before.filter { $0 == node }.count >= 80) }
        let after = pods.map { ProbeAssignment.owner(of: $0, among: ["node-a", "node-c"])! }
        for (old, new) in zip(before, after) {
            if old == "node-b" { #expect(new != "node-b") } else { #expect(new == old) }
        }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let podsNameNodes: Bool
        let probers: [String]
        let podNode: String
        let prober: String?
        let probes: Bool
        var testDescription: String {
            "pods name nodes: \(podsNameNodes), probers \(probers), pod on '\(podNode)', prober \(prober ?? "without a node") → \(probes)"
        }
    }

    // "p1" goes to node-a among the three, and among node-a and node-b.
    static let cases: [Case] = [
        // Some pod names a node: each node its own.
        Case(podsNameNodes: true, probers: nodes, podNode: "node-a", prober: "node-a", probes: true),
        Case(podsNameNodes: true, probers: nodes, podNode: "node-b", prober: "node-a", probes: false),
        Case(podsNameNodes: true, probers: [], podNode: "", prober: "node-a", probes: false),
        Case(podsNameNodes: true, probers: [], podNode: "", prober: nil, probes: true),
        Case(podsNameNodes: true, probers: [], podNode: "node-a", prober: nil, probes: false),
        // No pod names a node, no prober announced: every prober, every pod.
        Case(podsNameNodes: false, probers: [], podNode: "", prober: "node-a", probes: true),
        Case(podsNameNodes: false, probers: [], podNode: "", prober: nil, probes: true),
        // Announced probers share the pods; one not among them (not registered yet, or its
        // lease lapsed) probes none.
        Case(podsNameNodes: false, probers: nodes, podNode: "", prober: "node-a", probes: true),
        Case(podsNameNodes: false, probers: nodes, podNode: "", prober: "node-b", probes: false),
        Case(podsNameNodes: false, probers: ["node-b", "node-c"], podNode: "", prober: "node-a", probes: false),
        Case(podsNameNodes: false, probers: nodes, podNode: "", prober: nil, probes: true),
    ]

    @Test(arguments: cases) func whoProbes(_ c: Case) {
        var pod = Pod(metadata: ObjectMeta(name: "p1", namespace: "shop"))
        pod.spec.nodeName = c.podNode
        #expect(ProbeAssignment(podsNameNodes: c.podsNameNodes, probers: c.probers).probes(pod, as: c.prober) == c.probes)
    }

    /// The probers are the Nodes annotated as such (by their agent) and ready.
    @Test func probersAreTheAnnotatedNodes() async throws {
        let registry = try Registry()
        for object in try Manifest.decode("""
            apiVersion: v1
            kind: Node
            metadata: {name: n1, annotations: {clusterdns.io/prober: "true"}}
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: n2}
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: n3, annotations: {clusterdns.io/prober: "false"}}
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: n0, annotations: {clusterdns.io/prober: "true"}}
            """).map({ try $0.result.get() }) {
            try await registry.apply(object)
        }
        #expect(ProbeAssignment.probers(in: registry.snapshot()) == ["n0", "n1"])
    }
}
