import EtcdClient
import EtcdStore
import Foundation
import ServiceRegistry
import Synchronization
import Testing
import TestSupport

/// Registries of several replicas over one etcd: every write a transaction there, every
/// replica serving exactly what etcd holds.
@Suite(.serialized) struct SharedRegistryTests {
    struct Replica: Sendable {
        let registry: Registry
        let store: EtcdRegistryStore
    }

    /// `count` replicas (each its own client and registry, following etcd) on one fresh etcd.
    func withReplicas(_ count: Int, configuration: RegistryConfiguration = RegistryConfiguration(),
                      _ body: ([Replica], EtcdCluster) async throws -> Void) async throws {
        let cluster = try await EtcdCluster.starting(size: 1)
        defer { cluster.stop() }
        try await Self.withReplicas(count, urls: cluster.clientURLs, configuration: configuration) { try await body($0, cluster) }
    }

    static func withReplicas(_ count: Int, urls: [String], configuration: RegistryConfiguration = RegistryConfiguration(),
                             storage: @Sendable (Int) throws -> any RegistryStorage = { _ in MemoryStorage() },
                             _ body: ([Replica]) async throws -> Void) async throws {
        let clients = try (0..<count).map { _ in
            var etcd = try EtcdConfiguration(urls: urls)
            // Generous: the suites run side by side on two cores.
            etcd.requestTimeout = .seconds(30)
            return try EtcdClient(configuration: etcd)
        }
        let replicas = try clients.enumerated().map { index, client in
            let store = EtcdRegistryStore(client: client, prefix: "/test")
            return Replica(registry: try Registry(configuration: configuration, storage: try storage(index), shared: store), store: store)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { try await client.run() } }
            for replica in replicas { group.addTask { await replica.registry.followSharedStore { _ in } } }
            defer {
                group.cancelAll()
                for client in clients { client.shutdown() }
            }
            for replica in replicas where !(await eventually(within: 30) { replica.registry.sharedRevision != nil }) {
                throw EtcdClusterError("a replica did not list etcd within 30 s")
            }
            try await body(replicas)
        }
    }

    static func service(_ name: String, namespace: String = "shop", type: String = "ClusterIP", extra: String = "") throws -> RegistryObject {
        try #require(Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: \(namespace)}
            spec: {type: \(type), selector: {app: \(name)}, ports: [{name: http, port: 80}]\(extra)}
            """).first).result.get()
    }

    static func clusterIP(_ object: RegistryObject?) -> String? {
        if case .service(let service)? = object { return service.spec.clusterIP }
        return nil
    }

    /// A write on one replica is served by the other with the same version, uid and address;
    /// its watchers see it; a delete goes the same way.
    @Test func aWriteOnOneReplicaIsEveryReplicas() async throws {
        try await withReplicas(2) { replicas, _ in
            let (a, b) = (replicas[0].registry, replicas[1].registry)
            let events = EventLog(b.watch())
            let (outcome, stored) = try await a.write(try Self.service("web", type: "NodePort"))
            #expect(outcome == .created)
            #expect(Self.clusterIP(stored) == "10.96.0.1")
            // The writer answers once it serves its own write.
            #expect(a.get(stored.key) == stored)
            #expect(await eventually(within: 10) { b.get(stored.key) == stored })
            let event = try #require(await events.event(0))
            #expect(event.change == .added && event.object == stored && event.resourceVersion == stored.metadata.resourceVersion)
            #expect(b.resourceVersion == stored.metadata.resourceVersion)
            // An unchanged apply writes nothing.
            #expect(try await b.apply(try Self.service("web", type: "NodePort")) == .unchanged)
            // b takes the next address: a's is claimed.
            let api = try await b.write(try Self.service("api")).stored
            #expect(Self.clusterIP(api) == "10.96.0.2")
            try await b.delete(stored.key)
            #expect(b.get(stored.key) == nil)
            #expect(await eventually(within: 10) { a.get(stored.key) == nil })
            let deleted = try #require(await events.event(1))
            #expect(deleted.change == .added && deleted.object.key == api.key)
            let gone = try #require(await events.event(2))
            #expect(gone.change == .deleted && gone.object.key == stored.key)
            // Its address and node port are free again for anyone.
            let again = try await a.write(try Self.service("web2", extra: ", clusterIP: 10.96.0.1")).stored
            #expect(Self.clusterIP(again) == "10.96.0.1")
        }
    }

    /// Pods created without an address on one node by several replicas at once get distinct
    /// addresses from its pod CIDR (each claimed in etcd, as a service's ClusterIP is); an
    /// address given explicitly that another replica's pod holds is refused as on one replica.
    @Test func replicasCreatingPodsAtOnceGiveDistinctPodIPs() async throws {
        try await withReplicas(3) { replicas, _ in
            let node = try #require(Manifest.decode("""
                apiVersion: v1
                kind: Node
                metadata: {name: node-a}
                spec: {podCIDR: 10.244.1.0/24}
                """).first).result.get()
            _ = try await replicas[0].registry.write(node)
            for replica in replicas { #expect(await eventually(within: 30) { replica.registry.get(node.key) != nil }) }
            func pod(_ name: String, ip: String? = nil) throws -> RegistryObject {
                try #require(Manifest.decode("""
                    apiVersion: v1
                    kind: Pod
                    metadata: {name: \(name), namespace: shop}
                    spec: {nodeName: node-a, containers: [{name: c}]}
                    \(ip.map { "status: {podIP: \($0)}" } ?? "")
                    """).first).result.get()
            }
            let perReplica = 40
            let results = try await withThrowingTaskGroup(of: [Result<ApplyOutcome, RegistryError>].self) { group in
                for (index, replica) in replicas.enumerated() {
                    let objects = try (0..<perReplica).map { try pod("p-\(index)-\($0)") }
                    group.addTask { await replica.registry.apply(contentsOf: objects) }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(results.allSatisfy { (try? $0.get()) == .created }, "\(results.filter { (try? $0.get()) != .created }.prefix(3))")
            let total = replicas.count * perReplica
            for replica in replicas {
                #expect(await eventually(within: 30) { replica.registry.snapshot().objects.values.filter { $0.kind == .pod }.count == total })
            }
            let ips = replicas[0].registry.snapshot().objects.values.compactMap { object -> String? in
                if case .pod(let pod) = object { return pod.status.podIP }
                return nil
            }
            #expect(ips.count == total && Set(ips).count == total, "\(ips.count) pods, \(Set(ips).count) distinct addresses")
            #expect(ips.allSatisfy { $0.hasPrefix("10.244.1.") })
            // Another replica's pod's address, given explicitly: refused, naming the field.
            let taken = ips[0]
            do {
                _ = try await replicas[2].registry.write(try pod("copy", ip: taken))
                Issue.record("a second pod with \(taken) was stored")
            } catch {
                #expect("\(error)".contains("status.podIPs[0].ip") && "\(error)".contains("already in use"), "\(error)")
            }
            // Deleted, its address is free for an explicit claim.
            let holder = try #require(replicas[0].registry.snapshot().objects.values.first {
                if case .pod(let pod) = $0 { return pod.status.podIP == taken }
                return false
            })
            try await replicas[1].registry.delete(holder.key)
            for replica in replicas { #expect(await eventually(within: 30) { replica.registry.get(holder.key) == nil }) }
            let (outcome, _) = try await replicas[2].registry.write(try pod("copy", ip: taken))
            #expect(outcome == .created)
        }
    }

    /// Replicas creating services at the same moment never hand out the same address or port.
    @Test func replicasCreatingAtOnceAllocateDistinctAddresses() async throws {
        try await withReplicas(3) { replicas, _ in
            let perReplica = 100
            let results = try await withThrowingTaskGroup(of: [Result<ApplyOutcome, RegistryError>].self) { group in
                for (index, replica) in replicas.enumerated() {
                    let objects = try (0..<perReplica).map { try Self.service("svc-\(index)-\($0)", type: "NodePort") }
                    group.addTask { await replica.registry.apply(contentsOf: objects) }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(results.allSatisfy { (try? $0.get()) == .created }, "\(results.filter { (try? $0.get()) != .created }.prefix(3))")
            let total = replicas.count * perReplica
            for replica in replicas {
                #expect(await eventually(within: 30) { replica.registry.snapshot().services.count == total })
            }
            let services = replicas[0].registry.snapshot().services
            #expect(Set(services.map(\.spec.clusterIP)).count == total)
            #expect(Set(services.flatMap { $0.spec.ports.map(\.nodePort) }).count == total)
            // Every replica serves the same objects at the same versions.
            for replica in replicas.dropFirst() {
                #expect(replica.registry.snapshot().services == services)
            }
        }
    }

    /// What etcd refuses, in the registry's (and so the API's) words.
    @Test func conflictsAreKubernetesConflicts() async throws {
        try await withReplicas(2) { replicas, _ in
            let (a, b) = (replicas[0].registry, replicas[1].registry)
            let stored = try await a.write(try Self.service("web")).stored
            #expect(await eventually(within: 10) { b.get(stored.key) != nil })
            var newer = stored
            newer.metadata.labels["v"] = "2"
            let updated = try await b.write(newer, preconditions: WritePreconditions(resourceVersion: stored.metadata.resourceVersion)).stored
            // An update that read the older version, on either replica.
            var stale = stored
            stale.metadata.labels["v"] = "3"
            await #expect(throws: RegistryError.conflict(stored.key, .resourceVersion(expected: stored.metadata.resourceVersion,
                                                                                      actual: updated.metadata.resourceVersion))) {
                try await a.write(stale, preconditions: WritePreconditions(resourceVersion: stored.metadata.resourceVersion))
            }
            // A create of what exists.
            await #expect(throws: RegistryError.alreadyExists(stored.key)) {
                try await a.write(try Self.service("web"), preconditions: WritePreconditions(mustNotExist: true))
            }
            // An address someone holds, asked for by name.
            await #expect(throws: RegistryError.allocation(kind: .service, name: "other", errors: [
                .invalid("spec.clusterIPs", "[\"10.96.0.1\"]", "failed to allocate IP 10.96.0.1: provided IP is already allocated")])) {
                try await b.write(try Self.service("other", extra: ", clusterIP: 10.96.0.1"))
            }
            // A precondition on a version this replica has not seen yet waits to see it.
            var latest = updated
            latest.metadata.labels["v"] = "4"
            let seenElsewhere = try await b.write(latest, preconditions: WritePreconditions(resourceVersion: updated.metadata.resourceVersion)).stored
            var next = seenElsewhere
            next.metadata.labels["v"] = "5"
            _ = try await a.write(next, preconditions: WritePreconditions(resourceVersion: seenElsewhere.metadata.resourceVersion))
            // The synchronous calls cannot wait for etcd: they say so.
            #expect(throws: RegistryError.self) { try a.apply(try Self.service("sync")) }
            #expect(a.get(ObjectKey(.service, namespace: "shop", name: "sync")) == nil)
        }
    }

    /// A namespace's deletion takes its contents along on every replica.
    /// The registry at a past revision, read back from etcd by a replica that has moved on
    /// (what a paged list begun on another replica continues from): exactly what was served
    /// at that revision, endpoints derived from pods included; once etcd has compacted past
    /// it, `.expired`.
    @Test func aPastRevisionIsReadBackFromTheStore() async throws {
        try await withReplicas(2) { replicas, _ in
            let (a, b) = (replicas[0].registry, replicas[1].registry)
            let objects = try Manifest.decode("""
                apiVersion: v1
                kind: Node
                metadata: {name: node-a}
                spec: {podCIDR: 10.244.1.0/24}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: shop}
                spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: web-1, namespace: shop, labels: {app: web}}
                spec: {nodeName: node-a, containers: [{name: c}]}
                status: {podIP: 10.244.1.7, conditions: [{type: Ready, status: "True"}]}
                """).map { try $0.result.get() }
            for object in objects { _ = try await a.write(object) }
            let then = a.snapshot()
            func endpoints(_ snapshot: RegistrySnapshot) -> Int {
                snapshot.listWithDerived(.endpointSlice, namespace: "shop").reduce(0) { count, object in
                    if case .endpointSlice(let slice) = object { count + slice.endpoints.count } else { count }
                }
            }
            #expect(endpoints(then) == 1, "the pod is web's endpoint")
            // b moves on: the pod goes, another service comes.
            #expect(await eventually(within: 30) { b.resourceVersion == then.resourceVersion })
            let pod = try #require(b.get(ObjectKey(.pod, namespace: "shop", name: "web-1")))
            _ = try await b.delete(pod.key)
            _ = try await b.write(try Self.service("late"))
            #expect(endpoints(b.snapshot()) == 0)

            let past = try #require(try await b.snapshot(atStoreRevision: then.resourceVersion))
            #expect(past.resourceVersion == then.resourceVersion)
            for kind in ObjectKind.allCases {
                #expect(past.listWithDerived(kind) == then.listWithDerived(kind), "\(kind)")
            }
            #expect(b.get(pod.key) == nil, "reading the past changes nothing served")
            // One kind read: that kind as it was, nothing else.
            let services = try #require(try await b.snapshot(atStoreRevision: then.resourceVersion, kinds: [.service]))
            #expect(services.list(.service) == then.list(.service) && services.list(.service).count == 1)
            #expect(services.list(.pod).isEmpty && services.list(.node).isEmpty)
            let ahead = b.resourceVersion + 1000
            await #expect(throws: StoreError.futureRevision(Int64(ahead))) { _ = try await b.snapshot(atStoreRevision: ahead) }

            try await replicas[1].store.client.compact(revision: Int64(b.resourceVersion))
            await #expect(throws: StoreError.expired(revision: Int64(then.resourceVersion))) {
                _ = try await b.snapshot(atStoreRevision: then.resourceVersion)
            }
        }
    }

    @Test func aNamespaceDeletionCascades() async throws {
        try await withReplicas(2) { replicas, _ in
            let (a, b) = (replicas[0].registry, replicas[1].registry)
            let namespace = try #require(Manifest.decode("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}").first).result.get()
            let results = await a.apply(contentsOf: [try Self.service("web"), namespace, try Self.service("api")])
            #expect(results.allSatisfy { (try? $0.get()) == .created })
            #expect(await eventually(within: 10) { b.snapshot().objects.count == 3 })
            try await b.delete(namespace.key)
            #expect(b.snapshot().objects.isEmpty)
            #expect(await eventually(within: 10) { a.snapshot().objects.isEmpty })
        }
    }

    /// etcd out of reach: writes are refused at once as unavailable, what was seen is still
    /// served, and everything resumes by itself when etcd is back.
    @Test func etcdOutOfReachRefusesWritesAndResumes() async throws {
        try await withReplicas(1) { replicas, cluster in
            let registry = replicas[0].registry
            let stored = try await registry.write(try Self.service("web")).stored
            cluster.kill("m0")
            let api = try Self.service("api")
            let error = await #expect(throws: RegistryError.self) { try await registry.write(api) }
            if case .unavailable(let reason)? = error {
                #expect(reason.contains("127.0.0.1"), "\(reason)")
            } else {
                Issue.record("expected unavailable, got \(String(describing: error))")
            }
            #expect(registry.get(stored.key) == stored)
            #expect(try await cluster.restart("m0"))
            var written = false
            for _ in 0..<300 where !written {
                written = (try? await registry.write(try Self.service("api"))) != nil
                if !written { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(written)
            #expect(registry.snapshot().services.count == 2)
        }
    }

    /// Quorum lost (two of three members gone): writes are refused as unavailable within the
    /// retry budget, not held for the request timeout; what was seen is served; the status
    /// says so; once a member is back, writes go through again by themselves.
    @Test func quorumLossRefusesWritesQuickly() async throws {
        let cluster = try await EtcdCluster.starting(size: 3)
        defer { cluster.stop() }
        try await Self.withReplicas(1, urls: cluster.clientURLs) { replicas in
            let registry = replicas[0].registry
            let stored = try await registry.write(try Self.service("web")).stored
            #expect(registry.sharedStatus.isAvailable)
            cluster.kill("m1")
            cluster.kill("m2")
            let api = try Self.service("api")
            // A write in flight when quorum goes waits out etcd's own request timeout (about
            // 6 s here: etcd does not fail a proposal early); the member then knows it has no
            // leader, and every later write is refused after the 2 s the registry gives an
            // election, not held.
            await #expect(throws: RegistryError.self) { try await registry.write(api) }
            let clock = ContinuousClock()
            let start = clock.now
            let error = await #expect(throws: RegistryError.self) { try await registry.write(api) }
            let took = clock.now - start
            guard case .unavailable(let reason)? = error else {
                Issue.record("expected unavailable, got \(String(describing: error))")
                return
            }
            #expect(reason.contains("no leader"), "\(reason)")
            #expect(took < .seconds(4), "refused after \(took): \(reason)")
            let status = registry.sharedStatus
            #expect(!status.isAvailable && status.refusedWrites == 2, "\(status)")
            #expect(registry.get(stored.key) == stored)
            #expect(try await cluster.restart("m1"))
            var written = false
            for _ in 0..<300 where !written {
                written = (try? await registry.write(api)) != nil
                if !written { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(written)
            #expect(registry.sharedStatus.isAvailable)
        }
    }

    /// A node whose agent holds its lease is ready; when the agent stops (revoking the lease,
    /// or dying so that etcd drops it after its TTL) the node's endpoints stop being ready on
    /// every replica, and come back with the lease. Nodes without a lease are not affected.
    @Test func endpointsFollowTheirNodesLease() async throws {
        try await withReplicas(2) { replicas, cluster in
            let (a, b) = (replicas[0].registry, replicas[1].registry)
            let objects = try Manifest.decode("""
                apiVersion: v1
                kind: Node
                metadata: {name: n1, annotations: {clusterdns.io/node-lease: 2s}}
                ---
                apiVersion: v1
                kind: Node
                metadata: {name: n2}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: shop}
                spec: {clusterIP: 10.96.0.80, ports: [{name: http, port: 80}]}
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
                addressType: IPv4
                ports: [{name: http, port: 8080}]
                endpoints: [{addresses: [10.244.1.5], nodeName: n1}, {addresses: [10.244.2.5], nodeName: n2}]
                """).map { try $0.result.get() }
            #expect(await a.apply(contentsOf: objects).allSatisfy { (try? $0.get()) != nil })
            let web = ObjectKey(.service, namespace: "shop", name: "web")
            func ready(_ registry: Registry) -> [String] {
                (registry.snapshot().endpoints(of: web)?.endpoints ?? []).filter(\.isReady).map { $0.addresses[0].description }.sorted()
            }
            // No lease yet: n1 has not reported.
            #expect(await eventually(within: 10) { ready(b) == ["10.244.2.5"] })
            #expect(!b.snapshot().isNodeReady("n1") && b.snapshot().isNodeReady("n2"))
            // The agent of n1 (a client of its own, as another process would be).
            func agent() throws -> (EtcdClient, Task<Void, Never>) {
                var configuration = try EtcdConfiguration(urls: cluster.clientURLs)
                configuration.requestTimeout = .seconds(30)
                let client = try EtcdClient(configuration: configuration)
                let store = EtcdRegistryStore(client: client, prefix: "/test")
                let task = Task {
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask { try? await client.run() }
                        group.addTask { await store.holdNodeLease("n1", ttl: .seconds(2)) }
                        await group.next()
                        group.cancelAll()
                    }
                }
                return (client, task)
            }
            let events = EventLog(b.watch())
            var (client, holder) = try agent()
            #expect(await eventually(within: 10) { ready(b) == ["10.244.1.5", "10.244.2.5"] })
            #expect(await eventually(within: 10) { ready(a) == ["10.244.1.5", "10.244.2.5"] })
            let event = try #require(await events.event(0))
            #expect(event.object.key == ObjectKey(.node, name: "n1") && event.endpointsChanged == [web], "watchers (the zone, the forwarder) are told")
            // Stopped: the lease is revoked, the node is gone at once.
            holder.cancel()
            await holder.value
            client.shutdown()
            #expect(await eventually(within: 5) { ready(b) == ["10.244.2.5"] })
            // Back, then dead without a word (its connection gone): etcd drops the lease after 2 s.
            (client, holder) = try agent()
            #expect(await eventually(within: 10) { ready(b) == ["10.244.1.5", "10.244.2.5"] })
            client.shutdown()
            holder.cancel()
            let clock = ContinuousClock()
            let start = clock.now
            #expect(await eventually(within: 15) { ready(b) == ["10.244.2.5"] })
            #expect(clock.now - start < .seconds(8), "within the lease's TTL and a little")
        }
    }

    /// With a local copy (SQLite), a replica restarted while etcd is out of reach serves the
    /// last state it saw, then takes up what changed meanwhile when etcd is back.
    @Test func aLocalCopyServesWhileEtcdIsAway() async throws {
        let cluster = try await EtcdCluster.starting(size: 1)
        defer { cluster.stop() }
        let directory = Scratch.url("shared").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let local: @Sendable (Int) throws -> any RegistryStorage = { index in
            index == 0 ? try SQLiteStorage(directory: directory) : MemoryStorage()
        }
        var keep: RegistryObject? = nil
        try await Self.withReplicas(2, urls: cluster.clientURLs, storage: local) { replicas in
            keep = try await replicas[1].registry.write(try Self.service("keep")).stored
            _ = try await replicas[1].registry.write(try Self.service("gone"))
            #expect(await eventually(within: 10) { replicas[0].registry.snapshot().services.count == 2 })
        }
        // Changes made while the replica with the copy is down.
        try await Self.withReplicas(1, urls: cluster.clientURLs) { replicas in
            try await replicas[0].registry.delete(ObjectKey(.service, namespace: "shop", name: "gone"))
            _ = try await replicas[0].registry.write(try Self.service("new"))
        }
        let kept = try #require(keep)
        cluster.kill("m0")
        let offline = try Registry(storage: try SQLiteStorage(directory: directory),
                                   shared: EtcdRegistryStore(client: try EtcdClient(configuration: EtcdConfiguration(urls: cluster.clientURLs)), prefix: "/test"))
        #expect(offline.snapshot().services.map(\.metadata.name) == ["gone", "keep"])
        #expect(offline.get(kept.key) == kept)
        #expect(try await cluster.restart("m0"))
        try await Self.withReplicas(1, urls: cluster.clientURLs, storage: local) { replicas in
            let registry = replicas[0].registry
            #expect(registry.snapshot().services.map(\.metadata.name) == ["keep", "new"])
            #expect(registry.get(kept.key) == kept)
        }
    }
}

/// A registry watch read into a list as it comes, so that a test waits for an event with a
/// deadline instead of forever when the event never comes.
final class EventLog: Sendable {
    final class Seen: Sendable { let list = Mutex<[WatchEvent]>([]) }
    let seen = Seen()
    let reader: Task<Void, Never>

    init(_ stream: AsyncThrowingStream<WatchEvent, any Error>) {
        let seen = seen
        reader = Task {
            do { for try await event in stream { seen.list.withLock { $0.append(event) } } } catch {}
        }
    }

    deinit { reader.cancel() }

    /// The event at `index`, once it has come (nil after `seconds`).
    func event(_ index: Int, within seconds: Double = 10) async -> WatchEvent? {
        let seen = seen
        _ = await eventually(within: seconds) { seen.list.withLock { $0.count > index } }
        return seen.list.withLock { $0.count > index ? $0[index] : nil }
    }
}
