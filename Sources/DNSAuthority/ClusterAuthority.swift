public import DNSWire
public import ServiceRegistry
import Synchronization

/// The cluster zone as the server sees it: the zone compiled from the latest registry
/// snapshot, swapped atomically when the registry changes. Readers never wait for a rebuild.
public final class ClusterAuthority: Authority {
    let current: Mutex<(zone: ClusterZone, version: UInt64)>
    public let configuration: ClusterConfiguration

    public init(configuration: ClusterConfiguration, snapshot: RegistrySnapshot = RegistrySnapshot()) {
        self.configuration = configuration
        current = Mutex((ClusterZone(snapshot: snapshot, configuration: configuration), snapshot.resourceVersion))
    }

    public var origin: DomainName { configuration.domain }

    /// The zone now being served.
    public var zone: ClusterZone { current.withLock { $0.zone } }

    /// The registry resource version the served zone reflects.
    public var resourceVersion: UInt64 { current.withLock { $0.version } }

    /// Compiles `snapshot` whole and starts serving it.
    public func update(_ snapshot: RegistrySnapshot) {
        let zone = ClusterZone(snapshot: snapshot, configuration: configuration)
        current.withLock { $0 = (zone, snapshot.resourceVersion) }
    }

    /// Applies registry changes incrementally (only the services they touch are recompiled)
    /// and starts serving the result. `snapshot` is the registry's state after the events.
    public func apply(_ events: some Sequence<WatchEvent>, snapshot: RegistrySnapshot) {
        let zone = self.zone.updated(with: events, snapshot: snapshot)
        current.withLock { $0 = (zone, snapshot.resourceVersion) }
    }

    public func lookup(_ question: Question) -> Lookup { zone.lookup(question) }

    public func reverseLookup(_ question: Question) -> Lookup? { zone.reverseLookup(question) }
}
