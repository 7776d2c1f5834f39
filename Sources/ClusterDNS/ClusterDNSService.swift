public import DNSAuthority
public import KubernetesDNS
public import DNSResolver
public import DNSWire
public import DNSServer
public import DispatchSockets
public import NetAddress
public import Logging
public import ServiceLifecycle
public import ServiceRegistry
import Dispatch
public import CoreMetrics
import Synchronization

/// Everything an embedder chooses: where DNS is served, the cluster domain and its answers,
/// the registry's allocation ranges and store, and the manifests to load and watch.
public struct ClusterDNSConfiguration: Sendable {
    public var dnsAddresses: [SocketAddress]
    public var cluster: ClusterConfiguration
    public var registry: RegistryConfiguration
    /// The registry's state directory (SQLite), or nil to keep it in memory. With `sharedStore`,
    /// it keeps a copy of the last state seen there, served after a restart while the store
    /// cannot be reached.
    public var stateDirectory: String?
    /// A store shared with other replicas (etcd): the registry's source of truth when set.
    public var sharedStore: (any SharedRegistryStore)?
    /// With `sharedStore`: how often this replica brings the store's allocation claims in line
    /// with its objects (`Registry.repairClaims`), the first time once it has listed the store
    /// and compiled its zone; zero: never. kube-apiserver repairs its ranges every three minutes.
    public var claimRepairInterval: Duration = .seconds(180)
    /// With `sharedStore`: the name this replica's manifests are applied under (its node's), so
    /// that a document or file that goes away deletes what this replica's files applied only.
    public var manifestOwner: String?
    /// Manifest files or directories loaded at start and re-applied when they change.
    public var manifests: [String]
    /// Manifest text loaded at start when `manifests` is empty.
    public var embeddedManifests: String?
    public var udpSockets: Int
    public var tcpLimits: TCPMessageServer.Limits
    /// Clients allowed to transfer the cluster zone (AXFR over TCP).
    public var allowTransfer: [IPPrefix]
    /// A directory of static zone files (`NAME.zone`), served and reloaded on change.
    public var zonesDirectory: String?
    /// Forwarding of every other name to upstream resolvers, with a cache; nil: authoritative only.
    public var forwarding: UpstreamResolver.Configuration?
    /// Clients allowed recursion (forwarding); others get REFUSED for names outside our zones.
    public var allowRecursion: [IPPrefix] = RecursionPolicy.privateRanges
    /// Where the server's metrics go (swift-metrics); nil: no metrics.
    public var metricsFactory: (any MetricsFactory)?
    /// Autopath (server-side search path completion for pods, as CoreDNS's `autopath
    /// @kubernetes`) with these node search domains after the cluster's; nil: off. It needs
    /// `cluster.pods` verified: a query's source address is taken for a pod only if the
    /// registry says so.
    public var autopathHostDomains: [DomainName]?
    /// Log queries (needs `metricsFactory`: the query log rides on the same per-query hook).
    public var queryLog: DNSMetrics.QueryLog?

    public init(dnsAddresses: [SocketAddress] = [SocketAddress(parsing: "127.0.0.1:5353")!],
                cluster: ClusterConfiguration = ClusterConfiguration(),
                registry: RegistryConfiguration = RegistryConfiguration(),
                stateDirectory: String? = nil, manifests: [String] = [], embeddedManifests: String? = nil,
                udpSockets: Int = Socket.usableCores, tcpLimits: TCPMessageServer.Limits = .init(), allowTransfer: [IPPrefix] = []) {
        self.dnsAddresses = dnsAddresses
        self.cluster = cluster
        self.registry = registry
        self.stateDirectory = stateDirectory
        self.manifests = manifests
        self.embeddedManifests = embeddedManifests
        self.udpSockets = udpSockets
        self.tcpLimits = tcpLimits
        self.allowTransfer = allowTransfer
    }
}

/// The whole server as one swift-service-lifecycle `Service`: the registry (yours to apply
/// objects to), the cluster zone kept up to date with it, and the DNS server. `init` opens the
/// registry's store (and loads it) but binds nothing; `run()` loads the manifests, serves, and
/// returns on graceful shutdown.
public final class ClusterDNSService: ServiceLifecycle.Service, Sendable {
    public let configuration: ClusterDNSConfiguration
    public let registry: Registry
    public let cluster: ClusterAuthority

