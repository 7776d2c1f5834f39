import DNSWire
import NetAddress
import ServiceRegistry
import Testing
import TestSupport
@testable import KubernetesDNS
@testable import DNSAuthority

/// Updating the zone change by change gives exactly the zone compiled from scratch.
@Suite struct IncrementalZoneTests {
    func names(_ zone: ClusterZone) -> [DomainName: ClusterZone.Node] {
        var names: [DomainName: ClusterZone.Node] = [:]
        zone.forEachName { names[$0] = $1 }
        return names
    }

    func assertSame(_ incremental: ClusterZone, _ full: ClusterZone, _ context: String) {
        let mine = names(incremental), theirs = names(full)
        #expect(Set(mine.keys) == Set(theirs.keys), "names differ \(context)")
        for name in Set(mine.keys).union(theirs.keys) {
            #expect(mine[name] == theirs[name], "\(name) \(context)")
            #expect(incremental.node(for: name) == full.node(for: name), "\(name) derived \(context)")
            for type in [RecordType.a, .aaaa, .srv, .cname, .txt] {
                #expect(incremental.lookup(Question(name: name, type: type)) == full.lookup(Question(name: name, type: type)),
                        "\(name) \(type) \(context)")
                let a = incremental.compiled.find(name)?.map(\.bytes)
                let b = full.compiled.find(name)?.map(\.bytes)
                #expect(a == b, "compiled \(name) \(context)")
            }
        }
        // No name is left compiled that the zone no longer has (the fast path would answer it).
        var compiledIncremental = incremental.compiled
        compiledIncremental.compact()
        #expect(compiledIncremental.tableCount == mine.count, "compiled names \(context)")
        #expect(Set(incremental.reverse.addresses) == Set(full.reverse.addresses), "reverse names differ \(context)")
        for ip in Set(incremental.reverse.addresses).union(full.reverse.addresses) {
            let name = ip.reverseName
            #expect(incremental.reverseLookup(Question(name: name, type: .ptr)) == full.reverseLookup(Question(name: name, type: .ptr)),
                    "\(name) \(context)")
        }
        #expect(incremental.pods.contents == full.pods.contents, "pods \(context)")
    }

    /// One random change: a service (ClusterIP, headless or ExternalName), a namespace or a pod.
    func randomObject(_ rng: inout SplitMix64) -> RegistryObject {
        let n = Int(rng.next() % 6)
        let ns = ["a", "b"][Int(rng.next() % 2)]
        let app = ["x", "y", "z"][Int(rng.next() % 3)]
        switch rng.next() % 7 {
        case 0, 1:
            var spec = Service.Spec()
            spec.selector = ["app": app]
            spec.ports = [.init(name: "http", port: 80, targetPort: .string("http"))]
            if rng.next() % 3 == 0 { spec.clusterIP = "None" }
            return .service(Service(metadata: ObjectMeta(name: "s\(n)", namespace: ns), spec: spec))
        case 2:
            var spec = Service.Spec()
            spec.type = .externalName
            spec.externalName = rng.next() % 2 == 0 ? "s\(n).\(ns).svc.cluster.local" : "example.com"
            return .service(Service(metadata: ObjectMeta(name: "e\(n)", namespace: ns), spec: spec))
        case 3:
            return .namespace(Namespace(metadata: ObjectMeta(name: "n\(n)")))
        default:
            var pod = Pod(metadata: ObjectMeta(name: "p\(n)", namespace: ns, labels: ["app": app]))
            pod.spec.containers = [Pod.Container(name: "c", ports: [Pod.ContainerPort(name: "http", containerPort: 8000 + n)])]
            pod.spec.hostname = "h\(n)"
            pod.spec.subdomain = "s\(n % 3)"
            pod.status.podIP = "10.244.\(rng.next() % 3).\(n + 1)"
            pod.status.podIPs = [pod.status.podIP]
            pod.status.isReady = rng.next() % 4 != 0
            pod.spec.hostNetwork = rng.next() % 5 == 0
            return .pod(pod)
        }
    }

    /// Applies or deletes one random object; true when the registry changed (an event follows).
    func randomChange(_ registry: Registry, _ rng: inout SplitMix64) async throws -> Bool {
        let object = randomObject(&rng)
        if rng.next() % 4 == 0, registry.get(object.key) != nil {
            try await registry.delete(object.key)
            return true
        }
        if let outcome = try? await registry.apply(object), outcome != .unchanged { return true }
        return false
    }

    @Test func randomChangesMatchAFullCompile() async throws {
        let registry = try Registry()
        registry.markLoaded()
        let configuration = ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR])
        var zone = ClusterZone(snapshot: registry.snapshot(), configuration: configuration)
        let events = registry.watch()
        var iterator = events.makeAsyncIterator()
        var rng = SplitMix64(state: 7)
        for step in 0..<300 {
            guard try await randomChange(registry, &rng) else { continue }
            let event = try #require(try await iterator.next())
            zone = zone.updated(with: [event], snapshot: registry.snapshot())
            if step % 25 == 0 || step == 299 {
                assertSame(zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "after step \(step)")
            }
        }
        assertSame(zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "at the end")
    }

    /// Through `ClusterAuthority`, which folds the compiled changes on another thread while
    /// updates go on: after the folds settle, the served zone is the full compile, and its
    /// changes were folded into the table.
    @Test func foldsInTheBackgroundLoseNoChange() async throws {
        let registry = try Registry()
        registry.markLoaded()
        let configuration = ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR])
        let authority = ClusterAuthority(configuration: configuration, snapshot: registry.snapshot())
        var iterator = registry.watch().makeAsyncIterator()
        var rng = SplitMix64(state: 29)
        var folded = false
        for step in 0..<600 {
            guard try await randomChange(registry, &rng) else { continue }
            let event = try #require(try await iterator.next())
            authority.apply([event], snapshot: registry.snapshot())
            if authority.zone.compiled.pendingChanges < 20 && step > 100 { folded = true }
            if step % 150 == 149 {
                authority.waitForFolds()
                assertSame(authority.zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "after step \(step)")
            }
        }
        authority.waitForFolds()
        assertSame(authority.zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "at the end")
        #expect(folded, "the changes were folded into the table at least once")
        #expect(!authority.zone.compiled.needsCompaction)
    }

    /// The zone updater takes the registry's snapshot after a batch of events, and the registry
    /// may have moved on by then: the snapshot holds changes whose events come later. Those
    /// services' names must still be taken back from what they were compiled from.
    @Test func snapshotsAheadOfTheirEventsMatchAFullCompile() async throws {
        let registry = try Registry()
        registry.markLoaded()
        let configuration = ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR])
        var zone = ClusterZone(snapshot: registry.snapshot(), configuration: configuration)
        var iterator = registry.watch().makeAsyncIterator()
        var rng = SplitMix64(state: 11)
        var pending = 0
        for step in 0..<300 {
            if try await randomChange(registry, &rng) { pending += 1 }
            // Now and then the events so far, one batch at a time, each with the newest snapshot.
            guard pending > 0, rng.next() % 5 == 0 || step == 299 else { continue }
            while pending > 0 {
                let size = min(pending, 1 + Int(rng.next() % 3))
                var batch: [WatchEvent] = []
                for _ in 0..<size { batch.append(try #require(try await iterator.next())) }
                pending -= size
                zone = zone.updated(with: batch, snapshot: registry.snapshot())
            }
            assertSame(zone, ClusterZone(snapshot: registry.snapshot(), configuration: configuration), "after step \(step)")
        }
    }
}

