import NetAddress
import Testing
@testable import ServiceRegistry

func service(_ name: String, namespace: String = "default", type: Service.ServiceType = .clusterIP,
             clusterIP: String = "", ports: [Service.Port] = [Service.Port(name: "http", port: 80)],
             selector: [String: String]? = nil, configure: (inout Service.Spec) -> Void = { _ in }) -> RegistryObject {
    var spec = Service.Spec()
    spec.type = type
    spec.clusterIP = clusterIP
    spec.ports = ports
    spec.selector = selector
    configure(&spec)
    return .service(Service(metadata: ObjectMeta(name: name, namespace: namespace), spec: spec))
}

func pod(_ name: String, namespace: String = "default", labels: [String: String], ip: String = "", node: String = "",
         ready: Bool? = nil, hostname: String = "", subdomain: String = "",
         ports: [Pod.ContainerPort] = []) -> RegistryObject {
    var p = Pod(metadata: ObjectMeta(name: name, namespace: namespace, labels: labels))
    p.spec.containers = [Pod.Container(name: "app", ports: ports)]
    p.spec.nodeName = node
    p.spec.hostname = hostname
    p.spec.subdomain = subdomain
    p.status.podIP = ip
    p.status.podIPs = ip.isEmpty ? [] : [ip]
    p.status.isReady = ready
    return .pod(p)
}

func prefix(_ s: String) -> IPPrefix { try! IPPrefix(parsing: s) }

extension Registry {
    func service(_ name: String, namespace: String = "default") -> Service? {
        snapshot().service(namespace: namespace, name: name)
    }
}

@Suite struct AllocatorTests {
    @Test func ipv4SkipsNetworkAndBroadcastAndExhausts() throws {
        var a = IPAllocator(prefix: prefix("10.0.0.0/29"))
        #expect(a.capacity == 6)
        var got: [String] = []
        for _ in 0..<6 { got.append(try a.allocateNext().description) }
        #expect(got == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"])
        #expect(throws: IPAllocator.Failure.full) { try a.allocateNext() }
        a.release(IPAddress("10.0.0.3")!)
        #expect(try a.allocateNext().description == "10.0.0.3", "reuse after release")
    }

    @Test(arguments: [
        ("10.0.0.0", IPAllocator.Failure.notInRange),   // network address
        ("10.0.0.7", .notInRange),                      // broadcast
        ("10.0.1.1", .notInRange),                      // outside
        ("fd00::1", .notInRange),                       // other family
    ])
    func refusesRequests(_ address: String, _ failure: IPAllocator.Failure) {
        var a = IPAllocator(prefix: prefix("10.0.0.0/29"))
        #expect(throws: failure) { try a.allocate(IPAddress(address)!) }
    }

    @Test func requestedThenNextSkipsIt() throws {
        var a = IPAllocator(prefix: prefix("10.0.0.0/29"))
        try a.allocate(IPAddress("10.0.0.1")!)
        #expect(throws: IPAllocator.Failure.alreadyAllocated) { try a.allocate(IPAddress("10.0.0.1")!) }
        #expect(try a.allocateNext().description == "10.0.0.2")
    }

    @Test func releasedAddressIsNotReusedAtOnce() throws {
        var a = IPAllocator(prefix: prefix("10.0.0.0/24"))
        let first = try a.allocateNext()
        a.release(first)
        #expect(try a.allocateNext() != first)
    }

    @Test func ipv6() throws {
        var a = IPAllocator(prefix: prefix("fd00:10:96::/112"))
        #expect(try a.allocateNext().description == "fd00:10:96::1")
        try a.allocate(IPAddress("fd00:10:96::fffe")!)
        #expect(throws: IPAllocator.Failure.notInRange) { try a.allocate(IPAddress("fd00:10:96::ffff")!) }
        #expect(a.capacity == 65534)
        var big = IPAllocator(prefix: prefix("fd00::/64"))
        #expect(try big.allocateNext().description == "fd00::1")
    }