    /// Waits until the cluster zone serves `resourceVersion` of the registry (or `timeout` has
    /// passed): a writer that waits for this can promise that DNS answers with its write. The
    /// zone updater applies a change within a fraction of a millisecond, so this polls.
    @discardableResult
    public func waitUntilServed(_ resourceVersion: UInt64, timeout: Duration = .seconds(1)) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while cluster.resourceVersion < resourceVersion {
            guard clock.now < deadline else { return false }
            try? await Task.sleep(for: .microseconds(50))
        }
        return true
    }
    public let server: DNSServer
    public let catalog: Catalog
    public let staticZones: StaticZones?
    /// The resolver serving now (`reconfigureForwarding` replaces it).
    public var resolver: UpstreamResolver? { server.handler.resolver }
    public let metrics: DNSMetrics?
    /// Malformed queries: the metrics' count, or without metrics the server's only observer.
    let malformed: MalformedTally
    let logger: Logger
    /// Resolvers replaced by a reconfiguration that still finish their questions, and the
    /// summed counters of those that have stopped (`resolverTotals`).
    let pastResolvers = Mutex<(finishing: [UpstreamResolver], stopped: ResolverTotals)>(([], ResolverTotals()))
    /// What the claim repairs have done so far (`clusterdns_registry_claim_repairs_total`), and
    /// the conflicts the last one found (`clusterdns_registry_claim_conflicts`).
    let claimRepairs = Mutex<(released: Int, restored: Int, conflicts: Int)>((0, 0, 0))
    public var claimRepairTotals: (released: Int, restored: Int, conflicts: Int) { claimRepairs.withLock { $0 } }
    /// With a shared store and manifests: nil until the manifests' first pass has been made,
    /// then the version of what it wrote (`ManifestLoader.apply`); 0 when there is nothing to
    /// wait for. `isServing` waits for the zone to serve it, so that a replica seeding an empty
    /// store is not ready while its manifests' names are still NXDOMAIN.
    let seeded: Mutex<UInt64?>

    public init(configuration: ClusterDNSConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        seeded = Mutex(configuration.sharedStore != nil && !configuration.manifests.isEmpty ? nil : 0)
        let storage: any RegistryStorage = try configuration.stateDirectory.map { try SQLiteStorage(directory: $0) } ?? MemoryStorage()
        registry = try Registry(configuration: configuration.registry, storage: storage, shared: configuration.sharedStore)
        var cluster = configuration.cluster
        if cluster.serviceCIDRs.isEmpty { cluster.serviceCIDRs = configuration.registry.serviceCIDRs }
        if cluster.serverAddresses.isEmpty {
            cluster.serverAddresses = configuration.dnsAddresses.map(\.address).filter { !$0.isUnspecified }
        }
        // The zone is compiled when serving starts (`serve`), from the registry as loaded then;
        // compiled here from a restored state as well, it would be compiled twice (the end of
        // the load changes how a missing name is answered), a third of a start at 10,000 services.
        self.cluster = ClusterAuthority(configuration: cluster)
        let catalog = Catalog(self.cluster.authorities)
        self.catalog = catalog
        staticZones = configuration.zonesDirectory.map { StaticZones(directory: $0, catalog: catalog) }
        let resolver = configuration.forwarding.map { UpstreamResolver(configuration: $0) }
        metrics = configuration.metricsFactory.map { DNSMetrics(factory: $0, queryLog: configuration.queryLog) }
        malformed = metrics?.malformed ?? MalformedTally()
        if let resolver { Self.observe(resolver, factory: configuration.metricsFactory) }
        let recursion = configuration.forwarding.map { forwarding in
            RecursionPolicy(allowed: configuration.allowRecursion, domains: forwarding.groups.filter { !$0.servers.isEmpty }.map(\.domain))
        }
        var cacheClock: (@Sendable () -> UInt64)?
        if let cache = resolver?.cache { cacheClock = { cache.now() } }
        let autopath = configuration.autopathHostDomains.map { [cluster = self.cluster, cacheClock] in
            Autopath(pods: cluster, hostDomains: $0, now: cacheClock)
        }
        let responder = Responder(catalog: catalog, allowTransfer: configuration.allowTransfer,
                                  recursion: recursion, autopath: autopath)
        server = DNSServer(configuration: .init(addresses: configuration.dnsAddresses, udpSockets: configuration.udpSockets,
                                                tcpLimits: configuration.tcpLimits),
                           handler: QueryHandler(responder: responder, resolver: resolver, observer: metrics ?? malformed),
                           logger: logger)
    }

    /// Whose manifests these are (only with a shared store).
    var manifestOwner: String? { registry.shared == nil ? nil : configuration.manifestOwner }

    /// Loads the configured manifests (one durable batch); returns how many objects changed.
    /// With a shared store, only the manifests named by `manifests` are applied: the embedded
    /// example cluster is for a server of its own.
    @discardableResult
    public func loadManifests() async -> Int {
        let embedded = registry.shared == nil ? configuration.embeddedManifests : nil
        guard !configuration.manifests.isEmpty || embedded != nil else { return 0 }
        let changed = await ManifestLoader.reload(paths: configuration.manifests, embedded: embedded,
                                                  into: registry, logger: logger, owner: manifestOwner) { version in
            self.seeded.withLock { $0 = $0 ?? version }
        }
        Self.releaseFreedMemory()
        return changed
    }

    /// Hands the heap's free pages back to the system. The YAML decoder's high-water mark is
    /// several times what the objects keep (about 100 MB at 10,000 services), and glibc keeps
    /// freed memory for reuse: without this, the process would stay at that peak.
    static func releaseFreedMemory() {
        #if os(Linux)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// Upstream latency into a timer per upstream.
    static func observe(_ resolver: UpstreamResolver, factory: (any MetricsFactory)?) {
        guard let factory else { return }
        let timers = Mutex<[SocketAddress: CoreMetrics.Timer]>([:])
        resolver.observer = { upstream, seconds, _ in
            let timer = timers.withLock { timers in
                if let timer = timers[upstream] { return timer }
                let timer = CoreMetrics.Timer(label: "clusterdns_dns_upstream_duration_seconds", dimensions: [("upstream", upstream.description)], factory: factory)
                timers[upstream] = timer
                return timer
            }
            timer.recordNanoseconds(Int64(seconds * 1e9))
        }
    }

    /// New upstreams, cache settings or recursion policy while serving: queries that arrive from
    /// now on use them; questions already upstream finish with the old resolver (whose cache
    /// goes with it). Nil `forwarding`: authoritative only.
    public func reconfigureForwarding(_ forwarding: UpstreamResolver.Configuration?, allowRecursion: [IPPrefix]) {
        let resolver = forwarding.map { UpstreamResolver(configuration: $0) }
        if let resolver { Self.observe(resolver, factory: configuration.metricsFactory) }
        var responder = server.handler.responder
        responder.recursion = forwarding.map { forwarding in
            RecursionPolicy(allowed: allowRecursion, domains: forwarding.groups.filter { !$0.servers.isEmpty }.map(\.domain))
        }
        // The old resolver finishes the questions it has in flight (within its deadline), then
        // stops; its counters stay in the totals.
        if let old = server.handler.replace(responder: responder, resolver: resolver) {
            pastResolvers.withLock { $0.finishing.append(old) }
            let grace = old.configuration.deadline.wholeNanoseconds + 500_000_000
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: grace))) { [self] in
                old.stop()
                pastResolvers.withLock { past in
                    past.finishing.removeAll { $0 === old }
                    past.stopped = past.stopped + ResolverTotals(old)
                }
            }
        }
        logger.info("forwarding reconfigured", metadata: [
            "upstreams": "\(forwarding?.groups.flatMap { $0.servers.map(\.description) }.joined(separator: " ") ?? "none")"])
    }

    /// Reloads the static zones (`force`: every file, as on SIGHUP); a changed set of zones
    /// empties the resolver's cache, since names it now covers must stop being forwarded.
    @discardableResult
    public func reloadZones(force: Bool = false) -> StaticZones.Report? {
        guard let staticZones else { return nil }
        let report = staticZones.reload(force: force, logger: logger)
        if !report.loaded.isEmpty || !report.removed.isEmpty { resolver?.cache.removeAll() }
        return report
    }

    /// The counters of every resolver this service has had (the current one, those replaced
    /// and finishing, those stopped), summed: monotonic across reconfigurations.
    public var resolverTotals: ResolverTotals {
        let (finishing, stopped) = pastResolvers.withLock { ($0.finishing, $0.stopped) }
        return (finishing + (resolver.map { [$0] } ?? [])).reduce(stopped) { $0 + ResolverTotals($1) }
    }

    /// Whether to send this server traffic: the cluster zone compiled from the loaded registry,
    /// with a shared store the manifests' first pass served too (unless a local copy is served
    /// while the store is listed), and every DNS address bound and answering (a readiness
    /// probe's question).
    public var isServing: Bool {
        guard cluster.zone.isLoaded, let seeded = seeded.withLock({ $0 }), cluster.resourceVersion >= seeded else { return false }
        return server.isServing
    }

    public func run() async throws {
        reloadZones()
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let shared = registry.shared {
                try await startFollowing(shared, in: &group)
            } else {
                await loadManifests()
            }
            try await serve(in: &group)
        }
    }

    /// With a shared store: follows it, and waits until there is a state to serve (the first
    /// list, or the local copy of the last state seen); the manifests are applied beside.
    func startFollowing(_ shared: any SharedRegistryStore, in group: inout ThrowingTaskGroup<Void, any Error>) async throws {
        let logger = logger
        let registry = registry
        group.addTask {
            await cancelWhenGracefulShutdown {
                await registry.followSharedStore { problem in
                    logger.warning("registry store", metadata: ["problem": "\(problem)"])
                }
            }
        }
        let copied = registry.resourceVersion > 0
        if copied {
            // A replica restarting with the store out of reach serves its copy: it is ready
            // without waiting for manifests it cannot write.
            seeded.withLock { $0 = 0 }
            logger.notice("serving the local copy of the registry until \(shared.name) is listed",
                          metadata: ["resourceVersion": "\(registry.resourceVersion)"])
        }
        if !copied {
            await registry.waitUntilListed()
            try Task.checkCancellation()
        }
        group.addTask { _ = await cancelWhenGracefulShutdown { await self.loadManifests() } as Int? }
    }

    /// `repairClaims` every `claimRepairInterval`, the first once the store has been listed.
    /// Started by `serve`, after the zone's compilation: reading every claim is work a start at
    /// 10,000 services need not wait on.
    func repairClaimsPeriodically() async {
        let interval = configuration.claimRepairInterval
        await cancelWhenGracefulShutdown {
            await self.registry.waitUntilListed()
            while !Task.isCancelled {
                await self.repairClaims()
                // Every claim was read and let go (megabytes at 10,000 services).
                Self.releaseFreedMemory()
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One pass of `Registry.repairClaims`, each change and conflict in the log.
    @discardableResult
    public func repairClaims() async -> ClaimRepair? {
        let report: ClaimRepair
        do throws(StoreError) { report = try await registry.repairClaims() } catch {
            logger.warning("allocation claims not checked", metadata: ["problem": "\(error)"])
            return nil
        }
        for entry in report.released {
            logger.notice("released an allocation nothing holds", metadata: ["claim": "\(entry.claim)", "owner": "\(entry.owner)"])
        }
        for entry in report.restored {
            logger.notice("claimed an allocation held without a claim", metadata: ["claim": "\(entry.claim)", "owner": "\(entry.owner)"])
        }
        for conflict in report.conflicts { logger.error("allocation conflict", metadata: ["conflict": "\(conflict)"]) }
        claimRepairs.withLock {
            $0.released += report.released.count
            $0.restored += report.restored.count
            $0.conflicts = report.conflicts.count
        }
        return report
    }

    func serve(in group: inout ThrowingTaskGroup<Void, any Error>) async throws {
        registry.markLoaded()
        cluster.update(registry.snapshot())
        Self.releaseFreedMemory()
        logger.info("registry loaded", metadata: ["objects": "\(registry.snapshot().objects.count)",
                                                  "resourceVersion": "\(registry.resourceVersion)"])
        if registry.shared != nil, configuration.claimRepairInterval > .zero {
            group.addTask { await self.repairClaimsPeriodically() }
        }
        let updater = ZoneUpdater(registry: registry, cluster: cluster, logger: logger, programmingLatency: metrics?.programmingLatency)
        let watcher = configuration.manifests.isEmpty ? nil
            : ManifestWatcher(paths: configuration.manifests, registry: registry, logger: logger, owner: manifestOwner)
        group.addTask { try await updater.run() }
        if let staticZones {
            group.addTask {
                let changes = FileChanges(paths: [staticZones.directory])
                defer { changes.stop() }
                await cancelWhenGracefulShutdown {
                    for await _ in changes.signals where staticZones.hasChanges { self.reloadZones() }
                }
            }
        }
        if let watcher { group.addTask { try await watcher.run() } }
        group.addTask { try await self.server.run() }
        // Malformed packets are summarised once a minute, never logged one by one.
        group.addTask {
            try? await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(60))
                    let count = self.malformed.take()
                    if count > 0 { self.logger.notice("malformed queries in the last minute", metadata: ["count": "\(count)"]) }
                }
            }
        }
        // The first part to fail (a DNS address that cannot be bound) ends the service and
        // cancels the others; `waitForAll` would first wait for parts that never end.
        while try await group.next() != nil {}
    }
}

#if os(Linux)
/// glibc's `malloc_trim` (in <malloc.h>, which the Glibc module does not export).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
