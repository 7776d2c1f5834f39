public import CoreMetrics
public import DNSAuthority
import DNSResolver
public import DNSServer
public import DispatchSockets
public import DNSWire
import Dispatch
public import Logging
import ServiceRegistry
import Synchronization

/// The server's metrics, made with the `MetricsFactory` the embedder passes in (the daemon
/// passes swift-prometheus's and serves `/metrics`). Per query: a request counter by transport
/// and type, a response counter by transport and rcode, a latency timer by transport; all
/// created up front, so the serving path only looks them up in arrays. Sizes and totals kept
/// elsewhere (cache, upstreams, registry, TCP connections) are copied in by `refresh()`, which
/// the scrape calls.
public final class DNSMetrics: QueryObserver, @unchecked Sendable {
    static let types: [RecordType] = [.a, .aaaa, .srv, .ptr, .txt, .cname, .mx, .ns, .soa, .any, .axfr, .ixfr, .https, .svcb]
    static let typeNames = types.map(\.description) + ["other"]
    static let transports = ["udp", "tcp"]
    static let rcodes = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other"]

    let requests: [[CoreMetrics.Counter]]
    let responses: [[CoreMetrics.Counter]]
    let latency: [CoreMetrics.Timer]
    let droppedCounter: CoreMetrics.Counter
    /// Malformed queries (dropped or FORMERR), for the log's summary.
    let malformed = MalformedTally()
    public let programmingLatency: CoreMetrics.Timer
    let factory: any MetricsFactory
    // Pull metrics (updated by `refresh`, under the lock).
    let state = Mutex<PullState>(PullState())
    let queryLog: QueryLog?

    struct PullState {
        var gauges: [String: CoreMetrics.Gauge] = [:]
        var counters: [String: (counter: CoreMetrics.Counter, last: Int)] = [:]
        var timers: [String: CoreMetrics.Timer] = [:]
        /// Each service's endpoint gauges, as the last scrape left them.
        var endpointGauges: [ObjectKey: EndpointGauges] = [:]
    }

    /// Logs one query in `sample` (1: every query) at info level.
    public struct QueryLog: Sendable {
        public var logger: Logger
        public var sample: Int
        public init(logger: Logger, sample: Int = 1) {
            self.logger = logger
            self.sample = max(1, sample)
        }
    }
    let queryCount = Atomic<Int>(0)

    public init(factory: any MetricsFactory, queryLog: QueryLog? = nil) {
        self.factory = factory
        self.queryLog = queryLog
        requests = Self.transports.map { transport in
            Self.typeNames.map { CoreMetrics.Counter(label: "clusterdns_dns_requests_total", dimensions: [("transport", transport), ("type", $0)], factory: factory) }
        }
        responses = Self.transports.map { transport in
            Self.rcodes.map { CoreMetrics.Counter(label: "clusterdns_dns_responses_total", dimensions: [("transport", transport), ("rcode", $0)], factory: factory) }
        }
        latency = Self.transports.map { CoreMetrics.Timer(label: "clusterdns_dns_request_duration_seconds", dimensions: [("transport", $0)], factory: factory) }
        droppedCounter = CoreMetrics.Counter(label: "clusterdns_dns_dropped_total", factory: factory)
        programmingLatency = CoreMetrics.Timer(label: "clusterdns_dns_programming_duration_seconds", factory: factory)
    }

    public func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    public var wantsClient: Bool { queryLog != nil }