    @Test func reservedFirstHostForPods() throws {
        var a = IPAllocator(prefix: prefix("10.244.1.0/30"), reserveFirstHost: true)
        #expect(try a.allocateNext().description == "10.244.1.2")
        #expect(throws: IPAllocator.Failure.full) { try a.allocateNext() }
    }

    @Test func nodePorts() throws {
        var p = PortAllocator(range: 30000...30002)
        #expect(try p.allocateNext() == 30000)
        try p.allocate(30002)
        #expect(throws: PortAllocator.Failure.alreadyAllocated) { try p.allocate(30002) }
        #expect(throws: PortAllocator.Failure.notInRange) { try p.allocate(40000) }
        #expect(try p.allocateNext() == 30001)
        #expect(throws: PortAllocator.Failure.full) { try p.allocateNext() }
    }
}

@Suite struct ServiceAllocationTests {
    @Test func clusterIPsAreAllocatedAndReleased() throws {
        let registry = try Registry(configuration: RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/29")]))
        try registry.apply(service("a"))
        try registry.apply(service("b", clusterIP: "10.96.0.5"))
        try registry.apply(service("c"))
        #expect(registry.service("a")?.spec.clusterIPs == ["10.96.0.1"])
        #expect(registry.service("b")?.spec.clusterIP == "10.96.0.5")
        #expect(registry.service("c")?.spec.clusterIP == "10.96.0.2")
        #expect(registry.service("a")?.spec.ipFamilies == [.ipv4])
        #expect(registry.service("a")?.spec.ipFamilyPolicy == .singleStack)
        try registry.delete(ObjectKey(.service, namespace: "default", name: "a"))
        try registry.apply(service("d", clusterIP: "10.96.0.1"))
        #expect(registry.service("d")?.spec.clusterIP == "10.96.0.1", "released on delete")
    }

    @Test(arguments: [
        ("10.96.0.5", "The Service \"x\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.5\"]: failed to allocate IP 10.96.0.5: provided IP is already allocated"),
        ("192.168.0.1", "The Service \"x\" is invalid: spec.clusterIPs: Invalid value: [\"192.168.0.1\"]: failed to allocate IP 192.168.0.1: the provided IP (192.168.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/29"),
        ("10.96.0.7", "The Service \"x\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.7\"]: failed to allocate IP 10.96.0.7: the provided IP (10.96.0.7) is not in the valid range. The range of valid IPs is 10.96.0.0/29"),
    ])
    func requestedClusterIPErrors(_ requested: String, _ message: String) throws {
        let registry = try Registry(configuration: RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/29")]))
        try registry.apply(service("taken", clusterIP: "10.96.0.5"))
        #expect { try registry.apply(service("x", clusterIP: requested)) } throws: { "\($0)" == message }
        #expect(registry.service("x") == nil, "nothing half-applied")
    }

    @Test func rangeFull() throws {
        let registry = try Registry(configuration: RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/30")]))
        try registry.apply(service("a"))
        try registry.apply(service("b"))
        #expect { try registry.apply(service("c")) } throws: { "\($0)".hasSuffix("failed to allocate a service IP from 10.96.0.0/30: range is full") }
    }

    @Test func clusterIPIsImmutableButMayBeOmitted() throws {
        let registry = try Registry()
        try registry.apply(service("a"))
        let ip = try #require(registry.service("a")?.spec.clusterIP)
        #expect(try registry.apply(service("a")) == .unchanged, "re-applying without clusterIP keeps it")
        #expect(try registry.apply(service("a", clusterIP: ip)) == .unchanged)
        #expect { try registry.apply(service("a", clusterIP: "10.96.99.99")) } throws: {
            "\($0)" == "The Service \"a\" is invalid: spec.clusterIP: Invalid value: \"10.96.99.99\": field is immutable"
        }
        #expect(try registry.apply(service("a", ports: [Service.Port(name: "http", port: 8080)])) == .configured)
        #expect(registry.service("a")?.spec.clusterIP == ip)
    }

    @Test func dualStack() throws {
        let config = RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/16"), prefix("fd00:10:96::/112")])
        let registry = try Registry(configuration: config)
        try registry.apply(service("single"))
        try registry.apply(service("prefer") { $0.ipFamilyPolicy = .preferDualStack })
        try registry.apply(service("v6first") { $0.ipFamilyPolicy = .requireDualStack; $0.ipFamilies = [.ipv6] })
        try registry.apply(service("headless", clusterIP: "None", selector: ["app": "x"]))
        #expect(registry.service("single")?.spec.clusterIPs == ["10.96.0.1"])
        #expect(registry.service("prefer")?.spec.clusterIPs == ["10.96.0.2", "fd00:10:96::1"])
        #expect(registry.service("prefer")?.spec.ipFamilies == [.ipv4, .ipv6])
        #expect(registry.service("v6first")?.spec.clusterIPs == ["fd00:10:96::2", "10.96.0.3"])
        #expect(registry.service("headless")?.spec.clusterIPs == ["None"])

        let v4only = try Registry()
        try v4only.apply(service("prefer") { $0.ipFamilyPolicy = .preferDualStack })
        #expect(v4only.service("prefer")?.spec.clusterIPs.count == 1)
        #expect { try v4only.apply(service("require") { $0.ipFamilyPolicy = .requireDualStack }) } throws: {
            "\($0)" == "The Service \"require\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        }
    }

    @Test func nodePorts() throws {
        let registry = try Registry(configuration: RegistryConfiguration(nodePortRange: 30000...30009))
        try registry.apply(service("np", type: .nodePort, ports: [Service.Port(name: "a", port: 80), Service.Port(name: "b", port: 81, nodePort: 30005)]))
        #expect(registry.service("np")?.spec.ports.map(\.nodePort) == [30000, 30005])
        #expect { try registry.apply(service("clash", type: .nodePort, ports: [Service.Port(port: 80, nodePort: 30005)])) } throws: {
            "\($0)" == "The Service \"clash\" is invalid: spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated"
        }
        #expect { try registry.apply(service("far", type: .nodePort, ports: [Service.Port(port: 80, nodePort: 31000)])) } throws: {
            "\($0)" == "The Service \"far\" is invalid: spec.ports[0].nodePort: Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30009"
        }
        // Re-applying keeps the allocated node ports; changing to ClusterIP releases them.
        try registry.apply(service("np", type: .nodePort, ports: [Service.Port(name: "a", port: 80), Service.Port(name: "b", port: 81)]))
        #expect(registry.service("np")?.spec.ports.map(\.nodePort) == [30000, 30005])
        try registry.apply(service("np", ports: [Service.Port(name: "a", port: 80)]))
        #expect(registry.service("np")?.spec.ports.map(\.nodePort) == [0])
        try registry.apply(service("again", type: .nodePort, ports: [Service.Port(port: 80, nodePort: 30005)]))
    }

