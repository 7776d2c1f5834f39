public import DNSAuthority
public import DNSWire
public import ServiceRegistry
public import NetAddress
import Dispatch
import Synchronization

/// The cluster zone as the server sees it: the zone compiled from the latest registry
/// snapshot, swapped atomically when the registry changes. Readers never wait for a rebuild.
public final class ClusterAuthority: Authority {
    /// The served zone behind one reference, so that a query takes one retain, not a copy of
    /// every map the zone holds.
    final class Served: Sendable {
        let zone: ClusterZone
        let version: UInt64
        /// The zone's answers for the fast path, made once per version.
        let precompiled: Precompiled
        init(_ zone: ClusterZone, _ version: UInt64) {
            self.zone = zone
            self.version = version
            precompiled = zone.precompiled
        }
    }

    let current: Mutex<Served>
    public let configuration: ClusterConfiguration
    /// Held by whoever changes the served zone: an update, or the adoption of a fold. `true`
    /// while a fold runs.
    let writer = Mutex(false)
    /// Where the compiled changes are folded into a new table (about 30 ms at 128,000 names),
    /// so that no update waits for it.
    let folds = DispatchQueue(label: "cluster zone fold", qos: .utility)

    /// Services compiled by whole compilations so far (`init` and `update`; `apply` compiles
    /// only what changed): at 10,000 services, each whole compilation is most of a start.
    public var servicesCompiledWhole: Int { compiledWhole.load(ordering: .relaxed) }
    let compiledWhole = Atomic<Int>(0)

    public init(configuration: ClusterConfiguration, snapshot: RegistrySnapshot = RegistrySnapshot()) {
        self.configuration = configuration
        current = Mutex(Served(ClusterZone(snapshot: snapshot, configuration: configuration), snapshot.resourceVersion))
        compiledWhole.add(snapshot.count(of: .service), ordering: .relaxed)
    }

    public var origin: DomainName { configuration.domain }

    public var namesTakeOnlyTheApexLetters: Bool { true }

    public var precompiled: Precompiled? { served.precompiled }

    public func transferRecords() -> [ResourceRecord]? {
        let zone = served.zone
        return [zone.soa] + zone.allRecords.filter { $0.type != .soa }
    }

    /// What the catalog serves for the cluster: the zone, the reverse zones of the service
    /// CIDRs (unknown addresses there are NXDOMAIN), and `in-addr.arpa.` and `ip6.arpa.` for
    /// the endpoints' addresses elsewhere (unknown ones fall through to forwarding, as CoreDNS's
    /// `fallthrough in-addr.arpa ip6.arpa`). More specific zones of the catalog (a static
    /// reverse zone) keep their names.
    public var authorities: [any Authority] {
        let reverse = configuration.serviceCIDRs.flatMap { $0.reverseZones() }
            + [try! DomainName("in-addr.arpa."), try! DomainName("ip6.arpa.")]
        return [self] + reverse.map { ReverseAuthority(origin: $0, cluster: self) }
    }

    /// The zone now being served.
    public var zone: ClusterZone { served.zone }

    var served: Served { current.withLock { $0 } }

    /// The registry resource version the served zone reflects.
    public var resourceVersion: UInt64 { served.version }

    /// Compiles `snapshot` whole and starts serving it.
    public func update(_ snapshot: RegistrySnapshot) {
        let zone = ClusterZone(snapshot: snapshot, configuration: configuration)
        compiledWhole.add(snapshot.count(of: .service), ordering: .relaxed)
        writer.withLock { _ in current.withLock { $0 = Served(zone, snapshot.resourceVersion) } }
    }

    /// Applies registry changes incrementally (only the services they touch are recompiled)
    /// and starts serving the result. `snapshot` is the registry's state after the events.
    /// Updates come from one writer (the zone updater); readers are never blocked by them.
    /// When the compiled changes have grown many, a fold into a new table starts on another
    /// thread and is adopted when done, without a change being lost or waiting for it.
    public func apply(_ events: some Sequence<WatchEvent>, snapshot: RegistrySnapshot) {
        let events = Array(events)
        writer.withLock { folding in
            let zone = served.zone.updated(with: events, snapshot: snapshot, foldChanges: false)
            // The version the zone now reflects is the last event's, not the snapshot's: the
            // snapshot may hold later changes whose events are still to come, and a watcher cut
            // off before them must see that the zone lacks them (and compile it whole).
            var version = served.version
            for event in events { version = max(version, event.resourceVersion) }
            current.withLock { $0 = Served(zone, version) }
            if !folding, zone.compiled.needsCompaction {
                folding = true
                startFold(zone.compiled.prepareFold())
            }
        }
    }

    private func startFold(_ fold: CompiledZone.Fold) {
        folds.async { [self] in
            let folded = fold.run()
            writer.withLock { folding in
                var zone = served.zone
                if zone.compiled.adopt(folded) {
                    current.withLock { $0 = Served(zone, $0.version) }
                }
                // Changes that came in the meantime may call for another fold already.
                if zone.compiled.needsCompaction {
                    startFold(zone.compiled.prepareFold())
                } else {
                    folding = false
                }
            }
        }
    }

    /// Waits until no fold is running (tests and benchmarks: a settled table).
    public func waitForFolds() {
        while writer.withLock({ $0 }) { folds.sync {} }
    }

    public func lookup(_ question: Question) -> Lookup { served.zone.lookup(question) }

    public func reverseLookup(_ question: Question) -> Lookup? { served.zone.reverseLookup(question) }
}

/// One reverse zone the cluster answers: PTRs of cluster IPs and endpoint addresses, from the
/// zone being served.
public struct ReverseAuthority: Authority {
    public let origin: DomainName
    let cluster: ClusterAuthority

    public func lookup(_ question: Question) -> Lookup {
        cluster.reverseLookup(question) ?? .fallThrough
    }
}

extension ClusterAuthority: SearchPathSource {
    /// From the pod addresses of the zone being served: no copy of the pods of its own.
    public func clusterSearchPath(of client: IPAddress) -> [DomainName]? {
        let zone = served.zone
        guard let namespace = zone.pods.searchNamespace(of: client),
              let first = try? DomainName(labels: [ArraySlice(namespace.utf8)] + zone.svcZone.labels) else { return nil }
        return [first, zone.svcZone, origin]
    }
}
