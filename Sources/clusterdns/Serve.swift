import ArgumentParser
import ClusterDNS
import DNSAuthority
import DNSServer
import DNSWire
import DispatchSockets
import Logging
import NetAddress
import ServiceLifecycle
import ServiceRegistry

/// `clusterdns serve`: the registry, the cluster zone and the DNS server in one process.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve cluster DNS (UDP and TCP) from Kubernetes manifests.",
        discussion: """
            With no --manifests it serves a small example cluster (the kubernetes service in \
            default, kube-dns, web, a headless db, an ExternalName), so that \
            `dig @127.0.0.1 -p 5353 kubernetes.default.svc.cluster.local` answers at once.
            """
    )

    @Option(help: "A YAML file of settings with the flags' names as keys (dns: [\"127.0.0.1:53\"], ttl: 30, ...); flags on the command line win.")
    var config: String?

    @Option(name: .customLong("dns"), help: "Address to serve DNS on, UDP and TCP (repeatable; IPv4 or [IPv6]:port).")
    var dnsAddresses: [String] = ["127.0.0.1:5353"]

    @Option(help: "The cluster domain.")
    var domain: String = "cluster.local"

    @Option(help: "Manifest files or directories to load (repeatable). Default: the embedded example cluster.")
    var manifests: [String] = []

    @Option(help: "TTL of cluster answers, 0-3600 seconds.")
    var ttl: UInt32 = 5

    @Option(help: "Pod records: disabled, insecure or verified.")
    var pods: String = "verified"

    @Option(help: "Service CIDR (repeatable: one IPv4, one IPv6).")
    var serviceCIDR: [String] = ["10.96.0.0/12"]

    @Option(help: "NodePort range.")
    var nodePortRange: String = "30000-32767"

    @Option(help: "The registry's state directory (SQLite), or `memory`.")
    var state: String = "memory"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "A client network allowed to transfer the cluster zone with AXFR over TCP (repeatable; none by default).")
    var allowTransfer: [String] = []

    @Option(help: "Log format: text or json (one object per line).")
    var logFormat: String = "text"

    @Option(help: "Sockets per DNS address for UDP (SO_REUSEPORT).")
    var udpSockets: Int = 2

    @Option(help: "Address of the HTTP endpoints /health and /ready, or `none`.")
    var http: String = "127.0.0.1:9153"

    @Option(help: "After SIGTERM: how long /ready fails while DNS still answers (5s, 500ms).")
    var lameduck: String = "5s"

    func validate() throws {
        guard (0...3600).contains(ttl) else { throw ValidationError("--ttl must be between 0 and 3600") }
        guard ClusterConfiguration.PodsMode(rawValue: pods) != nil else {
            throw ValidationError("--pods must be disabled, insecure or verified")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not a level") }
        guard logFormat == "text" || logFormat == "json" else { throw ValidationError("--log-format must be text or json") }
        for address in dnsAddresses where SocketAddress(parsing: address) == nil {
            throw ValidationError("--dns \(address): expected ADDRESS:PORT or [IPv6]:PORT")
        }
        if http != "none" && SocketAddress(parsing: http) == nil {
            throw ValidationError("--http \(http): expected ADDRESS:PORT, [IPv6]:PORT or none")
        }
        for cidr in allowTransfer where (try? IPPrefix(parsing: cidr)) == nil {
            throw ValidationError("--allow-transfer \(cidr): expected a CIDR such as 10.0.0.0/8")
        }
        guard parseDuration(lameduck) != nil else { throw ValidationError("--lameduck \(lameduck): expected a duration such as 5s or 500ms") }
    }

    func run() async throws {
        if let config {
            // Settings from the file first, then the command line's own, parsed again: for a
            // single-valued flag the last occurrence wins.
            let all = Array(CommandLine.arguments.dropFirst())
            let commandLine = ConfigFile.removingConfigFlag(all.firstIndex(of: "serve").map { Array(all[(all.index(after: $0))...]) } ?? all)
            let arguments = ConfigFile.merging(try ConfigFile.arguments(from: config), under: commandLine)
            let merged = try Serve.parse(arguments)
            try merged.validate()
            try await merged.run()
            return
        }
        if logFormat == "json" {
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        }
        var logger = Logger(label: "clusterdns")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let domainName: DomainName
        do { domainName = try DomainName(unicode: domain.hasSuffix(".") ? domain : domain + ".") } catch {
            throw ValidationError("--domain: \(error)")
        }
        let configuration = ClusterDNSConfiguration(
            dnsAddresses: dnsAddresses.compactMap { SocketAddress(parsing: $0) },
            cluster: ClusterConfiguration(domain: domainName, ttl: ttl,
                                          pods: ClusterConfiguration.PodsMode(rawValue: pods) ?? .verified),
            registry: try registryConfiguration(serviceCIDRs: serviceCIDR, nodePortRange: nodePortRange),
            stateDirectory: state == "memory" ? nil : state,
            manifests: manifests,
            embeddedManifests: manifests.isEmpty ? defaultManifests : nil,
            udpSockets: udpSockets,
            allowTransfer: allowTransfer.compactMap { try? IPPrefix(parsing: $0) })
        let dns: ClusterDNSService
        do { dns = try ClusterDNSService(configuration: configuration, logger: logger) } catch {
            throw ValidationError("\(error)")
        }
        // Shutdown runs in reverse: the lame duck first (not ready, still answering), then DNS.
        let readiness = Readiness(registry: dns.registry)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let address = SocketAddress(parsing: http) {
            services.append(.init(service: HealthService(address: address, readiness: readiness, logger: logger)))
        }
        services.append(.init(service: dns))
        services.append(.init(service: LameDuckService(readiness: readiness, period: parseDuration(lameduck) ?? .seconds(5), logger: logger)))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}