    @Test func loadBalancerPool() throws {
        let registry = try Registry(configuration: RegistryConfiguration(loadBalancerPool: [prefix("192.0.2.0/30")]))
        try registry.apply(service("lb1", type: .loadBalancer))
        #expect(registry.service("lb1")?.status.loadBalancerIngress == ["192.0.2.1"])
        #expect(registry.service("lb1")?.spec.ports[0].nodePort != 0)
        try registry.apply(service("lb2", type: .loadBalancer) { $0.loadBalancerIP = "192.0.2.2" })
        #expect(registry.service("lb2")?.status.loadBalancerIngress == ["192.0.2.2"])
        #expect { try registry.apply(service("lb3", type: .loadBalancer)) } throws: { "\($0)".contains("is full") }
        #expect { try registry.apply(service("lb4", type: .loadBalancer) { $0.loadBalancerIP = "198.51.100.1" }) } throws: {
            "\($0)" == "The Service \"lb4\" is invalid: spec.loadBalancerIP: Invalid value: \"198.51.100.1\": not in the load-balancer pool (192.0.2.0/30)"
        }
        let noPool = try Registry()
        try noPool.apply(service("pending", type: .loadBalancer))
        #expect(noPool.service("pending")?.status.loadBalancerIngress == [], "no pool: pending")
    }

    @Test func externalNameHasNoAddresses() throws {
        let registry = try Registry()
        try registry.apply(service("ext", type: .externalName, ports: []) { $0.externalName = "example.com" })
        #expect(registry.service("ext")?.spec.clusterIPs == [])
        #expect(registry.snapshot().endpoints(of: ObjectKey(.service, namespace: "default", name: "ext")) == nil)
    }

    @Test func concurrentCreatesNeverDuplicate() async throws {
        let registry = try Registry(configuration: RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/22")], nodePortRange: 30000...30999))
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<400 {
                group.addTask { _ = try? registry.apply(service("s\(i)", type: .nodePort)) }
            }
        }
        let services = registry.snapshot().services
        #expect(services.count == 400)
        #expect(Set(services.map(\.spec.clusterIP)).count == 400)
        #expect(Set(services.map { $0.spec.ports[0].nodePort }).count == 400)
    }
}

