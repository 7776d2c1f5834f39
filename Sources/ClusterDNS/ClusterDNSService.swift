public import DNSAuthority
public import DNSServer
public import DispatchSockets
public import NetAddress
public import Logging
public import ServiceLifecycle
public import ServiceRegistry
import Foundation

/// Everything an embedder chooses: where DNS is served, the cluster domain and its answers,
/// the registry's allocation ranges and store, and the manifests to load and watch.
public struct ClusterDNSConfiguration: Sendable {
    public var dnsAddresses: [SocketAddress]
    public var cluster: ClusterConfiguration
    public var registry: RegistryConfiguration
    /// The registry's state directory (SQLite), or nil to keep it in memory.
    public var stateDirectory: String?
    /// Manifest files or directories loaded at start and re-applied when they change.
    public var manifests: [String]
    /// Manifest text loaded at start when `manifests` is empty.
    public var embeddedManifests: String?
    public var udpSockets: Int
    public var tcpLimits: TCPMessageServer.Limits
    /// Clients allowed to transfer the cluster zone (AXFR over TCP).
    public var allowTransfer: [IPPrefix]

    public init(dnsAddresses: [SocketAddress] = [SocketAddress(parsing: "127.0.0.1:5353")!],
                cluster: ClusterConfiguration = ClusterConfiguration(),
                registry: RegistryConfiguration = RegistryConfiguration(),
                stateDirectory: String? = nil, manifests: [String] = [], embeddedManifests: String? = nil,
                udpSockets: Int = 2, tcpLimits: TCPMessageServer.Limits = .init(), allowTransfer: [IPPrefix] = []) {
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
    public let server: DNSServer
    let logger: Logger

    public init(configuration: ClusterDNSConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        if let directory = configuration.stateDirectory {
            registry = try Registry(configuration: configuration.registry, storage: SQLiteStorage(directory: directory))
        } else {
            registry = try Registry(configuration: configuration.registry)
        }
        var cluster = configuration.cluster
        if cluster.serviceCIDRs.isEmpty { cluster.serviceCIDRs = configuration.registry.serviceCIDRs }
        if cluster.serverAddresses.isEmpty {
            cluster.serverAddresses = configuration.dnsAddresses.map(\.address).filter { !$0.isUnspecified }
        }
        self.cluster = ClusterAuthority(configuration: cluster, snapshot: registry.snapshot())
        server = DNSServer(configuration: .init(addresses: configuration.dnsAddresses, udpSockets: configuration.udpSockets,
                                                tcpLimits: configuration.tcpLimits),
                           responder: Responder(catalog: Catalog([self.cluster]), cluster: self.cluster,
                                                allowTransfer: configuration.allowTransfer),
                           logger: logger)
    }

    /// Loads the configured manifests (one durable batch); returns how many objects changed.
    @discardableResult
    public func loadManifests() -> Int {
        ManifestLoader.reload(paths: configuration.manifests, embedded: configuration.embeddedManifests,
                              into: registry, logger: logger)
    }

    public func run() async throws {
        loadManifests()
        registry.markLoaded()
        cluster.update(registry.snapshot())
        logger.info("registry loaded", metadata: ["objects": "\(registry.snapshot().objects.count)",
                                                  "resourceVersion": "\(registry.resourceVersion)"])
        let updater = ZoneUpdater(registry: registry, cluster: cluster, logger: logger)
        let watcher = configuration.manifests.isEmpty ? nil
            : ManifestWatcher(paths: configuration.manifests, registry: registry, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await updater.run() }
            if let watcher { group.addTask { try await watcher.run() } }
            group.addTask { try await self.server.run() }
            try await group.waitForAll()
        }
    }
}
