#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Prometheus
import ClusterDNS
import DNSAuthority
import KubernetesDNS
import DNSResolver
import DNSServer
import EndpointForwarder
import EtcdClient
import EtcdStore
import FoundationEssentials
import KubernetesAPI
import KubernetesAPIServer
import DNSWire
import DispatchSockets
import Logging
import NetAddress
import ServiceLifecycle
import ServiceRegistry
import WorkloadProbes
import Synchronization

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

    @Flag(help: "Autopath: a pod's query for a name of its namespace that does not exist is answered with the first name of the pod's search path that does (behind a CNAME), so that one round trip replaces the ndots:5 walk. Needs --pods verified; only queries from a registered pod's own address (not hostNetwork) are walked.")
    var autopath = false

    @Option(help: "With --autopath: the nodes' search domains, after the cluster's in a pod's search path (repeatable). Default: the search line of --resolv-conf.")
    var searchPath: [String] = []

    @Option(help: "Service CIDR (repeatable: one IPv4, one IPv6).")
    var serviceCIDR: [String] = ["10.96.0.0/12"]

    @Option(help: "NodePort range.")
    var nodePortRange: String = "30000-32767"

    @Option(help: "The registry's state directory (SQLite), or `memory`.")
    var state: String = "memory"

    @Option(help: "An etcd member to keep the registry in, http://HOST:PORT or https://HOST:PORT (repeatable), as kube-apiserver's --etcd-servers: every replica given the same etcd and prefix serves one registry. With --state, the state directory keeps a copy of the last state seen, served after a restart while etcd is out of reach.")
    var etcd: [String] = []

    @Option(help: "The key prefix of the registry in etcd.")
    var etcdPrefix: String = "/clusterdns"

    @Option(help: "With --etcd and --forwarder or --probes: the lease this node holds in etcd as its heartbeat (renewed every quarter of it); when it lapses, every replica takes the node's endpoints out and the other probers take its pods. 0s: no lease (and every prober probes every pod that names no node).")
    var nodeLeaseDuration: String = "40s"

    @Option(help: "With --etcd: how often this replica brings the allocation claims in etcd (ClusterIPs, node ports, load-balancer and pod IPs) in line with the objects, releasing claims nothing holds and claiming allocations held without one, as kube-apiserver's repair controllers do; the first time once etcd is listed. 0s: never.")
    var etcdClaimRepairInterval: String = "3m"

    @Option(help: "PEM certificates of the authority that signed etcd's serving certificates.")
    var etcdCafile: String? = nil

    @Option(help: "This replica's client certificate for etcd (PEM).")
    var etcdCertfile: String? = nil

    @Option(help: "The key of --etcd-certfile (PEM).")
    var etcdKeyfile: String? = nil

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "A client network allowed to transfer the cluster zone with AXFR over TCP (repeatable; none by default).")
    var allowTransfer: [String] = []

    @Option(help: "Log format: text or json (one object per line).")
    var logFormat: String = "text"

    @Option(help: "Sockets per DNS address for UDP (SO_REUSEPORT). Default: the cores this process may use.")
    var udpSockets: Int = Socket.usableCores

    @Option(help: "Address of the HTTP endpoints /health, /ready and /metrics (Prometheus), or `none` (then no metrics are kept).")
    var http: String = "127.0.0.1:9153"

    @Option(help: "After SIGTERM: how long /ready fails while DNS still answers (5s, 500ms).")
    var lameduck: String = "5s"

    @Option(help: "Directory of static zone files, each NAME.zone serving zone NAME (reloaded on change and SIGHUP); `none` to serve none. A missing default directory is skipped.")
    var zones: String = "zones"

    @Option(help: "Upstream resolver for every name outside our zones, ADDR[:PORT] (repeatable). Default: the nameservers of --resolv-conf.")
    var upstream: [String] = []

    @Option(help: "resolv.conf to take upstreams from when no --upstream is given (our own addresses skipped); `none`: no forwarding.")
    var resolvConf: String = "/etc/resolv.conf"

    @Option(help: "Forward a domain to its own servers: NAME=ADDR[:PORT][,ADDR[:PORT]...] (repeatable).")
    var stubDomain: [String] = []

    @Option(help: "Client network allowed recursion (repeatable). Default: loopback and private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fe80::/10); others get REFUSED for names outside our zones.")
    var allowRecursion: [String] = []

    @Option(help: "Upstream order: random, round_robin or sequential.")
    var policy: String = "random"

    @Option(help: "Consecutive failures after which an upstream is marked down and probed.")
    var maxFails: Int = 2

    @Option(help: "Questions waiting upstream at most; more are REFUSED.")
    var maxConcurrent: Int = 1000

    @Option(help: "Read timeout of one upstream query (2s, 500ms).")
    var upstreamTimeout: String = "2s"

    @Option(help: "Overall deadline of a forwarded question, across upstreams.")
    var forwardDeadline: String = "5s"

    @Option(help: "Forwarded answers kept in the cache at most (0: no cache).")
    var cacheSize: Int = 10_000

    @Option(help: "Minimum TTL of a cached answer, seconds.")
    var cacheMinTTL: UInt32 = 0

    @Option(help: "Maximum TTL of a cached positive answer, seconds.")
    var cacheMaxTTL: UInt32 = 3600

    @Option(help: "Maximum TTL of a cached negative answer (NXDOMAIN, NODATA), seconds.")
    var cacheNegativeTTL: UInt32 = 1800

    @Option(help: "How long an upstream SERVFAIL is cached, seconds (0: not cached).")
    var cacheServfailTTL: UInt32 = 5

    @Option(help: "How long an upstream's NXDOMAIN or NODATA without an SOA is cached, seconds (0: not cached).")
    var cacheNoSoaTTL: UInt32 = 5

    @Option(help: "Serve expired answers for this long when every upstream fails (RFC 8767), e.g. 1h; 0 disables.")
    var serveStale: String = "0s"

    @Option(help: "Refresh a popular cached answer when less than this percentage of its TTL is left (0 disables).")
    var prefetch: Int = 0

    @Flag(help: "Log every query (client, name, type, transport, rcode, size, time) at info level, whatever --log-level says.")
    var logQueries = false

    @Option(help: "With --log-queries: log one query in N.")
    var logQueriesSample: Int = 1

    @Flag(help: "Also run the endpoint forwarder: listen on every Service's ClusterIP:port (node ports, load-balancer and external IPs too) and relay TCP and UDP to ready endpoints.")
    var forwarder = false

    @Option(help: "How service addresses become local: bind (they already are: a service CIDR in 127.0.0.0/8, or assigned by you) or interface (assigned to --forwarder-interface through netlink; needs CAP_NET_ADMIN).")
    var forwarderMode: String = "bind"

    @Option(help: "The interface of --forwarder-mode interface; a dummy interface of this name is created when there is none.")
    var forwarderInterface: String = "clusterdns0"

    @Flag(help: "Run the readiness and startup probes (httpGet, tcpSocket, grpc; exec with --probes-exec) of the pods on this node (spec.nodeName is --node-name; while no pod names a node, every pod, shared with the other replicas that probe when the registry is in etcd), as the kubelet would: each result is the pod's Ready condition, which endpoints, DNS and the forwarder follow.")
    var probes = false

    @Flag(help: "With --probes, also run exec probes, as commands on this node with the daemon's rights (off: whoever may write a pod could otherwise run commands as the daemon).")
    var probesExec = false

    @Option(help: "This node's name, for trafficPolicy Local and its node-port addresses. Default: the host name.")
    var nodeName: String?

    @Option(help: "Address node ports listen on (repeatable). Default: the InternalIP/ExternalIP of the Node named --node-name.")
    var nodeAddress: [String] = []

    @Option(help: "Idle timeout of a forwarded UDP flow.")
    var forwarderUDPTimeout: String = "30s"

    @Option(help: "Idle timeout of a forwarded TCP connection.")
    var forwarderTCPTimeout: String = "15m"

    @Option(help: "Forwarded UDP flows per service port at most.")
    var forwarderMaxFlows: Int = 10_000

    @Flag(help: "Reset the forwarded TCP connections of an endpoint when it stops being ready or goes away (default: let them finish, as kube-proxy does). UDP flows always move to a ready endpoint.")
    var forwarderCloseOnRemoval = false

    @Option(name: .customLong("api"), help: "Serve the registry as a Kubernetes API (kubectl) over HTTPS on ADDRESS:PORT (repeatable). Off by default.")
    var apiAddresses: [String] = []

    @Option(help: "Bearer tokens of the API, kube-apiserver's format: token,user,uid,\"group1,group2\" per line; the group clusterdns:viewers may read only. Default: one admin token, generated and written into --api-kubeconfig only.")
    var apiTokenFile: String? = nil

    @Option(help: "The API's TLS certificate (PEM, the chain). Default: a self-signed one, made at the first start and kept in the --state directory as apiserver.crt.")
    var apiTlsCert: String? = nil

    @Option(help: "The key of --api-tls-cert (PEM).")
    var apiTlsKey: String? = nil

    @Option(help: "PEM certificates of the authorities whose client certificates authenticate API users, as kube-apiserver's --client-ca-file: the subject's CN is the user, each O a group (clusterdns:viewers may read only).")
    var apiClientCaFile: String? = nil

    @Option(help: "Where to write a kubeconfig for the API (mode 0600). Default: kubeconfig in the --state directory, or clusterdns-PID.kubeconfig in $TMPDIR (/tmp) with --state memory.")
    var apiKubeconfig: String? = nil

    /// The config file this instance came from, re-read on SIGHUP (not a flag).
    var reloadSource: ConfigSource? = nil

    enum CodingKeys: String, CodingKey {
        case config, dnsAddresses, domain, manifests, ttl, pods, autopath, searchPath, serviceCIDR, nodePortRange, state, logLevel, allowTransfer,
             logFormat, udpSockets, http, lameduck, zones, upstream, resolvConf, stubDomain, allowRecursion, policy, maxFails,
             maxConcurrent, upstreamTimeout, forwardDeadline, cacheSize, cacheMinTTL, cacheMaxTTL, cacheNegativeTTL,
             cacheServfailTTL, cacheNoSoaTTL, serveStale, prefetch, logQueries, logQueriesSample, forwarder, forwarderMode, nodeName,
             nodeAddress, forwarderUDPTimeout, forwarderTCPTimeout, forwarderMaxFlows, forwarderInterface, apiAddresses,
             apiTokenFile, apiKubeconfig, apiTlsCert, apiTlsKey, apiClientCaFile, etcd, etcdPrefix, etcdCafile, etcdCertfile,
             etcdKeyfile, nodeLeaseDuration, etcdClaimRepairInterval, probes, probesExec, forwarderCloseOnRemoval
    }

    /// How to reach etcd, from the flags; nil without --etcd.
    func etcdConfiguration() throws -> EtcdConfiguration? {
        guard !etcd.isEmpty else {
            if etcdCafile != nil || etcdCertfile != nil || etcdKeyfile != nil {
                throw ValidationError("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd")
            }
            return nil
        }
        guard etcdPrefix.hasPrefix("/"), etcdPrefix.count > 1 else {
            throw ValidationError("--etcd-prefix \(etcdPrefix): expected a key prefix such as /clusterdns")
        }
        do {
            return try EtcdConfiguration(urls: etcd, caFile: etcdCafile, certFile: etcdCertfile, keyFile: etcdKeyfile)
        } catch {
            throw ValidationError("--etcd: \(error)")
        }
    }

    func validate() throws {
        guard EndpointForwarder.Mode(rawValue: forwarderMode) != nil else {
            throw ValidationError("--forwarder-mode must be bind or interface")
        }
        for address in nodeAddress where IPAddress(address) == nil {
            throw ValidationError("--node-address \(address): expected an IPv4 or IPv6 address")
        }
        for (flag, value) in [("--forwarder-udp-timeout", forwarderUDPTimeout), ("--forwarder-tcp-timeout", forwarderTCPTimeout)]
            where parseDuration(value) == nil {
            throw ValidationError("\(flag) \(value): expected a duration such as 30s or 15m")
        }
        guard forwarderMaxFlows >= 1 else { throw ValidationError("--forwarder-max-flows must be at least 1") }
        guard !probesExec || probes else { throw ValidationError("--probes-exec goes with --probes") }
        _ = try etcdConfiguration()
        guard let lease = parseDuration(nodeLeaseDuration), lease == .zero || lease >= .seconds(4) else {
            throw ValidationError("--node-lease-duration \(nodeLeaseDuration): expected 0s or a duration of at least 4s, such as 40s")
        }
        guard parseDuration(etcdClaimRepairInterval) != nil else {
            throw ValidationError("--etcd-claim-repair-interval \(etcdClaimRepairInterval): expected a duration such as 3m, or 0s for never")
        }
        for address in apiAddresses {
            guard let parsed = SocketAddress(parsing: address) else {
                throw ValidationError("--api \(address): expected ADDRESS:PORT or [IPv6]:PORT")
            }
            _ = parsed
        }
        if (apiTlsCert == nil) != (apiTlsKey == nil) {
            throw ValidationError("--api-tls-cert and --api-tls-key go together")
        }
        guard logQueriesSample >= 1 else { throw ValidationError("--log-queries-sample must be at least 1") }
        guard (0...3600).contains(ttl) else { throw ValidationError("--ttl must be between 0 and 3600") }
        guard ClusterConfiguration.PodsMode(rawValue: pods) != nil else {
            throw ValidationError("--pods must be disabled, insecure or verified")
        }
        if autopath && pods != "verified" {
            throw ValidationError("--autopath needs --pods verified: a source address is taken for a pod only when the registry holds that pod")
        }
        if !searchPath.isEmpty && !autopath { throw ValidationError("--search-path is for --autopath") }
        for domain in searchPath where (try? DomainName(unicode: domain.hasSuffix(".") ? domain : domain + ".")) == nil {
            throw ValidationError("--search-path \(domain): not a domain name")
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
        for address in upstream where SocketAddress(parsing: address, defaultPort: 53) == nil {
            throw ValidationError("--upstream \(address): expected ADDRESS, ADDRESS:PORT or [IPv6]:PORT")
        }
        for stub in stubDomain { _ = try Self.parseStubDomain(stub) }
        for cidr in allowRecursion where cidr != "none" && (try? IPPrefix(parsing: cidr)) == nil {
            throw ValidationError("--allow-recursion \(cidr): expected a CIDR such as 10.0.0.0/8, or none")
        }
        guard UpstreamPolicy(rawValue: policy) != nil else { throw ValidationError("--policy must be random, round_robin or sequential") }
        guard maxFails >= 1 else { throw ValidationError("--max-fails must be at least 1") }
        guard maxConcurrent >= 1 else { throw ValidationError("--max-concurrent must be at least 1") }
        guard cacheSize >= 0 else { throw ValidationError("--cache-size must not be negative") }
        guard cacheMinTTL <= cacheMaxTTL else { throw ValidationError("--cache-min-ttl must not exceed --cache-max-ttl") }
        guard (0...100).contains(prefetch) else { throw ValidationError("--prefetch must be a percentage, 0-100") }
        for (flag, value) in [("--upstream-timeout", upstreamTimeout), ("--forward-deadline", forwardDeadline), ("--serve-stale", serveStale)]
            where parseDuration(value) == nil {
            throw ValidationError("\(flag) \(value): expected a duration such as 5s, 500ms or 1h")
        }
    }

    /// The endpoint forwarder's counters into the metrics.
    /// The API's requests by method and status code, and the watches it streams.
    static func refresh(_ metrics: DNSMetrics, from apis: [APIServer]) {
        var totals: [String: (method: String, code: Int, count: Int)] = [:]
        for api in apis {
            for (method, code, count) in api.requestCounts {
                totals["\(method) \(code)", default: (method, code, 0)].count += count
            }
        }
        for (method, code, count) in totals.values {
            metrics.counter("clusterdns_api_requests_total", [("method", method), ("code", String(code))], total: count)
        }
        metrics.gauge("clusterdns_api_watches", [], Double(apis.reduce(0) { $0 + $1.openWatches }))
    }

    /// The prober's results by outcome, its status writes and the pods it probes.
    static func refresh(_ metrics: DNSMetrics, from probes: ProbeCounts) {
        metrics.counter("clusterdns_probe_results_total", [("result", "success")], total: probes.successes)
        metrics.counter("clusterdns_probe_results_total", [("result", "failure")], total: probes.failures)
        metrics.counter("clusterdns_probe_status_writes_total", [], total: probes.statusWrites)
        metrics.gauge("clusterdns_probe_pods", [], Double(probes.pods))
    }

    static func refresh(_ metrics: DNSMetrics, from forwarder: EndpointForwarder) {
        for (frontend, service, port, stats) in forwarder.allStats {
            let labels = [("service", "\(service.namespace)/\(service.name)"), ("port", port.isEmpty ? "\(frontend.address.port)" : port),
                          ("frontend", frontend.description)]
            metrics.gauge("clusterdns_forwarder_active", labels, Double(stats.activeCount))
            metrics.counter("clusterdns_forwarder_connections_total", labels, total: stats.totalCount)
            metrics.counter("clusterdns_forwarder_failed_total", labels, total: stats.failedCount)
            metrics.counter("clusterdns_forwarder_bytes_total", labels + [("direction", "in")], total: stats.bytesFromClients)
            metrics.counter("clusterdns_forwarder_bytes_total", labels + [("direction", "out")], total: stats.bytesToClients)
            metrics.counter("clusterdns_forwarder_flows_moved_total", labels, total: stats.movedFlowCount)
            metrics.counter("clusterdns_forwarder_closed_on_removal_total", labels, total: stats.closedOnRemovalCount)
        }
        metrics.gauge("clusterdns_forwarder_frontends", [], Double(forwarder.frontends.count))
        metrics.gauge("clusterdns_forwarder_frontend_conflicts", [], Double(forwarder.failedFrontends.count))
        metrics.gauge("clusterdns_forwarder_failing_endpoints", [], Double(forwarder.failingEndpoints.count))
    }

    /// `NAME=ADDR[:PORT][,ADDR[:PORT]...]`.
    static func parseStubDomain(_ text: String) throws -> UpstreamGroup {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else {
            throw ValidationError("--stub-domain \(text): expected NAME=ADDR[:PORT][,ADDR[:PORT]...]")
        }
        let domain: DomainName
        do { domain = try DomainName(unicode: parts[0].hasSuffix(".") ? parts[0] : parts[0] + ".") } catch {
            throw ValidationError("--stub-domain \(text): \(error)")
        }
        var servers: [SocketAddress] = []
        for server in parts[1].split(separator: ",") {
            guard let address = SocketAddress(parsing: String(server), defaultPort: 53) else {
                throw ValidationError("--stub-domain \(text): \(server) is not ADDR[:PORT]")
            }
            servers.append(address)
        }
        return UpstreamGroup(domain: domain, servers: servers)
    }

    /// The nodes' search domains for autopath: --search-path, else the search line of --resolv-conf.
    func hostSearchDomains() -> [DomainName] {
        if !searchPath.isEmpty {
            return searchPath.compactMap { try? DomainName(unicode: $0.hasSuffix(".") ? $0 : $0 + ".") }
        }
        guard resolvConf != "none", let data = FileManager.default.contents(atPath: resolvConf) else { return [] }
        return ResolvConf.searchDomains(in: String(decoding: data, as: UTF8.self))
    }

    /// The forwarder's settings from the flags; nil when there is nothing to forward to.
    func forwarding(listening: [SocketAddress], logger: Logger) throws -> UpstreamResolver.Configuration? {
        var defaults = upstream.compactMap { SocketAddress(parsing: $0, defaultPort: 53) }
        if defaults.isEmpty && resolvConf != "none" {
            if let data = FileManager.default.contents(atPath: resolvConf), let text = String(data: data, encoding: .utf8) {
                let listed = ResolvConf.nameservers(in: text)
                defaults = ResolvConf.excludingSelf(listed, listening: listening)
                if defaults.count < listed.count {
                    logger.notice("skipped our own address in \(resolvConf)", metadata: ["skipped": "\(listed.count - defaults.count)"], source: logSource)
                }
            } else if resolvConf != "/etc/resolv.conf" {
                throw ValidationError("--resolv-conf \(resolvConf): cannot be read")
            }
        }
        let stubs = try stubDomain.map(Self.parseStubDomain)
        guard !defaults.isEmpty || !stubs.isEmpty else { return nil }
        var configuration = UpstreamResolver.Configuration(groups: (defaults.isEmpty ? [] : [UpstreamGroup(servers: defaults)]) + stubs)
        configuration.policy = UpstreamPolicy(rawValue: policy) ?? .random
        configuration.maxFails = maxFails
        configuration.maxConcurrent = maxConcurrent
        configuration.readTimeout = parseDuration(upstreamTimeout) ?? .seconds(2)
        configuration.deadline = parseDuration(forwardDeadline) ?? .seconds(5)
        configuration.cache.capacity = cacheSize
        configuration.cache.minimumTTL = cacheMinTTL
        configuration.cache.maximumTTL = cacheMaxTTL
        configuration.cache.maximumNegativeTTL = cacheNegativeTTL
        configuration.cache.serverFailureTTL = cacheServfailTTL
        configuration.cache.bareNegativeTTL = cacheNoSoaTTL
        let stale = parseDuration(serveStale) ?? .zero
        configuration.cache.staleWindow = UInt32(stale.components.seconds)
        configuration.cache.prefetchFraction = Double(prefetch) / 100
        return configuration
    }

    func run() async throws {
        if let config {
            // Settings from the file first, then the command line's own, parsed again: for a
            // single-valued flag the last occurrence wins.
            let all = Array(CommandLine.arguments.dropFirst())
            let commandLine = ConfigFile.removingConfigFlag(all.firstIndex(of: "serve").map { Array(all[(all.index(after: $0))...]) } ?? all)
            let arguments = ConfigFile.merging(try ConfigFile.arguments(from: config), under: commandLine)
            var merged = try Serve.parse(arguments)
            try merged.validate()
            merged.reloadSource = ConfigSource(path: config, commandLine: commandLine, arguments: arguments)
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
        var configuration = ClusterDNSConfiguration(
            dnsAddresses: dnsAddresses.compactMap { SocketAddress(parsing: $0) },
            cluster: ClusterConfiguration(domain: domainName, ttl: ttl,
                                          pods: ClusterConfiguration.PodsMode(rawValue: pods) ?? .verified),
            registry: try registryConfiguration(serviceCIDRs: serviceCIDR, nodePortRange: nodePortRange),
            stateDirectory: state == "memory" ? nil : state,
            manifests: manifests,
            embeddedManifests: manifests.isEmpty ? defaultManifests : nil,
            udpSockets: udpSockets,
            allowTransfer: allowTransfer.compactMap { try? IPPrefix(parsing: $0) })
        if zones != "none" {
            var info = stat()
            if stat(zones, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
                configuration.zonesDirectory = zones
            } else if zones != "zones" {
                throw ValidationError("--zones \(zones): not a directory")
            }
        }
        configuration.forwarding = try forwarding(listening: configuration.dnsAddresses, logger: logger)
        if autopath { configuration.autopathHostDomains = hostSearchDomains() }
        if !allowRecursion.isEmpty {
            configuration.allowRecursion = allowRecursion.compactMap { try? IPPrefix(parsing: $0) }
        }
        let prometheus = PrometheusCollectorRegistry()
        let fine: [Duration] = [.microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
                                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                .seconds(2), .seconds(5)]
        // Timers (one per answered query) and gauges (two per service) live in atomics, and are
        // written after the registry.
        let factory = AtomicMetricsFactory(wrapping: PrometheusMetricsFactory(registry: prometheus), buckets: fine)
        // Metrics cost every query a few clock reads, counters and a histogram: none when
        // nothing can read them (no HTTP endpoint for /metrics, no query log riding on them).
        if http != "none" || logQueries { configuration.metricsFactory = factory }
        if logQueries {
            var queryLogger = logger
            queryLogger.logLevel = .info
            configuration.queryLog = DNSMetrics.QueryLog(logger: queryLogger, sample: logQueriesSample)
        }
        var etcdClient: EtcdClient? = nil
        var etcdStore: EtcdRegistryStore? = nil
        if let etcdConfiguration = try etcdConfiguration() {
            let client: EtcdClient
            do { client = try EtcdClient(configuration: etcdConfiguration) } catch {
                throw ValidationError("--etcd: \(error)")
            }
            let storeLogger = logger
            let store = EtcdRegistryStore(client: client, prefix: etcdPrefix) { key, reason in
                storeLogger.error("a value in etcd is skipped", metadata: ["key": "\(key)", "reason": "\(reason)"], source: logSource)
            }
            configuration.sharedStore = store
            configuration.claimRepairInterval = parseDuration(etcdClaimRepairInterval) ?? .seconds(180)
            configuration.manifestOwner = nodeName ?? ProcessInfo.processInfo.hostName
            etcdClient = client
            etcdStore = store
        }
        let dns: ClusterDNSService
        do { dns = try ClusterDNSService(configuration: configuration, logger: logger) } catch {
            throw ValidationError("\(error)")
        }
        var endpointForwarder: EndpointForwarder? = nil
        if forwarder {
            var settings = EndpointForwarder.Configuration()
            settings.mode = EndpointForwarder.Mode(rawValue: forwarderMode) ?? .bind
            settings.interfaceName = forwarderInterface
            settings.nodeName = nodeName ?? ProcessInfo.processInfo.hostName
            settings.nodeAddresses = nodeAddress.compactMap { IPAddress($0) }
            settings.udpIdleTimeout = parseDuration(forwarderUDPTimeout) ?? .seconds(30)
            settings.tcpIdleTimeout = parseDuration(forwarderTCPTimeout) ?? .seconds(900)
            settings.maxUDPFlows = forwarderMaxFlows
            settings.closeOnRemoval = forwarderCloseOnRemoval
            endpointForwarder = EndpointForwarder(configuration: settings, registry: dns.registry, logger: logger)
        }
        let relay = endpointForwarder
        // Shutdown runs in reverse: the lame duck first (not ready, still answering), then DNS.
        let readiness = Readiness(registry: dns.registry, forwarder: relay, dnsServing: { dns.isServing })
        let apis = try apiServers(registry: dns.registry, logger: logger, settle: { [dns] version in
            await dns.waitUntilServed(version)
        })
        let probing = probes ? ProbeService(registry: dns.registry, node: nodeName ?? ProcessInfo.processInfo.hostName, exec: probesExec,
                                            metrics: dns.metrics, logger: logger) : nil
        let heartbeats = HeartbeatService(registry: dns.registry, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let address = SocketAddress(parsing: http) {
            services.append(.init(service: HealthService(address: address, readiness: readiness, logger: logger, metrics: {
                dns.metrics?.refresh(service: dns)
                if let metrics = dns.metrics {
                    if let relay { Self.refresh(metrics, from: relay) }
                    if !apis.isEmpty { Self.refresh(metrics, from: apis) }
                    if let probing { Self.refresh(metrics, from: probing.prober.counts) }
                    let timed = heartbeats.monitor.counts
                    metrics.counter("clusterdns_heartbeat_expiries_total", [], total: timed.expiries)
                    metrics.gauge("clusterdns_heartbeat_pods", [], Double(timed.timed))
                }
                return prometheus.emitToString() + factory.emitToString()
            })))
        }
        // Started first, so that it stops last: everything else may still write on the way out.
        if let etcdClient { services.insert(.init(service: EtcdConnections(client: etcdClient)), at: 0) }
        services.append(.init(service: dns))
        if let relay { services.append(.init(service: relay)) }
        if let etcdStore, forwarder || probes, let lease = parseDuration(nodeLeaseDuration), lease > .zero {
            services.append(.init(service: NodeAgent(store: etcdStore, registry: dns.registry,
                                                     node: nodeName ?? ProcessInfo.processInfo.hostName,
                                                     addresses: nodeAddress.compactMap { IPAddress($0) }, ttl: lease, probes: probes,
                                                     logger: logger)))
        }
        if let probing { services.append(.init(service: probing)) }
        services.append(.init(service: heartbeats))
        for api in apis { services.append(.init(service: api)) }
        let source = reloadSource
        let hangupLogger = logger
        services.append(.init(service: HangupService(onHangup: {
            let logger = hangupLogger
            dns.reloadZones(force: true)
            let changed = await dns.loadManifests()
            logger.info("manifests re-applied", metadata: ["changed": "\(changed)"], source: logSource)
            source?.reload(into: dns, logger: logger)
        }, logger: logger)))
        services.append(.init(service: LameDuckService(readiness: readiness, period: parseDuration(lameduck) ?? .seconds(5), logger: logger)))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

extension Serve {
    /// The Kubernetes API servers of `--api`, with their tokens; the kubeconfig is written once
    /// the first listens (its port may be the kernel's choice).
    func apiServers(registry: Registry, logger: Logger, settle: (@Sendable (UInt64) async -> Void)? = nil) throws -> [APIServer] {
        guard !apiAddresses.isEmpty else { return [] }
        let tokens: TokenTable
        var generated: String? = nil
        if let apiTokenFile {
            let text: String
            do { text = try String(contentsOfFile: apiTokenFile, encoding: .utf8) } catch {
                throw ValidationError("--api-token-file \(apiTokenFile): cannot read it (\(error))")
            }
            do { tokens = try TokenTable(parsing: text) } catch {
                throw ValidationError("--api-token-file \(apiTokenFile):\(error.line): \(error.reason)")
            }
        } else {
            let token = TokenTable.randomToken()
            generated = token
            tokens = TokenTable([token: APIUser(name: "admin", uid: "admin", groups: ["system:masters"])])
        }
        let addresses = apiAddresses.compactMap { SocketAddress(parsing: $0) }
        let certificate: ServingCertificate
        do {
            if let apiTlsCert, let apiTlsKey {
                certificate = ServingCertificate(certificatePEM: try String(contentsOfFile: apiTlsCert, encoding: .utf8),
                                                 privateKeyPEM: try String(contentsOfFile: apiTlsKey, encoding: .utf8))
            } else {
                certificate = try ServingCertificate.loadOrCreate(in: state == "memory" ? nil : state,
                                                                  for: addresses.map(\.address).filter { !$0.isUnspecified })
            }
        } catch {
            throw ValidationError("the API's TLS certificate: \(error)")
        }
        var clientAuthority: String?
        if let apiClientCaFile {
            do { clientAuthority = try String(contentsOfFile: apiClientCaFile, encoding: .utf8) } catch {
                throw ValidationError("--api-client-ca-file \(apiClientCaFile): cannot read it (\(error))")
            }
        }
        let servers = try addresses.map { address in
            do {
                return try APIServer(configuration: .init(address: address, certificate: certificate, clientAuthorityPEM: clientAuthority),
                                     registry: registry,
                                     tokens: tokens, logger: logger, settle: settle)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        if let token = generated, let first = servers.first {
            let path = apiKubeconfig ?? (state == "memory"
                ? "\(ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")/clusterdns-\(getpid()).kubeconfig"
                : (state.hasSuffix("/") ? state + "kubeconfig" : state + "/kubeconfig"))
            Task {
                let address = await first.boundAddress
                do {
                    // A wildcard listener is reached on loopback from here.
                    let server = address.address.isUnspecified
                        ? SocketAddress(address: address.address.isIPv4 ? IPAddress("127.0.0.1")! : IPAddress("::1")!, port: address.port)
                        : address
                    try SecretFile.write(Kubeconfig.text(server: server, token: token, authority: certificate), to: path)
                    logger.notice("kubeconfig written", metadata: ["path": "\(path)", "server": "\(address)"], source: logSource)
                } catch {
                    logger.error("\(error)", source: logSource)
                }
            }
        } else if apiTokenFile != nil {
            logger.info("API tokens from --api-token-file; no kubeconfig written", source: logSource)
        }
        return servers
    }
}

/// Where a `--config` run came from, to re-read the file on SIGHUP. A file that no longer
/// parses or validates is refused with its error and the running settings kept. A valid change
/// is applied: zones and manifests are reloaded anyway; upstreams, stub domains, the cache and
/// recursion settings are swapped in live; other changed settings are named and take a restart.
final class ConfigSource: Sendable {
    let path: String
    let commandLine: [String]
    let applied: Mutex<[String]>

    init(path: String, commandLine: [String], arguments: [String]) {
        self.path = path
        self.commandLine = commandLine
        applied = Mutex(arguments)
    }

    static let liveKeys: Set<String> = ["upstream", "resolv-conf", "stub-domain", "allow-recursion", "policy", "max-fails",
                                         "max-concurrent", "upstream-timeout", "forward-deadline", "cache-size", "cache-min-ttl",
                                         "cache-max-ttl", "cache-negative-ttl", "cache-servfail-ttl", "cache-no-soa-ttl", "serve-stale",
                                         "prefetch", "zones", "manifests"]

    /// `--name value` pairs (and lone flags) as a map of settings.
    static func settings(_ arguments: [String]) -> [String: [String]] {
        var out: [String: [String]] = [:]
        var index = 0
        while index < arguments.count {
            let key = String(arguments[index].dropFirst(2))
            if Serve.flagKeys.contains(key) || index + 1 >= arguments.count {
                out[key, default: []].append("true")
                index += 1
            } else {
                out[key, default: []].append(arguments[index + 1])
                index += 2
            }
        }
        return out
    }

    func reload(into dns: ClusterDNSService, logger: Logger) {
        do {
            let arguments = ConfigFile.merging(try ConfigFile.arguments(from: path), under: commandLine)
            let reparsed = try Serve.parse(arguments)
            try reparsed.validate()
            let before = Self.settings(applied.withLock { $0 })
            let after = Self.settings(arguments)
            let changed = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }
            guard !changed.isEmpty else { return }
            if !changed.isDisjoint(with: Self.liveKeys.subtracting(["zones", "manifests"])) {
                let forwarding = try reparsed.forwarding(listening: dns.configuration.dnsAddresses, logger: logger)
                let allow = reparsed.allowRecursion.isEmpty ? RecursionPolicy.privateRanges
                    : reparsed.allowRecursion.compactMap { try? IPPrefix(parsing: $0) }
                dns.reconfigureForwarding(forwarding, allowRecursion: allow)
            }
            applied.withLock { $0 = arguments }
            let restart = changed.subtracting(Self.liveKeys).sorted()
            if !restart.isEmpty {
                logger.notice("--config \(path): these changed settings take effect on restart", metadata: ["settings": "\(restart.joined(separator: ", "))"], source: logSource)
            }
        } catch {
            logger.error("--config \(path) refused on reload; the running settings are kept",
                         metadata: ["error": "\(Serve.message(for: error))"], source: logSource)
        }
    }
}
