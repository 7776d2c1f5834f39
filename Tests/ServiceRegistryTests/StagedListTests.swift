import RegistryTestSupport
@testable import ServiceRegistry
import Synchronization
import Testing

/// A replica that holds nothing installs its first list a page at a time as the pages arrive
/// (`StagedList`) and swaps the result in at the end. What it then serves, tells watchers and
/// reports must be exactly what installing the whole list at once (`adopt`) gives, whatever the
/// pages; and when something is installed while the list is being read, the list goes in as a
/// difference after all.
@Suite(.timeLimit(.minutes(1)))
struct StagedListTests {
    /// A store that hands its listing out in pages of `pageSize`; `during` runs after the
    /// first page (a change installed meanwhile).
    final class PagedStore: ListOnlyStore {
        let listing: StoreListing
        let pageSize: Int
        /// Each kind's pages in turn, as a store that reads its kinds side by side gives them
        /// (each kind's in order); else every page in the listing's order.
        let interleaved: Bool
        let during: @Sendable () -> Void
        /// Lists read in pages (a registry that holds something reads the whole list at once).
        let pagedLoads = Atomic(0)

        init(_ listing: StoreListing, pageSize: Int, interleaved: Bool = false, during: @escaping @Sendable () -> Void = {}) {
            self.listing = listing
            self.pageSize = pageSize
            self.interleaved = interleaved
            self.during = during
        }

        /// The pages, in the order they are handed out.
        var pages: [[RegistryObject]] {
            func paged(_ objects: [RegistryObject]) -> [[RegistryObject]] {
                stride(from: 0, to: objects.count, by: pageSize).map { Array(objects[$0..<min($0 + pageSize, objects.count)]) }
            }
            guard interleaved else { return paged(listing.objects) }
            // The kinds from last to first, so that no kind comes whole before the next.
            var kinds = Dictionary(grouping: listing.objects, by: \.kind).sorted { $0.key > $1.key }.map { paged($0.value) }
            var pages: [[RegistryObject]] = []
            while kinds.contains(where: { !$0.isEmpty }) {
                for index in kinds.indices where !kinds[index].isEmpty { pages.append(kinds[index].removeFirst()) }
            }
            return pages
        }

        var name: String { "a paged store" }
        func load(at revision: Int64, kinds: Set<ObjectKind>?) async throws(StoreError) -> StoreListing { listing }
        func load(at revision: Int64, kinds: Set<ObjectKind>?,
                  page: @escaping @Sendable ([RegistryObject], Int64) -> Void) async throws(StoreError) -> StoreListing {
            pagedLoads.add(1, ordering: .relaxed)
            for (index, objects) in pages.enumerated() {
                page(objects, listing.revision)
                if index == 0 { during() }
            }
            var rest = listing
            rest.objects = []
            return rest
        }
    }

