import RegistryTestSupport
@testable import ServiceRegistry
import Synchronization
import Testing
import TestSupport

/// How a registry follows a shared store, against a store that says exactly what the test
/// scripts: every change installed once, in order; a relisted batch (after a compaction) taken
/// as the whole state, so what it lacks is deleted and what it repeats is not sent again.
struct SharedFollowTests {
    /// A store whose listing and batches the test gives; writes are refused.
    final class ScriptedStore: ListOnlyStore {
        let listing: StoreListing
        let batches: AsyncThrowingStream<StoreBatch, any Error>
        let continuation: AsyncThrowingStream<StoreBatch, any Error>.Continuation

        init(_ listing: StoreListing) {
            self.listing = listing
            (batches, continuation) = AsyncThrowingStream<StoreBatch, any Error>.makeStream()
        }

        var name: String { "a scripted store" }
        func load(at revision: Int64, kinds: Set<ObjectKind>?) async throws(StoreError) -> StoreListing { listing }
        func follow(from revision: Int64, onError: @escaping @Sendable (StoreError) -> Void) -> AsyncThrowingStream<StoreBatch, any Error> {
            batches
        }
    }

    static func service(_ name: String, _ ip: String, version: UInt64) throws -> RegistryObject {
        var object = try #require(Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: shop}
            spec: {clusterIP: \(ip), ports: [{port: 80}]}
            """).first).result.get()
        object.metadata.resourceVersion = version
        object.metadata.uid = "00000000-0000-4000-8000-0000000000\(ip.suffix(2))"
        return object
    }

    /// What each waiter saw when it returned (the shared revision, or 0 for none).
    final class Returns: Sendable {
        let seen = Mutex<[String: UInt64]>([:])
        func note(_ name: String, _ registry: Registry) {
            let revision = registry.sharedRevision ?? 0
            seen.withLock { $0[name] = revision }
        }
        subscript(name: String) -> UInt64? { seen.withLock { $0[name] } }
    }

    /// A start waits on the first list, not on a timer: `waitUntilListed` returns when the list
    /// is installed (not before), at once after it or without a store, and when cancelled,
    /// also when cancelled before it waits. (Waiters that never return fail the checks; they
    /// are not awaited, so such a mistake fails rather than hangs.)
    @Test func waitingForTheFirstList() async throws {
        let store = GatedStore(StoreListing(objects: [try Self.service("a", "10.96.0.11", version: 5)], revision: 5))
        let registry = try Registry(shared: store)
        let returns = Returns()
        Task { await registry.waitUntilListed(); returns.note("waiter", registry) }
        let cancelled = Task { await registry.waitUntilListed(); returns.note("cancelled", registry) }
        let following = Task { await registry.followSharedStore { _ in } }
        defer { following.cancel() }
        #expect(await eventually(within: 10) { registry.state.withLock { $0.listedWaiters.count } == 2 })
        cancelled.cancel()
        #expect(await eventually(within: 10) { returns["cancelled"] == 0 })
        #expect(registry.state.withLock { $0.listedWaiters.count } == 1 && returns["waiter"] == nil)
        store.open()
        #expect(await eventually(within: 10) { returns["waiter"] == 5 })
        #expect(registry.snapshot().services.count == 1)
        #expect(registry.state.withLock { $0.listedWaiters.isEmpty })
        Task { await registry.waitUntilListed(); returns.note("after", registry) }
        let alone = try Registry()
        Task { await alone.waitUntilListed(); returns.note("alone", alone) }
        let unlisted = try Registry(shared: GatedStore(StoreListing(objects: [], revision: 1)))
        Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await unlisted.waitUntilListed()
            returns.note("early", unlisted)
        }
        #expect(await eventually(within: 10) { returns["after"] == 5 && returns["alone"] == 0 && returns["early"] == 0 })
    }

    @Test func aRelistIsTheWholeState() async throws {
        let a = try Self.service("a", "10.96.0.11", version: 5)
        let b = try Self.service("b", "10.96.0.12", version: 6)
        let store = ScriptedStore(StoreListing(objects: [a, b], revision: 6))
        let registry = try Registry(shared: store)
        let following = Task { await registry.followSharedStore { _ in } }
        defer { following.cancel() }
        while registry.sharedRevision == nil { try await Task.sleep(for: .milliseconds(1)) }
        #expect(registry.snapshot().services.map(\.metadata.name) == ["a", "b"] && registry.resourceVersion == 6)
        let events = registry.watch()
        var iterator = events.makeAsyncIterator()

        // Live: c created at 7, a changed at 8.
        let c = try Self.service("c", "10.96.0.13", version: 7)
        var a2 = a
        a2.metadata.labels["v"] = "2"
        a2.metadata.resourceVersion = 8
        store.continuation.yield(StoreBatch(changes: [.put(c), .put(a2)], revision: 8, relisted: false))
        // Compacted: the relist holds a2 and c as they are (not news), d new, b gone.
        let d = try Self.service("d", "10.96.0.14", version: 10)
        store.continuation.yield(StoreBatch(StoreListing(objects: [a2, c, d], revision: 11)))

        var seen: [String] = []
        while seen.count < 4, let event = try await iterator.next() {
            seen.append("\(event.change.rawValue) \(event.object.metadata.name) \(event.resourceVersion)")
        }
        #expect(seen == ["ADDED c 7", "MODIFIED a 8", "DELETED b 11", "ADDED d 11"])
        #expect(registry.snapshot().services.map(\.metadata.name) == ["a", "c", "d"])
        #expect(registry.resourceVersion == 11)
        // Each object carries the revision the store wrote it at.
        #expect(registry.get(ObjectKey(.service, namespace: "shop", name: "d")).map { $0.metadata.resourceVersion } == 10)
    }

    /// An object in the store that is not valid (anyone with access to etcd can write one) is
    /// reported and not served, whether it comes in a list of hundreds (checked on every core
    /// before the registry's lock) or in a watch batch of one; the valid rest is served.
    @Test func objectsThatAreNotValidAreNotServed() async throws {
        var objects: [RegistryObject] = []
        for i in 0..<300 {
            var service = try Self.service("s\(i)", "10.96.\(1 + i / 200).\(10 + i % 200)", version: UInt64(10 + i))
            if i == 17 || i == 250, case .service(var s) = service {
                s.spec.ports[0].port = 70_000
                service = .service(s)
            }
            objects.append(service)
        }
        let store = ScriptedStore(StoreListing(objects: objects, revision: 400))
        let registry = try Registry(shared: store)
        let problems = Mutex<[String]>([])
        let following = Task { await registry.followSharedStore { problem in problems.withLock { $0.append(problem) } } }
        defer { following.cancel() }
        while registry.sharedRevision == nil { try await Task.sleep(for: .milliseconds(1)) }
        let served = Set(registry.snapshot().services.map(\.metadata.name))
        #expect(served.count == 298 && !served.contains("s17") && !served.contains("s250"))
        #expect(problems.withLock { $0 }.count == 2)
        #expect(problems.withLock { $0 }.allSatisfy { $0.contains("in the store is not served") && $0.contains("70000") })

        // Live: a valid object made invalid is withdrawn.
        guard case .service(var changed) = objects[3] else { return }
        changed.spec.ports[0].port = 0
        changed.metadata.resourceVersion = 401
        store.continuation.yield(StoreBatch(changes: [.put(.service(changed))], revision: 401, relisted: false))
        while registry.resourceVersion < 401 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(registry.get(ObjectKey(.service, namespace: "shop", name: "s3")) == nil)
        #expect(problems.withLock { $0 }.count == 3)
    }

    /// The first list is where the history starts (kube-apiserver's watch cache starts at its
    /// list): a watch from an older version is told to list again, not replayed the list as
    /// changes; a watch from the list's version gets what follows it.
    @Test func historyStartsAtTheFirstList() async throws {
        let a = try Self.service("a", "10.96.0.11", version: 5)
        let b = try Self.service("b", "10.96.0.12", version: 6)
        let store = ScriptedStore(StoreListing(objects: [a, b], revision: 6))
        let registry = try Registry(shared: store)
        let following = Task { await registry.followSharedStore { _ in } }
        defer { following.cancel() }
        while registry.sharedRevision == nil { try await Task.sleep(for: .milliseconds(1)) }

        var older = registry.watch(from: 5).makeAsyncIterator()
        await #expect(throws: WatchExpired.self) { _ = try await older.next() }

        let c = try Self.service("c", "10.96.0.13", version: 7)
        store.continuation.yield(StoreBatch(changes: [.put(c)], revision: 7, relisted: false))
        var fromList = registry.watch(from: 6).makeAsyncIterator()
        let event = try #require(try await fromList.next())
        #expect("\(event.change.rawValue) \(event.object.metadata.name) \(event.resourceVersion)" == "ADDED c 7")
    }
}
