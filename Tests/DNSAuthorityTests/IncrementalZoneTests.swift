import DNSWire
import NetAddress
import ServiceRegistry
import Testing
@testable import DNSAuthority

/// Updating the zone change by change gives exactly the zone compiled from scratch.
@Suite struct IncrementalZoneTests {
    func assertSame(_ incremental: ClusterZone, _ full: ClusterZone, _ context: String) {
        let names = Set(incremental.nodes.keys).union(full.nodes.keys)
        #expect(Set(incremental.nodes.keys) == Set(full.nodes.keys), "names differ \(context)")
        for name in names {
            #expect(incremental.nodes[name] == full.nodes[name], "\(name) \(context)")
            for type in [RecordType.a, .aaaa, .srv, .cname, .txt] {
                #expect(incremental.lookup(Question(name: name, type: type)) == full.lookup(Question(name: name, type: type)),
                        "\(name) \(type) \(context)")
                let key = name.lookupKey
                let a = key.withUnsafeBytes { incremental.compiled.find($0)?.map(\.bytes) }
                let b = key.withUnsafeBytes { full.compiled.find($0)?.map(\.bytes) }
                #expect(a == b, "compiled \(name) \(context)")
            }
        }
        let reverse = Set(incremental.pointers.keys).union(full.pointers.keys)
        for name in reverse {
            #expect(incremental.reverseLookup(Question(name: name, type: .ptr)) == full.reverseLookup(Question(name: name, type: .ptr)),
                    "\(name) \(context)")
        }
        #expect(incremental.podIPs.mapValues { Set($0.keys) } == full.podIPs.mapValues { Set($0.keys) }, "pods \(context)")
    }

    @Test func randomChangesMatchAFullCompile() async throws {
        let registry = try Registry()
        registry.markLoaded()
        let configuration = ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR])
        var zone = ClusterZone(snapshot: registry.snapshot(), configuration: configuration)
        let events = registry.watch()
        var iterator = events.makeAsyncIterator()
        var rng = SplitMix(state: 7)
        for step in 0..<300 {
            let n = Int(rng.next() % 6)
            let ns = ["a", "b"][Int(rng.next() % 2)]
            let app = ["x", "y", "z"][Int(rng.next() % 3)]
            var object: RegistryObject
            switch rng.next() % 7 {
            case 0, 1:
                var spec = Service.Spec()
                spec.selector = ["app": app]
                spec.ports = [.init(name: "http", port: 80, targetPort: .string("http"))]
                if rng.next() % 3 == 0 { spec.clusterIP = "None" }
                object = .service(Service(metadata: ObjectMeta(name: "s\(n)", namespace: ns), spec: spec))
            case 2:
                var spec = Service.Spec()
                spec.type = .externalName
                spec.externalName = rng.next() % 2 == 0 ? "s\(n).\(ns).svc.cluster.local" : "example.com"
                object = .service(Service(metadata: ObjectMeta(name: "e\(n)", namespace: ns), spec: spec))
            case 3:
                object = .namespace(Namespace(metadata: ObjectMeta(name: "n\(n)")))
            default:
                var pod = Pod(metadata: ObjectMeta(name: "p\(n)", namespace: ns, labels: ["app": app]))
                pod.spec.containers = [Pod.Container(name: "c", ports: [Pod.ContainerPort(name: "http", containerPort: 8000 + n)])]
                pod.spec.hostname = "h\(n)"
                pod.spec.subdomain = "s\(n % 3)"
                pod.status.podIP = "10.244.\(rng.next() % 3).\(n + 1)"
                pod.status.podIPs = [pod.status.podIP]
                pod.status.isReady = rng.next() % 4 != 0
                object = .pod(pod)
            }
            var expected = 0
            if rng.next() % 4 == 0, registry.get(object.key) != nil {
                try await registry.delete(object.key)
                expected = 1
            } else if let outcome = try? await registry.apply(object), outcome != .unchanged {
                expected = 1
            }
            guard expected == 1 else { continue }
            let event = try #require(try await iterator.next())
            zone = zone.updated(with: [event], snapshot: registry.snapshot())
            if step % 25 == 0 || step == 299 {
                assertSame(zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "after step \(step)")
            }
        }
        assertSame(zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "at the end")
    }
}

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
