public import DNSWire
public import ServiceRegistry
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

    public init(configuration: ClusterConfiguration, snapshot: RegistrySnapshot = RegistrySnapshot()) {
        self.configuration = configuration
        current = Mutex(Served(ClusterZone(snapshot: snapshot, configuration: configuration), snapshot.resourceVersion))
    }

    public var origin: DomainName { configuration.domain }

    /// The zone now being served.
    public var zone: ClusterZone { served.zone }

    var served: Served { current.withLock { $0 } }

    /// The registry resource version the served zone reflects.
    public var resourceVersion: UInt64 { served.version }

    /// Compiles `snapshot` whole and starts serving it.
    public func update(_ snapshot: RegistrySnapshot) {
        let zone = ClusterZone(snapshot: snapshot, configuration: configuration)
        current.withLock { $0 = Served(zone, snapshot.resourceVersion) }
    }

    /// Applies registry changes incrementally (only the services they touch are recompiled)
    /// and starts serving the result. `snapshot` is the registry's state after the events.
    /// Updates come from one writer (the zone updater); readers are never blocked by them.
    public func apply(_ events: some Sequence<WatchEvent>, snapshot: RegistrySnapshot) {
        let zone = served.zone.updated(with: events, snapshot: snapshot)
        current.withLock { $0 = Served(zone, snapshot.resourceVersion) }
    }

    public func lookup(_ question: Question) -> Lookup { served.zone.lookup(question) }

    public func reverseLookup(_ question: Question) -> Lookup? { served.zone.reverseLookup(question) }
}
