@testable import KubernetesAPI
import RegistryTestSupport
import ServiceRegistry
import Synchronization
import Testing
import TestSupport

/// A paged list that continues on a replica which has moved past the list's version: the pages
/// are read from the registry as its shared store held it at that version, read once and kept
/// while the list goes on; a version the store no longer keeps (or has not reached) is said so.
@Suite struct APIStoreReadTests {
    /// A shared store that holds the listings the test gives, by revision, and counts its reads.
    final class HistoryStore: ListOnlyStore {
        let latest: StoreListing
        let past: [Int64: StoreListing]
        let oldest: Int64
        let reads = Mutex<[(revision: Int64, kinds: Set<ObjectKind>?)]>([])

        init(latest: StoreListing, past: [Int64: StoreListing], oldest: Int64) {
            (self.latest, self.past, self.oldest) = (latest, past, oldest)
        }

        var name: String { "a store with history" }
        func load(at revision: Int64, kinds: Set<ObjectKind>?) async throws(StoreError) -> StoreListing {
            reads.withLock { $0.append((revision, kinds)) }
            var listing: StoreListing
            if revision == 0 || revision == latest.revision {
                listing = latest
            } else {
                if revision > latest.revision { throw .futureRevision(revision) }
                guard revision >= oldest, let past = past[revision] else { throw .expired(revision: revision) }
                listing = past
            }
            if let kinds { listing.objects.removeAll { !kinds.contains($0.kind) } }
            return listing
        }
    }

    static func services(_ names: [String], at revision: Int64) throws -> StoreListing {
        let objects = try names.enumerated().map { index, name in
            var object = try #require(Manifest.decode("""
                apiVersion: v1
                kind: Service
                metadata: {name: \(name), namespace: shop}
                spec: {clusterIP: 10.96.0.\(10 + index), ports: [{port: 80}]}
                """).first).result.get()
            object.metadata.resourceVersion = UInt64(revision)
            return object
        }
        return StoreListing(objects: objects, revision: revision)
    }

    @Test func aListContinuesFromThePastAsTheStoreHeldIt() async throws {
        let store = HistoryStore(latest: try Self.services(["a", "b", "c"], at: 9),
                                 past: [5: try Self.services(["a", "b", "x"], at: 5)], oldest: 4)
        let registry = try Registry(shared: store)
        let following = Task { await registry.followSharedStore { _ in } }
        defer { following.cancel() }
        // Waits are eventually's 60 s: with every suite started at once, tests that run child
        // processes synchronously can hold the two-thread task pool (and the follow task) for
        // longer than 10 s.
        #expect(await eventually { registry.sharedRevision == 9 })
        var handler = APIHandler(registry: registry, tokens: try TokenTable(parsing: "\(Fixture.admin),alice,1,\"system:masters\""))
        let clock = TestClock()
        handler.clock = clock
        func page(_ token: String) async -> APIResponse {
            await Fixture.send(handler, "GET", "/api/v1/services", query: ["limit": "1", "continue": token])
        }
        func names(_ response: APIResponse) -> [String] {
            (response.body["items"]?.items ?? []).compactMap { $0["metadata"]?["name"]?.stringValue }
        }
        func readsOfFive() -> Int { store.reads.withLock { $0.filter { $0.revision == 5 }.count } }

        // A token another replica gave at revision 5, where x (not c) followed b.
        let second = await page("5/shop/a")
        #expect(second.code == 200 && names(second) == ["b"] && second.resourceVersion == "5", "\(second.body)")
        #expect(second.body["metadata"]?["remainingItemCount"] == .int(1))
        let last = await page(second.body["metadata"]?["continue"]?.stringValue ?? "")
        #expect(last.code == 200 && names(last) == ["x"] && last.body["metadata"]?["continue"] == nil, "\(last.body)")
        #expect(readsOfFive() == 1, "one reading for the whole list")
        #expect(store.reads.withLock { $0.last?.kinds } == [.service], "a list of services reads services only")
        #expect(names(await Fixture.send(handler, "GET", "/api/v1/services")) == ["a", "b", "c"], "the live registry is untouched")

        // Kept while pages are read from it, dropped two sweeps after the last.
        #expect(await eventually { clock.sleeping == 1 })
        clock.advance(by: ListPages.keepFromStore)
        #expect(await eventually { clock.sleeping == 1 })
        #expect(handler.pages.heldFromStore == 1)
        clock.advance(by: ListPages.keepFromStore)
        #expect(await eventually { handler.pages.heldFromStore == 0 && clock.sleeping == 0 })
        #expect(names(await page("5/shop/a")) == ["b"])
        #expect(readsOfFive() == 2, "read again once dropped")

        // Compacted away: too old (410); not reached yet: not a token any server gave (400).
        let expired = await page("3/shop/a")
        #expect(expired.code == 410 && expired.body["reason"]?.stringValue == "Expired", "\(expired.body)")
        #expect(await page("12/shop/a").code == 400)
        #expect(store.reads.withLock { reads in reads.contains { $0.revision == 3 } && reads.contains { $0.revision == 12 } })

        // Slices are derived from services and pods too: a list of them reads every kind.
        let slices = await Fixture.send(handler, "GET", "/apis/discovery.k8s.io/v1/endpointslices",
                                        query: ["limit": "1", "continue": "5/shop/a"])
        #expect(slices.code == 200, "\(slices.body)")
        #expect(store.reads.withLock { $0.last.map { $0.revision == 5 && $0.kinds == nil } } == true)
    }
}
