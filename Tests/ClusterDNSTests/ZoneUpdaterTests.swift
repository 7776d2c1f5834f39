import ClusterDNS
import KubernetesDNS
import ServiceRegistry
import Testing
import TestSupport

/// The zone updater's path for a watcher that falls behind: the registry cuts it off, and it
/// compiles the zone whole from a new snapshot instead of missing changes.
@Suite struct ZoneUpdaterTests {
    @Test func anUpdaterThatFallsBehindResynchronises() async throws {
        var configuration = RegistryConfiguration()
        configuration.watcherBuffer = 1  // one change waiting at most: a batch overflows it
        let registry = try Registry(configuration: configuration)
        registry.markLoaded()
        let cluster = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: configuration.serviceCIDRs),
                                       snapshot: registry.snapshot())
        let log = CapturedLog()
        let updater = ZoneUpdater(registry: registry, cluster: cluster, logger: log.logger)
        let task = Task { try await updater.run() }
        defer { task.cancel() }
        func service(_ name: String) throws -> RegistryObject {
            try #require(Manifest.decode("apiVersion: v1\nkind: Service\nmetadata: {name: \(name)}\nspec: {ports: [{port: 80}]}").first)
                .result.get()
        }
        // The updater follows a single change: it is watching.
        try await registry.apply(service("first"))
        #expect(await eventually { cluster.resourceVersion == registry.resourceVersion })
        // Fifty changes published at once: more than its buffer holds.
        let results = await registry.apply(contentsOf: try (0..<50).map { try service("s\($0)") })
        #expect(results.allSatisfy { (try? $0.get()) == .created })
        #expect(await eventually { cluster.resourceVersion == registry.resourceVersion }, "the zone caught up")
        #expect(!log.metadata(of: "zone updater fell behind the registry; resynchronising").isEmpty)
        #expect(cluster.zone.isLoaded)
        // And it follows on from there, change by change.
        try await registry.apply(service("last"))
        #expect(await eventually { cluster.resourceVersion == registry.resourceVersion })
    }
}
