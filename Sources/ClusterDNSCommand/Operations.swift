#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EtcdClient
import DispatchSockets
import EndpointForwarder
import Logging
import ServiceLifecycle
import ServiceRegistry
import Synchronization

/// Whether the process should receive traffic: the registry loaded and its zone served, the
/// DNS addresses answering, and not shutting down.
final class Readiness: Sendable {
    let registry: Registry
    let forwarder: EndpointForwarder?
    let dnsServing: @Sendable () -> Bool
    let shuttingDown = Mutex(false)

    init(registry: Registry, forwarder: EndpointForwarder? = nil, dnsServing: @escaping @Sendable () -> Bool = { true }) {
        self.registry = registry
        self.forwarder = forwarder
        self.dnsServing = dnsServing
    }

    /// The registry loaded, its zone compiled and DNS bound, the forwarder's listeners open
    /// (when it runs), not shutting down.
    var isReady: Bool {
        registry.snapshot().isLoaded && dnsServing()
            && (forwarder.map { $0.isReady && $0.resourceVersion >= registry.resourceVersion } ?? true)
            && !shuttingDown.withLock { $0 }
    }
    func markShuttingDown() { shuttingDown.withLock { $0 = true } }
}

/// `/health` (200 while the process runs) and `/ready` (200 once the registry is loaded and DNS answers it, 503
/// before and from the moment shutdown starts) on the `--http` address.
struct HealthService: ServiceLifecycle.Service {
    let address: SocketAddress
    let readiness: Readiness
    let logger: Logger
    /// `/metrics`: the Prometheus text of everything, refreshed at each scrape.
    var metrics: (@Sendable () -> String)? = nil

    func run() async throws {
        let readiness = self.readiness
        let metrics = self.metrics
        let server = try HTTPServer(address: address) { method, path in
            guard method == "GET" || method == "HEAD" else { return .init(status: 405, body: "method not allowed\n") }
            switch path {
            case "/health": return .init(status: 200, body: "ok\n")
            case "/metrics":
                guard let metrics else { return .init(status: 404, body: "metrics are off\n") }
                return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
            case "/ready":
                return readiness.isReady ? .init(status: 200, body: "ready\n") : .init(status: 503, body: "not ready\n")
            default: return .init(status: 404, body: "not found\n")
            }
        }
        server.start()
        logger.info("serving HTTP", metadata: ["address": "\(server.address)"], source: logSource)
        try? await gracefulShutdown()
        server.stop()
    }
}

/// Last to start, first to be told to stop: on SIGTERM it makes `/ready` fail at once and
/// keeps everything else answering for the lame-duck period, then lets the shutdown proceed.
struct LameDuckService: ServiceLifecycle.Service {
    let readiness: Readiness
    let period: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        readiness.markShuttingDown()
        logger.info("shutting down: not ready, still answering", metadata: ["lameduck": "\(period)"], source: logSource)
        try? await Task.sleep(for: period)
    }
}

/// Go's durations (`5s`, `500ms`, `1m30s`), days (`7d`), or plain seconds.
func parseDuration(_ text: String) -> Duration? {
    if let duration = DurationText.parse(text) { return duration }
    if text.hasSuffix("d"), let v = Int(text.dropLast()), v >= 0 { return .seconds(v * 86400) }
    if let v = Double(text), v >= 0 { return .milliseconds(Int(v * 1000)) }
    return nil
}

/// SIGHUP: every static zone re-read and the manifests re-applied (and `onHangup` for the rest).
struct HangupService: ServiceLifecycle.Service {
    let onHangup: @Sendable () async -> Void
    let logger: Logger

    func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { continuation.yield() }
        source.resume()
        defer { source.cancel() }
        await cancelWhenGracefulShutdown {
            for await _ in stream {
                logger.info("SIGHUP: reloading", source: logSource)
                await onHangup()
            }
        }
    }
}

/// The connections to etcd, kept for as long as the server runs.
struct EtcdConnections: ServiceLifecycle.Service {
    let client: EtcdClient

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.run()
        } onGracefulShutdown: {
            client.shutdown()
        }
    }
}