    /// Every kind that derives something from another: nodes (one whose lease lapsed, whose
    /// endpoints are then unreachable), pods on them selected by a service, slices of a
    /// headless service, a NodePort and a load-balancer service holding allocations, an
    /// ExternalName, and two objects that are not valid; listed in the store's key order
    /// (kind, namespace, name), as etcd lists them.
    static func listing() throws -> StoreListing {
        let yaml = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: node-a, annotations: {clusterdns.io/node-lease: "true"}}
            spec: {podCIDR: 10.244.1.0/24}
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: node-b, annotations: {clusterdns.io/node-lease: "true"}}
            spec: {podCIDR: 10.244.2.0/24}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web-1, namespace: shop, labels: {app: web}}
            spec: {nodeName: node-a, containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}
            status: {podIP: 10.244.1.5, podIPs: [{ip: 10.244.1.5}], conditions: [{type: Ready, status: "True"}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web-2, namespace: shop, labels: {app: web}}
            spec: {nodeName: node-b, containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}
            status: {podIP: 10.244.2.7, podIPs: [{ip: 10.244.2.7}], conditions: [{type: Ready, status: "True"}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: db-1, namespace: shop, labels: {kubernetes.io/service-name: db}}
            addressType: IPv4
            ports: [{name: pg, port: 5432, protocol: TCP}]
            endpoints: [{addresses: [10.1.0.1], hostname: db-0, nodeName: node-b}, {addresses: [10.1.0.2], conditions: {ready: false}}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: db-2, namespace: shop, labels: {kubernetes.io/service-name: db}}
            addressType: IPv4
            ports: [{name: pg, port: 5432, protocol: TCP}]
            endpoints: [{addresses: [10.1.0.1]}, {addresses: [10.1.0.3], nodeName: node-a}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: db, namespace: shop}
            spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: ext, namespace: shop}
            spec: {type: ExternalName, externalName: db.example.com}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lb, namespace: shop}
            spec: {type: LoadBalancer, clusterIP: 10.96.0.30, ports: [{port: 443, nodePort: 30443}]}
            status: {loadBalancer: {ingress: [{ip: 192.0.2.10}]}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {type: NodePort, clusterIP: 10.96.0.20, selector: {app: web}, ports: [{port: 80, targetPort: 8080, nodePort: 30080}]}
            """
        var objects = try Manifest.decode(yaml).map { try $0.result.get() }
        // Not valid, as anyone with access to etcd can write them: a port out of range, a
        // slice whose endpoint has no address.
        guard case .service(var bad) = objects[9], case .endpointSlice(var badSlice) = objects[5] else {
            throw StoreError.unavailable("the fixture changed")
        }
        bad.metadata.name = "bad"
        bad.spec.clusterIP = "10.96.0.40"
        bad.spec.clusterIPs = ["10.96.0.40"]
        bad.spec.ports[0].port = 70_000
        bad.status.loadBalancerIngress = []
        badSlice.metadata.name = "db-3"
        badSlice.endpoints[0].addresses = []
        objects.insert(.endpointSlice(badSlice), at: 7)
        objects.insert(.service(bad), at: 8)
        for index in objects.indices {
            objects[index].metadata.resourceVersion = UInt64(10 + index)
            objects[index].metadata.uidValue = .random()
        }
        return StoreListing(objects: objects, revision: 40, leasedNodes: ["node-a"])
    }

    /// What a registry serves and holds after its first list, and what it told.
    struct Outcome: Equatable {
        var objects: [ObjectKey: RegistryObject]
        var endpoints: [ObjectKey: ServiceEndpoints]
        var version: UInt64
        var leased: Set<String>
        var unreachable: Set<String>
        var allocations: Allocations
        var events: [String]
        var problems: [String]
    }

    /// What `registry` holds and told after following its store's first list.
    static func outcome(of registry: Registry, eventCount: Int) async throws -> Outcome {
        var events = registry.watch().makeAsyncIterator()
        let problems = Mutex<[String]>([])
        let following = Task { await registry.followSharedStore { problem in problems.withLock { $0.append(problem) } } }
        defer { following.cancel() }
        while registry.sharedRevision == nil { try await Task.sleep(for: .milliseconds(1)) }
        return try await outcome(of: registry, events: &events, eventCount: eventCount, problems: problems.withLock { $0 })
    }

    /// What `adopt` installs of the whole list at once, into a registry that holds nothing.
    static func adopted(_ listing: StoreListing, eventCount: Int) async throws -> Outcome {
        let registry = try Registry()
        var events = registry.watch().makeAsyncIterator()
        let problems = registry.adopt(StoreBatch(listing))
        return try await outcome(of: registry, events: &events, eventCount: eventCount, problems: problems)
    }

    /// The registry's state, its first `eventCount` events and `problems`.
    static func outcome(of registry: Registry, events: inout AsyncThrowingStream<WatchEvent, any Error>.AsyncIterator,
                        eventCount: Int, problems: [String]) async throws -> Outcome {
        var seen: [String] = []
        while seen.count < eventCount, let event = try await events.next() {
            seen.append("\(event.change.rawValue) \(event.object.key) \(event.resourceVersion) \(event.endpointsChanged)")
        }
        let snapshot = registry.snapshot()
        return Outcome(objects: Dictionary(uniqueKeysWithValues: snapshot.objects.map { ($0.key, $0.value) }),
                       endpoints: Dictionary(uniqueKeysWithValues: snapshot.serviceEndpoints.map { ($0.key, $0.value) }),
                       version: snapshot.resourceVersion, leased: snapshot.leasedNodes, unreachable: snapshot.unreachableNodes,
                       allocations: registry.state.withLock { $0.allocations }, events: seen, problems: problems)
    }

    /// Whatever the page size, and with the kinds' pages interleaved (a store reading its kinds
    /// side by side), the staged list gives what adopting the whole list, in the order its
    /// objects arrived, gives: the same state, and the same changes told in that order.
    @Test(arguments: [1, 2, 5, 100], [false, true])
    func pagesInstalledApartGiveWhatTheWholeListGives(pageSize: Int, interleaved: Bool) async throws {
        let listing = try Self.listing()
        let store = PagedStore(listing, pageSize: pageSize, interleaved: interleaved)
        var arrived = listing
        arrived.objects = store.pages.flatMap { $0 }
        #expect(interleaved == (arrived.objects.map(\.key) != listing.objects.map(\.key)), "the pages are interleaved when asked")
        // Every valid object added, then node-b's lease found lapsed (a MODIFIED node).
        let count = listing.objects.count - 2 + 1
        let expected = try await Self.adopted(arrived, eventCount: count)
        #expect(expected.problems.count == 2 && expected.unreachable == ["node-b"])
        #expect(expected.endpoints.count == 2 && expected.objects.count == listing.objects.count - 2)
        if interleaved {
            // The state does not depend on the order the kinds come in; only the order of what is told does.
            let inKeyOrder = try await Self.adopted(listing, eventCount: count)
            #expect(expected.objects == inKeyOrder.objects && expected.endpoints == inKeyOrder.endpoints
                    && expected.allocations == inKeyOrder.allocations && expected.unreachable == inKeyOrder.unreachable)
            #expect(expected.events.sorted() == inKeyOrder.events.sorted() && expected.problems.sorted() == inKeyOrder.problems.sorted())
        }

        let registry = try Registry(shared: store)
        let staged = try await Self.outcome(of: registry, eventCount: count)
        #expect(store.pagedLoads.load(ordering: .relaxed) == 1)
        #expect(staged == expected)
        #expect(registry.state.withLock { $0.history.isEmpty })
    }

    /// A change installed while the pages arrive (here: an object adopted from elsewhere after
    /// the first page) means the staged state is no longer the difference from what is held:
    /// the list is installed through `adopt` instead, which takes the object out again (the
    /// list, the whole state, does not hold it).
    @Test func aChangeMeanwhileInstallsTheListAsADifference() async throws {
        let listing = try Self.listing()
        let stray = try SharedFollowTests.service("stray", "10.96.0.99", version: 3)
        let count = listing.objects.count - 2 + 1
        let expected = try await Self.adopted(listing, eventCount: count)

        let box = Mutex<Registry?>(nil)
        let store = PagedStore(listing, pageSize: 3) {
            _ = box.withLock { $0 }?.adopt(StoreBatch(changes: [.put(stray)], revision: 3, relisted: false))
        }
        let registry = try Registry(shared: store)
        box.withLock { $0 = registry }
        // The stray object added, then taken out by the list; then the list's own changes.
        var seen = try await Self.outcome(of: registry, eventCount: count + 2)
        #expect(seen.events.prefix(2) == ["ADDED Service shop/stray 3 []", "DELETED Service shop/stray 40 []"])
        seen.events.removeFirst(2)
        #expect(store.pagedLoads.load(ordering: .relaxed) == 1)
        #expect(seen == expected)
    }
}
