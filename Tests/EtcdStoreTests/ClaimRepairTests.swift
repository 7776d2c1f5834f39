import EtcdClient
import EtcdStore
import Foundation
import ServiceRegistry
import Testing
import TestSupport

/// The allocation claims in etcd brought in line with the objects (`Registry.repairClaims`):
/// claims nothing holds released, allocations held without a claim claimed, conflicts told,
/// and nothing rightly held ever touched, against a real etcd.
@Suite(.serialized) struct ClaimRepairTests {
    static func object(_ yaml: String) throws -> RegistryObject {
        try #require(Manifest.decode(yaml).first).result.get()
    }

    static func service(_ name: String, clusterIP: String) throws -> RegistryObject {
        try object("""
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: shop}
            spec: {clusterIP: \(clusterIP), ports: [{name: http, port: 80}]}
            """)
    }

    static func held(_ replica: SharedRegistryTests.Replica) async throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try await replica.store.heldClaims().map { ("\($0.claim)", $0.owner) })
    }

    /// A pod deleted after its node: its delete found its address in no pod CIDR and released
    /// nothing, so the address stayed claimed, refusing every later pod, its own name included.
    /// The repair releases it; the address can be given again.
    @Test func aPodDeletedAfterItsNodeLeavesAClaimTheRepairReleases() async throws {
        try await SharedRegistryTests().withReplicas(2) { replicas, _ in
            let (a, b) = (replicas[0], replicas[1])
            let node = try Self.object("apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: 10.244.1.0/24}\n")
            func pod(_ name: String) throws -> RegistryObject {
                try Self.object("""
                    apiVersion: v1
                    kind: Pod
                    metadata: {name: \(name), namespace: shop}
                    spec: {nodeName: node-a, containers: [{name: c}]}
                    status: {podIP: 10.244.1.7}
                    """)
            }
            _ = try await a.registry.write(node)
            _ = try await a.registry.write(try pod("worker"))
            #expect(try await Self.held(a)["pod IP 10.244.1.7"] == "Pod shop/worker")
            _ = try await a.registry.delete(node.key)
            _ = try await a.registry.delete(try pod("worker").key)
            #expect(try await Self.held(a)["pod IP 10.244.1.7"] == "Pod shop/worker", "the claim outlives its pod")
            _ = try await a.registry.write(node)
            await #expect(throws: RegistryError.self, "the address is refused while the claim stands") {
                _ = try await a.registry.write(try pod("worker"))
            }
            // The other replica repairs, once it has seen the deletes.
            let workerKey = try pod("worker").key
            #expect(await eventually(within: 30) { b.registry.get(node.key) != nil && b.registry.get(workerKey) == nil })
            let repair = try await b.registry.repairClaims()
            #expect(repair.released.map(\.description) == ["pod IP 10.244.1.7 (claimed for Pod shop/worker)"])
            #expect(repair.restored.isEmpty && repair.conflicts.isEmpty, "\(repair)")
            #expect(try await Self.held(a)["pod IP 10.244.1.7"] == nil)
            _ = try await a.registry.write(try pod("worker"))
            #expect(try await Self.held(a)["pod IP 10.244.1.7"] == "Pod shop/worker")
            // In line now: a second pass changes nothing.
            #expect(try await b.registry.repairClaims() == ClaimRepair())
        }
    }

    /// An object deleted in etcd directly (etcdctl del) leaves its claims; an allocation whose
    /// claim was deleted directly is claimed again for its object; two objects written around
    /// the registry with one address are told, and their claim left alone.
    @Test func claimsWrittenAroundTheRegistryAreBroughtInLine() async throws {
        try await SharedRegistryTests().withReplicas(1) { replicas, _ in
            let replica = replicas[0]
            let registry = replica.registry
            let client = replica.store.client
            _ = try await registry.write(try Self.service("gone", clusterIP: "10.96.0.50"))
            _ = try await registry.write(try Self.service("kept", clusterIP: "10.96.0.51"))
            _ = try await client.delete(replica.store.key(for: ObjectKey(.service, namespace: "shop", name: "gone")))
            _ = try await client.delete(Array("/test/ranges/serviceips/10.96.0.51".utf8))
            // A copy of kept with kept's address, put beside it in etcd.
            var copy = try #require(registry.get(ObjectKey(.service, namespace: "shop", name: "kept")))
            copy.metadata.name = "copy"
            copy.metadata.uid = UUID().uuidString.lowercased()
            copy.metadata.resourceVersion = 0
            let value = try JSONEncoder().encode(copy)
            _ = try await client.put(replica.store.key(for: copy.key), Array(value))
            #expect(await eventually(within: 30) {
                registry.get(copy.key) != nil && registry.get(ObjectKey(.service, namespace: "shop", name: "gone")) == nil
            })
            var repair = try await registry.repairClaims()
            #expect(repair.released.map(\.description) == ["ClusterIP 10.96.0.50 (claimed for Service shop/gone)"])
            #expect(repair.restored.isEmpty, "two objects hold 10.96.0.51: neither is given the claim")
            #expect(repair.conflicts == ["ClusterIP 10.96.0.51 is held by Service shop/copy and Service shop/kept"])
            // The copy goes: kept's address is claimed for it again.
            _ = try await client.delete(replica.store.key(for: copy.key))
            #expect(await eventually(within: 30) { registry.get(copy.key) == nil })
            repair = try await registry.repairClaims()
            #expect(repair.restored.map(\.description) == ["ClusterIP 10.96.0.51 (claimed for Service shop/kept)"])
            #expect(repair.released.isEmpty && repair.conflicts.isEmpty)
            let held = try await Self.held(replica)
            #expect(held["ClusterIP 10.96.0.51"] == "Service shop/kept" && held["ClusterIP 10.96.0.50"] == nil, "\(held)")
            // Claimed again, it is refused to another service; the released one is given.
            await #expect(throws: RegistryError.self) { _ = try await registry.write(try Self.service("other", clusterIP: "10.96.0.51")) }
            _ = try await registry.write(try Self.service("new", clusterIP: "10.96.0.50"))
        }
    }

    /// Every change is conditional on what was read: a claim whose owner has been written
    /// since is not released, nor one rewritten since; a claim is not restored for an object
    /// that has changed since, nor over one that is held. A replica that is behind therefore
    /// takes nothing from anyone.
    @Test func nothingIsChangedOnAStaleReading() async throws {
        try await SharedRegistryTests().withReplicas(1) { replicas, _ in
            let (registry, store) = (replicas[0].registry, replicas[0].store)
            let (_, stored) = try await registry.write(try Self.service("web", clusterIP: "10.96.0.60"))
            let claim = try #require(try await store.heldClaims().first { $0.claim == .clusterIP("10.96.0.60") })
            let version = Int64(stored.metadata.resourceVersion)
            // The owner as it was, absent, or rewritten since: released by none of them.
            #expect(try await store.release(claim, owner: stored.key, ownerRevision: 0) == false)
            #expect(try await store.release(claim, owner: stored.key, ownerRevision: version - 1) == false)
            var stale = claim
            stale.revision -= 1
            #expect(try await store.release(stale, owner: stored.key, ownerRevision: version) == false)
            #expect(try await store.restore(.clusterIP("10.96.0.60"), for: stored.key, at: version) == false, "it is held")
            #expect(try await store.heldClaims().contains(claim))
            // Read as it is: released; restored only for the object as it is.
            #expect(try await store.release(claim, owner: stored.key, ownerRevision: version))
            #expect(try await store.restore(.clusterIP("10.96.0.60"), for: stored.key, at: version - 1) == false)
            #expect(try await store.restore(.clusterIP("10.96.0.60"), for: stored.key, at: version))
            #expect(try await store.heldClaims().map(\.owner) == ["Service shop/web"])
        }
    }
}
