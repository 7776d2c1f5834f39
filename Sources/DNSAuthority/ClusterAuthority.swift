public import DNSWire
public import ServiceRegistry
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
        init(_ zone: ClusterZone, _ version: UInt64) {
            self.zone = zone
            self.version = version
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

    public init(configuration: ClusterConfiguration, snapshot: RegistrySnapshot = RegistrySnapshot()) {
        self.configuration = configuration
        current = Mutex(Served(ClusterZone(snapshot: snapshot, configuration: configuration), snapshot.resourceVersion))
    }

    public var origin: DomainName { configuration.domain }

    public var namesTakeOnlyTheApexLetters: Bool { true }

    /// The zone now being served.
    public var zone: ClusterZone { served.zone }

    var served: Served { current.withLock { $0 } }

    /// The registry resource version the served zone reflects.
    public var resourceVersion: UInt64 { served.version }

    /// Compiles `snapshot` whole and starts serving it.
    public func update(_ snapshot: RegistrySnapshot) {
        let zone = ClusterZone(snapshot: snapshot, configuration: configuration)
        writer.withLock { _ in current.withLock { $0 = Served(zone, snapshot.resourceVersion) } }
    }

    /// Applies registry changes incrementally (only the services they touch are recompiled)
    /// and starts serving the result. `snapshot` is the registry's state after the events.
    /// Updates come from one writer (the zone updater); readers are never blocked by them.
    /// When the compiled changes have grown many, a fold into a new table starts on another
    /// thread and is adopted when done, without a change being lost or waiting for it.
    public func apply(_ events: some Sequence<WatchEvent>, snapshot: RegistrySnapshot) {
        writer.withLock { folding in
            let zone = served.zone.updated(with: events, snapshot: snapshot, foldChanges: false)
            current.withLock { $0 = Served(zone, snapshot.resourceVersion) }
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