/// The general path keeps the last few derived services: what it answers from them is what a
/// fresh derivation gives, through evictions, PTR-only entries superseded by whole ones, and
/// changes that replace a service's source.
@Suite struct DerivedFragmentsTests {
    @Test func keptFragmentsAnswerAsFreshOnes() async throws {
        let registry = try Registry()
        registry.markLoaded()
        let configuration = ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR])
        func manifest(_ i: Int, endpoints: Int) -> String {
            var text = "apiVersion: v1\nkind: Service\nmetadata: {name: s\(i), namespace: default}\n"
                + "spec: {clusterIP: None, ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\n"
                + "kind: EndpointSlice\nmetadata: {name: s\(i)-1, namespace: default, labels: {kubernetes.io/service-name: s\(i)}}\n"
                + "addressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n"
            for e in 0..<endpoints { text += "  - addresses: [\"10.244.\(i).\(e + 1)\"]\n" }
            return text
        }
        var counts = [Int](repeating: 3, count: DerivedFragments.capacity + 4)
        for i in counts.indices {
            for entry in Manifest.decode(manifest(i, endpoints: 3)) { _ = try await registry.apply(try entry.result.get()) }
        }
        var zone = ClusterZone(snapshot: registry.snapshot(), configuration: configuration)
        var iterator = registry.watch().makeAsyncIterator()
        var rng = SplitMix64(state: 5)
        for round in 0..<200 {
            let i = Int(rng.next() % UInt64(DerivedFragments.capacity + 4))
            let e = Int(rng.next() % 4) + 1
            let name = try DomainName("10-244-\(i)-\(e).s\(i).default.svc.cluster.local.")
            let reverse = IPAddress("10.244.\(i).\(e)")!.reverseName
            // The expected answers, derived afresh from the zone's current source of the service.
            let source = try #require(zone.sources[ObjectKey(.service, namespace: "default", name: "s\(i)")])
            let fresh = zone.fragment(of: source)
            #expect(zone.node(for: name) == fresh.nodes[name], "round \(round) \(name)")
            let ptr = zone.reverseLookup(Question(name: reverse, type: .ptr))
            let targets = fresh.pointers.filter { $0.address == IPAddress("10.244.\(i).\(e)")! }.map(\.target)
            if case .answer(let records, _)? = ptr {
                #expect(records.map(\.data) == targets.map { RecordData.ptr($0) }, "round \(round) \(reverse)")
            } else {
                #expect(targets.isEmpty, "round \(round) \(reverse)")
            }
            if round % 20 == 19 {
                // A change: the service gets another number of endpoints (a new source).
                counts[i] = counts[i] % 4 + 1
                for entry in Manifest.decode(manifest(i, endpoints: counts[i])) {
                    _ = try await registry.apply(try entry.result.get())
                }
                for _ in 0..<100 {
                    guard let event = try await iterator.next() else { break }
                    zone = zone.updated(with: [event], snapshot: registry.snapshot())
                    if zone.sources[ObjectKey(.service, namespace: "default", name: "s\(i)")] !== source { break }
                }
                #expect(zone.sources[ObjectKey(.service, namespace: "default", name: "s\(i)")] !== source)
            }
        }
    }
}
