import EtcdClient
@testable import EtcdStore
import ServiceRegistry
import Synchronization
import Testing
import TestSupport

/// The registry's objects in a real etcd: what two replicas see of each other's writes, and
/// what etcd refuses them.
@Suite(.serialized) struct EtcdRegistryStoreTests {
    /// Runs `body` with `count` stores (each its own client, as replicas) on one fresh etcd.
    func withStores(_ count: Int = 1, onSkipped: @escaping @Sendable (String, String) -> Void = { _, _ in },
                    _ body: ([EtcdRegistryStore], EtcdCluster) async throws -> Void) async throws {
        let cluster = try await EtcdCluster.starting(size: 1)
        defer { cluster.stop() }
        // A generous timeout: the suites run side by side on two cores.
        let clients = try (0..<count).map { _ in
            var configuration = try EtcdConfiguration(urls: cluster.clientURLs)
            configuration.requestTimeout = .seconds(30)
            return try EtcdClient(configuration: configuration)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { try await client.run() } }
            defer { for client in clients { client.shutdown() } }
            try await body(clients.map { EtcdRegistryStore(client: $0, prefix: "/test", onSkipped: onSkipped) }, cluster)
        }
    }

    func object(_ manifest: String) throws -> RegistryObject {
        try #require(Manifest.decode(manifest).first).result.get()
    }

    func service(_ name: String, clusterIP: String, nodePort: Int = 0, labels: String = "{}") throws -> RegistryObject {
        var object = try object("""
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: shop, labels: \(labels)}
            spec: {type: \(nodePort == 0 ? "ClusterIP" : "NodePort"), clusterIP: \(clusterIP), ports: [{name: http, port: 80\(nodePort == 0 ? "" : ", nodePort: \(nodePort)")}]}
            """)
        object.metadata.uid = "6f1d2c3a-0000-4000-8000-00000000000\(name.count)"
        return object
    }

    /// Pages after the first ask for what 4 MiB holds at the size of the page before, within
    /// 50 and 10,000 keys: (keys, bytes of the page before) → keys asked next.
    @Test(arguments: [
        (0, 0, 1000),                      // nothing before: the first page's count
        (1000, 4 << 20, 1000),             // 4 KiB values
        (1000, 2_500_000, 1677),           // the 10,000-service benchmark's 2.5 KB values
        (1000, 100_000, 10_000),           // 100-byte values: at most 10,000
        (10, 10 << 20, 50),                // 1 MiB values: at least 50 (50 MiB)
        (3, 2, 10_000),                    // values smaller than a byte on average
    ])
    func pagesAreSizedByBytes(keys: Int, bytes: Int, next: Int64) {
        #expect(EtcdRegistryStore.nextPageSize(afterKeys: keys, bytes: bytes) == next)
    }

    /// A reader that works on each page as it arrives gets pages of at most half of what is
    /// left, and not under 500 keys: (size by bytes, keys left) → keys asked next.
    @Test(arguments: [
        (4116, 18_810, 4116),              // far from the end: the size by bytes
        (6250, 6462, 3231),                // the 10,000-service benchmark's services: half
        (6250, 1616, 808),
        (6250, 808, 500),                  // the floor
        (6250, 212, 500),
        (100, 5000, 100),                  // never more than the size by bytes
    ])
    func pagesTaperTowardTheEnd(limit: Int64, remaining: Int64, next: Int64) {
        #expect(EtcdRegistryStore.tapered(limit, remaining: remaining) == next)
    }

    @Test func objectsRoundTripWithTheirRevision() async throws {
        try await withStores { stores, _ in
            let store = stores[0]
            var pod = try object("""
                apiVersion: v1
                kind: Pod
                metadata: {name: web-0, namespace: shop, labels: {app: web}}
                spec: {containers: [{name: app, image: nginx, env: [{name: A, value: b}]}]}
                status: {podIP: 10.244.0.5}
                """)
            pod.metadata.creationTimestamp = 1_700_000_000
            let first = try await store.write(.replacing(nil, with: try service("web", clusterIP: "10.96.0.10", nodePort: 30080)))
            let second = try await store.write(.replacing(nil, with: pod))
            let (objects, revision) = try await store.load().pair
            #expect(revision == second)
            #expect(objects.map(\.key.description) == ["Pod shop/web-0", "Service shop/web"])
            let loadedPod = try #require(objects.first)
            #expect(loadedPod.metadata.resourceVersion == UInt64(second))
            #expect(loadedPod.metadata.creationTimestamp == 1_700_000_000)
            #expect(loadedPod.kubernetesJSON["spec"]?["containers"]?.text.contains(#""env":[{"name":"A","value":"b"}]"#) == true,
                    "the fields kept unused survive the store")
            #expect(objects.last?.metadata.resourceVersion == UInt64(first))
            #expect(objects.last?.metadata.uid == "6f1d2c3a-0000-4000-8000-000000000003")
            // The claims are beside them, each naming its owner.
            let claim = try await store.client.range(store.key(for: .nodePort(30080)))
            #expect(claim.keyValues.first.map { String(decoding: $0.value, as: UTF8.self) } == "Service shop/web")
        }
    }

    /// Two replicas allocating the same address at once: one wins, the other is told who holds
    /// it; a stale update is refused with both revisions; a delete releases what it held.
    @Test func writesAreTransactions() async throws {
        try await withStores(2) { stores, _ in
            let web = try service("web", clusterIP: "10.96.0.10")
            let api = try service("api", clusterIP: "10.96.0.10")
            @Sendable func attempt(_ store: EtcdRegistryStore, _ object: RegistryObject) async -> Result<Int64, StoreError> {
                do throws(StoreError) { return .success(try await store.write(.replacing(nil, with: object))) } catch { return .failure(error) }
            }
            async let a = attempt(stores[0], web)
            async let b = attempt(stores[1], api)
            let results = await [a, b]
            let won = results.filter { if case .success = $0 { true } else { false } }
            #expect(won.count == 1)
            let lost = try #require(results.first { if case .failure = $0 { true } else { false } })
            if case .failure(let error) = lost {
                #expect(error == .taken(.clusterIP("10.96.0.10"), owner: "Service shop/web") || error == .taken(.clusterIP("10.96.0.10"), owner: "Service shop/api"),
                        "\(error)")
            }
            let (objects, _) = try await stores[0].load().pair
            let stored = try #require(objects.first)
            // An update that read an older revision.
            var changed = stored
            changed.metadata.labels["v"] = "2"
            let current = try await stores[1].write(.replacing(stored, with: changed))
            var stale = stored
            stale.metadata.labels["v"] = "3"
            await #expect(throws: StoreError.conflict(stored.key, expected: Int64(stored.metadata.resourceVersion), actual: current)) {
                try await stores[0].write(.replacing(stored, with: stale))
            }
            // Creating what exists is a conflict too.
            await #expect(throws: StoreError.conflict(stored.key, expected: 0, actual: current)) {
                try await stores[0].write(.replacing(nil, with: stale))
            }
            // Deleted with what it claimed: the address is free for another.
            var latest = changed
            latest.metadata.resourceVersion = UInt64(current)
            try await stores[0].write(.deleting(latest))
            let other = try service(stored.metadata.name == "web" ? "api" : "web", clusterIP: "10.96.0.10")
            try await stores[1].write(.replacing(nil, with: other))
        }
    }

    /// A replica follows every change in order; after a compaction it lists again and gets the
    /// whole state once, then follows on.
    @Test func followingSurvivesACompaction() async throws {
        try await withStores(2) { stores, _ in
            let (writer, follower) = (stores[0], stores[1])
            let start = try await writer.write(.replacing(nil, with: try service("a", clusterIP: "10.96.0.1")))
            let (_, from) = try await follower.load().pair
            #expect(from == start)
            let b = try service("b", clusterIP: "10.96.0.2")
            try await writer.write(.replacing(nil, with: b))
            var seen: [String] = []
            var iterator = follower.follow(from: from).makeAsyncIterator()
            let first = try #require(try await Self.next(&iterator))
            seen += first.changes.map(Self.describe)
            #expect(seen == ["put b"] && !first.relisted)
            // While the follower is not reading: a change, a delete, then the history compacted
            // past them, then one more change.
            let (listed, _) = try await writer.load().pair
            let storedA = try #require(listed.first { $0.metadata.name == "a" })
            try await writer.write(.deleting(storedA))
            let c = try await writer.write(.replacing(nil, with: try service("c", clusterIP: "10.96.0.3")))
            try await writer.client.compact(revision: c)
            // What the follower gets next is either the live events (if its watch already had
            // them) or one relisted batch of the whole state; either way the same state.
            var state = Set(["a", "b"])
            while state != ["b", "c"] {
                let batch = try #require(try await Self.next(&iterator))
                if batch.relisted { state = [] }
                for change in batch.changes {
                    switch change {
                    case .put(let object): #expect(state.insert(object.metadata.name).inserted, "\(object.key) sent twice")
                    case .delete(let key, _): #expect(state.remove(key.name) != nil, "\(key) deleted twice")
                    case .nodeLease(let node, _, _): Issue.record("no lease was written, yet \(node)'s came")
                    }
                }
            }
            try await writer.write(.replacing(nil, with: try service("d", clusterIP: "10.96.0.4")))
            let after = try #require(try await Self.next(&iterator))
            #expect(after.changes.map(Self.describe) == ["put d"])
        }
    }

    /// A watch that has to resume after a compaction (its revision is gone): the relisted
    /// batch holds the whole state at the list's revision (what is gone by its absence).
    @Test func aResumeAfterACompactionRelists() async throws {
        try await withStores(2) { stores, _ in
            let (writer, follower) = (stores[0], stores[1])
            try await writer.write(.replacing(nil, with: try service("a", clusterIP: "10.96.0.1")))
            try await writer.write(.replacing(nil, with: try service("b", clusterIP: "10.96.0.2")))
            let (initial, from) = try await follower.load().pair
            let a = try #require(initial.first { $0.metadata.name == "a" })
            var b = try #require(initial.first { $0.metadata.name == "b" })
            try await writer.write(.deleting(a))
            let changedB = b
            b.metadata.labels["v"] = "2"
            try await writer.write(.replacing(changedB, with: b))
            let last = try await writer.write(.replacing(nil, with: try service("c", clusterIP: "10.96.0.3")))
            try await writer.client.compact(revision: last)
            var iterator = follower.follow(from: from).makeAsyncIterator()
            let batch = try #require(try await Self.next(&iterator))
            #expect(batch.relisted && batch.revision == last)
            #expect(batch.changes.map(Self.describe) == ["put b", "put c"])
        }
    }

    /// A list of more than one page in two kinds (each kind's first of 1,000 keys, the next
    /// sized by its bytes; the kinds read side by side) gives every object once, in key order,
    /// and the node leases among them.
    @Test func aListOfSeveralPagesIsWhole() async throws {
        try await withStores { stores, _ in
            let store = stores[0]
            let services = try (0..<1_500).map { index in
                try service(String(format: "s%04d", index), clusterIP: "10.96.\(index / 250).\(index % 250 + 1)")
            }
            let pods = try (0..<1_200).map { index in
                try object("""
                    apiVersion: v1
                    kind: Pod
                    metadata: {name: \(String(format: "p%04d", index)), namespace: shop}
                    spec: {containers: [{name: app, image: nginx}]}
                    """)
            }
            // A hundred keys a transaction (etcd allows 128 operations in one).
            for batch in stride(from: 0, to: pods.count + services.count, by: 100) {
                let objects = (pods + services)[batch..<min(batch + 100, pods.count + services.count)]
                _ = try await store.client.transaction(if: [], then: objects.map { .put(store.key(for: $0.key), store.encode($0)) })
            }
            try await store.client.put(store.leaseKey(node: "node-a"), Array("{}".utf8))
            let names = (pods + services).map(\.metadata.name)
            let listing = try await store.load()
            #expect(listing.objects.map(\.metadata.name) == names)
            #expect(listing.leasedNodes == ["node-a"])
            // Read in pages, the same objects a page at a time, each kind's in its order.
            let pages = Mutex<[[RegistryObject]]>([])
            let paged = try await store.load(at: 0, kinds: nil) { objects, revision in
                pages.withLock { $0.append(objects) }
                #expect(revision == listing.revision)
            }
            #expect(paged.objects.isEmpty && paged.revision == listing.revision && paged.leasedNodes == ["node-a"])
            let read = pages.withLock { $0 }
            #expect(read.allSatisfy { page in !page.isEmpty && page.allSatisfy { $0.kind == page.first?.kind } },
                    "a page holds one kind, and something")
            // Each kind's first page holds 1,000 keys; of the rest, at least 500 (the floor of a
            // tapered page) come next.
            for (kind, expected) in [(ObjectKind.pod, pods), (.service, services)] {
                let own = read.filter { $0.first?.kind == kind }
                #expect(own.map(\.count) == [1000, expected.count - 1000], "\(kind)")
                #expect(own.flatMap { $0 }.map(\.metadata.name) == expected.map(\.metadata.name), "\(kind)")
            }
        }
    }

    /// A listing of every kind reads the registry's whole prefix, cut at each kind's prefix
    /// (so the kinds can be read side by side): the ranges follow one another from the
    /// prefix to its end. A listing of some kinds reads just their prefixes (and the leases'
    /// with the nodes').
    @Test func aListingReadsEveryKeyUnderThePrefixOnce() throws {
        let store = EtcdRegistryStore(client: try EtcdClient(configuration: EtcdConfiguration(urls: ["http://127.0.0.1:2379"])),
                                      prefix: "/test")
        func described(_ ranges: [EtcdRegistryStore.KeyRange]) -> [String] {
            ranges.map { "\(String(decoding: $0.start, as: UTF8.self))..\(String(decoding: $0.end, as: UTF8.self))" }
        }
        #expect(described(store.listedRanges(kinds: nil)) == [
            "/test/registry/../test/registry/endpoints/",
            "/test/registry/endpoints/../test/registry/endpointslices/",
            "/test/registry/endpointslices/../test/registry/leases/kube-node-lease/",
            "/test/registry/leases/kube-node-lease/../test/registry/namespaces/",
            "/test/registry/namespaces/../test/registry/nodes/",
            "/test/registry/nodes/../test/registry/pods/",
            "/test/registry/pods/../test/registry/services/",
            "/test/registry/services/../test/registry0",
        ])
        #expect(described(store.listedRanges(kinds: [.service, .node])) == [
            "/test/registry/nodes/../test/registry/nodes0",
            "/test/registry/services/../test/registry/services0",
            "/test/registry/leases/kube-node-lease/../test/registry/leases/kube-node-lease0",
        ])
    }

    /// Values that cannot be read are skipped and named, never fatal; the rest is served.
    @Test func badValuesAreSkippedAndNamed() async throws {
        let skipped = Mutex<[String]>([])
        try await withStores(onSkipped: { key, reason in skipped.withLock { $0.append("\(key): \(reason)") } }) { stores, _ in
            let store = stores[0]
            try await store.write(.replacing(nil, with: try service("good", clusterIP: "10.96.0.1")))
            try await store.client.put(Array("/test/registry/services/shop/bad".utf8), Array("{not json".utf8))
            try await store.client.put(Array("/test/registry/widgets/shop/w".utf8), Array("{}".utf8))
            // Before the first kind's prefix: the listing reads the registry's whole prefix.
            try await store.client.put(Array("/test/registry/apples/shop/a".utf8), Array("{}".utf8))
            try await store.client.put(Array("/test/registry/services/onlyname".utf8), Array("{}".utf8))
            let (objects, _) = try await store.load().pair
            #expect(objects.map(\.metadata.name) == ["good"])
            let reasons = skipped.withLock { $0 }
            #expect(reasons.count == 4, "\(reasons)")
            #expect(reasons.contains { $0.hasPrefix("/test/registry/services/shop/bad: the value does not decode") })
            #expect(reasons.contains("/test/registry/widgets/shop/w: a key of an unknown kind \"widgets\""))
            #expect(reasons.contains("/test/registry/apples/shop/a: a key of an unknown kind \"apples\""))
            #expect(reasons.contains("/test/registry/services/onlyname: expected /test/registry/services/NAMESPACE/NAME"))
        }
    }

    /// The next batch with something in it (the empty ones say a watch is in place).
    static func next(_ iterator: inout AsyncThrowingStream<StoreBatch, any Error>.AsyncIterator) async throws -> StoreBatch? {
        while let batch = try await iterator.next() {
            if !batch.changes.isEmpty || batch.relisted { return batch }
        }
        return nil
    }

    static func describe(_ change: StoreChange) -> String {
        switch change {
        case .put(let object): "put \(object.metadata.name)"
        case .delete(let key, _): "delete \(key.name)"
        case .nodeLease(let node, let held, _): "\(held ? "lease" : "lapse") \(node)"
        }
    }
}

extension StoreListing {
    var pair: ([RegistryObject], Int64) { (objects, revision) }
}
