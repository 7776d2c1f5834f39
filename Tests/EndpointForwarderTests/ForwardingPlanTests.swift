import DispatchSockets
import EndpointForwarder
import NetAddress
import ServiceRegistry
import Testing

let planManifests = """
    apiVersion: v1
    kind: Node
    metadata: {name: node-1}
    status: {addresses: [{type: InternalIP, address: 192.168.1.10}, {type: Hostname, address: node-1}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      type: LoadBalancer
      clusterIP: 10.96.0.10
      externalIPs: [203.0.113.7]
      externalTrafficPolicy: Local
      ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, nodePort: 30053}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
    addressType: IPv4
    ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
    endpoints:
      - {addresses: [10.244.1.5], nodeName: node-1, conditions: {ready: true}}
      - {addresses: [10.244.2.5], nodeName: node-2, conditions: {ready: true}}
      - {addresses: [10.244.2.6], nodeName: node-2, conditions: {ready: false, serving: true, terminating: true}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: draining, namespace: default}
    spec: {clusterIP: 10.96.0.11, ports: [{name: http, port: 80}], internalTrafficPolicy: Local}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: draining-1, namespace: default, labels: {kubernetes.io/service-name: draining}}
    addressType: IPv4
    ports: [{name: http, port: 80, protocol: TCP}]
    endpoints:
      - {addresses: [10.244.3.1], nodeName: node-2, conditions: {ready: false, serving: true, terminating: true}}
      - {addresses: [10.244.3.2], nodeName: node-2, conditions: {ready: false, serving: false, terminating: true}}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: headless, namespace: default}
    spec: {clusterIP: None, ports: [{name: http, port: 80}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: ext, namespace: default}
    spec: {type: ExternalName, externalName: example.com}
    """

struct PlanCase: Sendable, CustomStringConvertible {
    var frontend: String
    var proto: TransportProtocol
    /// Eligible endpoints on node-1, sorted; nil: no such frontend.
    var eligible: [String]?
    var description: String { "\(frontend)/\(proto)" }
}

let planCases: [PlanCase] = [
    // ClusterIP: all ready endpoints (internal policy Cluster), never the terminating one.
    PlanCase(frontend: "10.96.0.10:80", proto: .tcp, eligible: ["10.244.1.5:8080", "10.244.2.5:8080"]),
    PlanCase(frontend: "10.96.0.10:53", proto: .udp, eligible: ["10.244.1.5:5353", "10.244.2.5:5353"]),
    // External frontends with externalTrafficPolicy Local: this node's endpoint first (only).
    PlanCase(frontend: "192.168.1.10:30080", proto: .tcp, eligible: ["10.244.1.5:8080"]),
    PlanCase(frontend: "192.168.1.10:30053", proto: .udp, eligible: ["10.244.1.5:5353"]),
    // The load-balancer IP, from the registry's pool (its first address).
    PlanCase(frontend: "198.51.100.1:80", proto: .tcp, eligible: ["10.244.1.5:8080"]),
    PlanCase(frontend: "203.0.113.7:80", proto: .tcp, eligible: ["10.244.1.5:8080"]),
    // No TCP frontend for the UDP port and no node port on the ClusterIP.
    PlanCase(frontend: "10.96.0.10:53", proto: .tcp, eligible: nil),
    PlanCase(frontend: "10.96.0.10:30080", proto: .tcp, eligible: nil),
    // None ready: serving terminating endpoints; Local preferred but none here, so all of them.
    PlanCase(frontend: "10.96.0.11:80", proto: .tcp, eligible: ["10.244.3.1:80"]),
]

@Suite struct ForwardingPlanTests {
    static let snapshot: RegistrySnapshot = {
        let registry = try! Registry(configuration: RegistryConfiguration(
            serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR], loadBalancerPool: [try! IPPrefix(parsing: "198.51.100.0/24")]))
        for entry in Manifest.decode(planManifests) { _ = try! registry.apply(try! entry.result.get()) }
        return registry.snapshot()
    }()

    @Test(arguments: planCases)
    func frontends(_ c: PlanCase) throws {
        let plan = ForwardingPlan(snapshot: Self.snapshot, nodeAddresses: [], nodeName: "node-1")
        let frontend = Frontend(address: try #require(SocketAddress(parsing: c.frontend)), protocol: c.proto)
        #expect(plan.frontends[frontend]?.eligible(node: "node-1").map(\.description).sorted() == c.eligible)
    }

    @Test func headlessAndExternalNameServicesHaveNoFrontends() {
        let plan = ForwardingPlan(snapshot: Self.snapshot, nodeAddresses: [], nodeName: "node-1")
        let services = Set(plan.frontends.values.map(\.service.name))
        #expect(services == ["web", "draining"])
        #expect(plan.frontends.count == 9, "\(plan.frontends.keys.map(\.description).sorted())")
        #expect(plan.nodeAddresses == [IPAddress("192.168.1.10")!])
    }

    @Test func affinityKeepsAClientOnItsEndpointAndRoundRobinCoversAll() throws {
        let plan = ForwardingPlan(snapshot: Self.snapshot, nodeAddresses: [], nodeName: "node-1")
        var frontendPlan = try #require(plan.frontends[Frontend(address: SocketAddress(parsing: "10.96.0.10:80")!, protocol: .tcp)])
        let health = EndpointHealth()
        let roundRobin = BackendChooser(plan: frontendPlan, node: "node-1", health: health)
        let firsts = (0..<4).map { _ in roundRobin.order(for: nil).first!.description }
        #expect(Set(firsts).count == 2 && firsts[0] == firsts[2] && firsts[1] == firsts[3])
        frontendPlan.affinityTimeout = 60
        let sticky = BackendChooser(plan: frontendPlan, node: "node-1", health: health)
        let client = IPAddress("10.0.0.9")!
        let chosen = sticky.order(for: client)[0]
        sticky.chose(chosen, for: client)
        #expect((0..<5).allSatisfy { _ in sticky.order(for: client)[0] == chosen })
        // A failing endpoint goes last while others remain.
        health.markFailed(chosen.address)
        #expect(sticky.order(for: nil).last == chosen)
    }
}