@Suite struct ExternalNameTests {
    @Test func internationalisedNamesAreStoredAsALabels() throws {
        let registry = try Registry()
        try registry.apply(service("shop", type: .externalName, ports: []) { $0.externalName = "bücher.example" })
        try registry.apply(service("plain", type: .externalName, ports: []) { $0.externalName = "db.example.com." })
        #expect(registry.service("shop")?.spec.externalName == "xn--bcher-kva.example")
        #expect(registry.service("plain")?.spec.externalName == "db.example.com.")
        #expect { try registry.apply(service("bad", type: .externalName, ports: []) { $0.externalName = "a\u{5D0}.example" }) } throws: {
            "\($0)".hasPrefix("The Service \"bad\" is invalid: spec.externalName: Invalid value: \"a\u{5D0}.example\": invalid domain name")
        }
    }
}

@Suite struct NamespaceDeletionTests {
    /// A namespace goes with what is in it, each object its own change before the namespace's,
    /// pods before services; other namespaces are untouched; a missing one deletes nothing.
    @Test func aNamespaceTakesItsObjectsAlong() async throws {
        let registry = try Registry()
        try await registry.apply(.namespace(Namespace(metadata: ObjectMeta(name: "shop"))))
        try await registry.apply(.namespace(Namespace(metadata: ObjectMeta(name: "other"))))
        try await registry.apply(service("web", namespace: "shop", selector: ["app": "web"]))
        try await registry.apply(pod("web-0", namespace: "shop", labels: ["app": "web"], ip: "10.244.0.5"))
        try await registry.apply(service("kept", namespace: "other"))
        let events = registry.watch()
        await #expect(throws: RegistryError.self) { try await registry.delete(ObjectKey(.namespace, namespace: "", name: "nowhere")) }
        let ip = try #require(registry.service("web", namespace: "shop")?.spec.clusterIP)
        try await registry.delete(ObjectKey(.namespace, namespace: "", name: "shop"))
        var seen: [String] = []
        for try await event in events {
            seen.append("\(event.change.rawValue) \(event.object.kind.rawValue) \(event.object.metadata.name)")
            if event.object.kind == .namespace { break }
        }
        #expect(seen == ["DELETED Pod web-0", "DELETED Service web", "DELETED Namespace shop"])
        #expect(registry.snapshot().objects.keys.filter { $0.namespace == "shop" || $0.name == "shop" }.isEmpty)
        #expect(registry.service("kept", namespace: "other") != nil)
        // Its address is free again.
        try await registry.apply(service("again", clusterIP: ip))
    }
}