    public func answered(reply: UnsafeRawBufferPointer, query: UnsafeRawBufferPointer, type parsedType: RecordType?,
                         transport: Responder.Transport, client: SocketAddress?, since started: UInt64) {
        let t = transport == .udp ? 0 : 1
        let type = parsedType ?? Self.questionType(query)
        let typeIndex = type.flatMap { t in Self.types.firstIndex(of: t) } ?? Self.types.count
        requests[t][typeIndex].increment()
        let rcode = Header(prefixOf: reply).map { Int($0.rcodeBits) } ?? 2
        let rcodeIndex = rcode <= 5 ? rcode : Self.rcodes.count - 1
        responses[t][rcodeIndex].increment()
        if rcode == 1 { malformed.add() }
        latency[t].recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- started))
        if let queryLog, queryCount.add(1, ordering: .relaxed).newValue % queryLog.sample == 0 {
            let name = Self.questionName(query)?.description ?? "?"
            queryLog.logger.info("query", metadata: [
                "client": "\(client?.description ?? "?")", "name": "\(name)", "type": "\(type.map(\.description) ?? "?")", "transport": "\(Self.transports[t])",
                "rcode": "\(ResponseCode(rawValue: UInt16(rcode)).description)", "size": "\(reply.count)",
                "microseconds": "\((DispatchTime.now().uptimeNanoseconds &- started) / 1000)",
            ])
        }
    }

    public func dropped() {
        droppedCounter.increment()
        malformed.add()
    }

    /// Malformed packets (dropped or FORMERR) since the last call: for a rate-limited summary.
    public func takeMalformed() -> Int { malformed.take() }

    /// The question's type, read from the wire without decoding the message.
    static func questionType(_ query: UnsafeRawBufferPointer) -> RecordType? {
        guard query.count > 12 else { return nil }
        var reader = WireReader(bytes: query, offset: 12)
        do {
            guard try reader.skipNameInPlace() == nil else { return nil }
            return RecordType(try reader.readUInt16())
        } catch {
            return nil
        }
    }

    static func questionName(_ query: UnsafeRawBufferPointer) -> DomainName? {
        var reader = WireReader(bytes: query, offset: 12)
        return try? reader.readName()
    }

    /// Sets a gauge (created on first use).
    public func gauge(_ label: String, _ dimensions: [(String, String)] = [], _ value: Double) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = state.withLock { state in
            if let gauge = state.gauges[key] { return gauge }
            let gauge = CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
            state.gauges[key] = gauge
            return gauge
        }
        gauge.record(value)
    }

    /// Records one duration in a histogram (created on first use).
    public func duration(_ label: String, _ dimensions: [(String, String)] = [], _ value: Duration) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let timer = state.withLock { state in
            if let timer = state.timers[key] { return timer }
            let timer = CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory)
            state.timers[key] = timer
            return timer
        }
        timer.recordNanoseconds(Int64(value.components.seconds) * 1_000_000_000 + value.components.attoseconds / 1_000_000_000)
    }

    /// Each service's endpoints by condition (ready, or not), as the probes and heartbeats leave
    /// them; a deleted service's series go with it. A service's pair of gauges is made once and
    /// kept (20,000 series at 10,000 services), with the endpoints it was last set from: a
    /// scrape resolves only the services whose endpoints the registry has replaced since.
    func refreshEndpoints(_ snapshot: RegistrySnapshot) {
        let gone = state.withLock { state -> [EndpointGauges] in
            let previous = state.endpointGauges
            var gauges: [ObjectKey: EndpointGauges] = [:]
            gauges.reserveCapacity(snapshot.serviceEndpoints.count)
            for (key, endpoints) in snapshot.serviceEndpoints {
                if var pair = previous[key] {
                    if !pair.source.isIdentical(to: endpoints) { pair.set(from: endpoints) }
                    gauges[key] = pair
                } else {
                    gauges[key] = EndpointGauges(service: "\(key.namespace)/\(key.name)", endpoints: endpoints, factory: factory)
                }
            }
            state.endpointGauges = gauges
            return previous.compactMap { gauges[$0.key] == nil ? $0.value : nil }
        }
        for pair in gone {
            pair.ready.destroy()
            pair.notReady.destroy()
        }
    }

    /// One service's `clusterdns_service_endpoints` series, and the endpoints they count.
    struct EndpointGauges {
        let ready: CoreMetrics.Gauge
        let notReady: CoreMetrics.Gauge
        private(set) var source: ServiceEndpoints

        init(service: String, endpoints: ServiceEndpoints, factory: any MetricsFactory) {
            ready = CoreMetrics.Gauge(label: "clusterdns_service_endpoints", dimensions: [("service", service), ("ready", "true")], factory: factory)
            notReady = CoreMetrics.Gauge(label: "clusterdns_service_endpoints", dimensions: [("service", service), ("ready", "false")], factory: factory)
            source = endpoints
            set(from: endpoints)
        }

        /// Counts the addresses of `endpoints` (resolved from the slices at each read: read once).
        mutating func set(from endpoints: ServiceEndpoints) {
            var (ready, all) = (0, 0)
            for endpoint in endpoints.endpoints {
                all += endpoint.addresses.count
                if endpoint.isReady { ready += endpoint.addresses.count }
            }
            self.ready.record(Double(ready))
            notReady.record(Double(all - ready))
            source = endpoints
        }
    }

    /// Brings a counter up to `total`, a running total kept elsewhere.
    public func counter(_ label: String, _ dimensions: [(String, String)] = [], total: Int) {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        state.withLock { state in
            var entry = state.counters[key] ?? (CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory), 0)
            if total > entry.last { entry.counter.increment(by: total - entry.last) }
            entry.last = max(entry.last, total)
            state.counters[key] = entry
        }
    }

    /// Copies in what other parts keep: cache, upstreams, registry, connections, zones.
    public func refresh(service: ClusterDNSService) {
        // Counters from every resolver the service has had: a reconfiguration starts a new one
        // at zero, and the totals go on.
        let totals = service.resolverTotals
        if service.resolver != nil || totals != ResolverTotals() {
            counter("clusterdns_dns_cache_hits_total", [], total: totals.cacheHits)
            counter("clusterdns_dns_cache_misses_total", [], total: totals.cacheMisses)
            counter("clusterdns_dns_cache_evictions_total", [], total: totals.cacheEvictions)
            counter("clusterdns_dns_forward_spoofed_replies_total", [], total: totals.spoofedReplies)
            counter("clusterdns_dns_forward_loops_total", [], total: totals.loops)
            for (upstream, queries) in totals.upstreamQueries {
                counter("clusterdns_dns_upstream_requests_total", [("upstream", upstream)], total: queries)
            }
            for (upstream, failures) in totals.upstreamFailures {
                counter("clusterdns_dns_upstream_failures_total", [("upstream", upstream)], total: failures)
            }
        }
        if let resolver = service.resolver {
            gauge("clusterdns_dns_cache_entries", [], Double(resolver.cache.count))
            gauge("clusterdns_dns_forward_pending", [], Double(resolver.pending))
            for upstream in resolver.upstreams {
                gauge("clusterdns_dns_upstream_healthy", [("upstream", upstream.address.description)], upstream.isHealthy ? 1 : 0)
            }
        }
        let snapshot = service.registry.snapshot()
        var kinds: [ObjectKind: Int] = [:]
        for key in snapshot.objects.keys { kinds[key.kind, default: 0] += 1 }
        for kind in ObjectKind.allCases {
            gauge("clusterdns_registry_objects", [("kind", kind.rawValue)], Double(kinds[kind] ?? 0))
        }
        gauge("clusterdns_registry_resource_version", [], Double(snapshot.resourceVersion))
        refreshEndpoints(snapshot)
        if service.registry.shared != nil {
            let status = service.registry.sharedStatus
            gauge("clusterdns_registry_store_available", [], status.isAvailable ? 1 : 0)
            counter("clusterdns_registry_store_refused_writes_total", [], total: status.refusedWrites)
            counter("clusterdns_registry_store_interruptions_total", [], total: status.interruptions)
            let repairs = service.claimRepairTotals
            counter("clusterdns_registry_claim_repairs_total", [("action", "released")], total: repairs.released)
            counter("clusterdns_registry_claim_repairs_total", [("action", "restored")], total: repairs.restored)
            gauge("clusterdns_registry_claim_conflicts", [], Double(repairs.conflicts))
        }
        if let autopath = service.server.handler.responder.autopath {
            counter("clusterdns_autopath_hits_total", [], total: autopath.counters.hits)
            counter("clusterdns_autopath_misses_total", [], total: autopath.counters.misses)
            counter("clusterdns_autopath_steps_total", [], total: autopath.counters.steps)
            counter("clusterdns_autopath_round_trips_saved_total", [], total: autopath.counters.roundTripsSaved)
            counter("clusterdns_autopath_recalled_total", [], total: autopath.counters.recalled)
            counter("clusterdns_autopath_asked_ahead_total", [], total: autopath.counters.askedAhead)
        }
        gauge("clusterdns_dns_tcp_connections", [], Double(service.server.tcpConnections))
        gauge("clusterdns_dns_static_zones", [], Double(service.staticZones?.origins.count ?? 0))
    }
}

/// Malformed queries (dropped or FORMERR), summarised in the log once a minute. `DNSMetrics`
/// counts into one; without metrics it is the server's whole observer: no clock reads, no
/// counters per query.
final class MalformedTally: QueryObserver {
    let count = Atomic<Int>(0)

    func add() { count.add(1, ordering: .relaxed) }

    /// The count since the last call.
    func take() -> Int { count.exchange(0, ordering: .relaxed) }

    func now() -> UInt64 { 0 }

    var wantsClient: Bool { false }

    func answered(reply: UnsafeRawBufferPointer, query: UnsafeRawBufferPointer, type: RecordType?, transport: Responder.Transport,
                  client: SocketAddress?, since started: UInt64) {
        if Header(prefixOf: reply)?.rcodeBits == 1 { add() }
    }

    func dropped() { add() }
}
