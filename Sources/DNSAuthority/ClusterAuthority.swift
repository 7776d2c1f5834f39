public import DNSWire
public import ServiceRegistry
import Synchronization

/// The cluster zone as the server sees it: the zone compiled from the latest registry
/// snapshot, swapped atomically when the registry changes. Readers never wait for a rebuild.
public final class ClusterAuthority: Authority {
    let current: Mutex<(zone: ClusterZone, compiled: CompiledZone)>
    public let configuration: ClusterConfiguration

    public init(configuration: ClusterConfiguration, snapshot: RegistrySnapshot = RegistrySnapshot()) {
        self.configuration = configuration
        let zone = ClusterZone(snapshot: snapshot, configuration: configuration)
        current = Mutex((zone, CompiledZone(zone: zone)))
    }

    public var origin: DomainName { configuration.domain }

    /// The zone now being served.
    public var zone: ClusterZone { current.withLock { $0.zone } }

    /// The pre-encoded answers of the zone now being served.
    var compiled: CompiledZone { current.withLock { $0.compiled } }

    /// Compiles `snapshot` and starts serving it.
    public func update(_ snapshot: RegistrySnapshot) {
        let zone = ClusterZone(snapshot: snapshot, configuration: configuration)
        let compiled = CompiledZone(zone: zone)
        current.withLock { $0 = (zone, compiled) }
    }

    public func lookup(_ question: Question) -> Lookup { zone.lookup(question) }

    public func reverseLookup(_ question: Question) -> Lookup? { zone.reverseLookup(question) }
}
