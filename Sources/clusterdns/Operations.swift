import DispatchSockets
import Foundation
import Logging
import ServiceLifecycle
import ServiceRegistry
import Synchronization

/// Whether the process should receive traffic: loaded, and not shutting down.
final class Readiness: Sendable {
    let state = Mutex((loaded: false, shuttingDown: false))
    var isReady: Bool { state.withLock { $0.loaded && !$0.shuttingDown } }
    func markLoaded() { state.withLock { $0.loaded = true } }
    func markShuttingDown() { state.withLock { $0.shuttingDown = true } }
}

/// `/health` (200 while the process runs) and `/ready` (200 once the registry is loaded, 503
/// before and from the moment shutdown starts) on the `--http` address.
struct HealthService: ServiceLifecycle.Service {
    let address: SocketAddress
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        let readiness = self.readiness
        let server = try HTTPServer(address: address) { method, path in
            guard method == "GET" || method == "HEAD" else { return .init(status: 405, body: "method not allowed\n") }
            switch path {
            case "/health": return .init(status: 200, body: "ok\n")
            case "/ready":
                return readiness.isReady ? .init(status: 200, body: "ready\n") : .init(status: 503, body: "not ready\n")
            default: return .init(status: 404, body: "not found\n")
            }
        }
        server.start()
        logger.info("serving HTTP", metadata: ["address": "\(server.address)"])
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
        logger.info("shutting down: not ready, still answering", metadata: ["lameduck": "\(period)"])
        try? await Task.sleep(for: period)
    }
}

/// Re-applies the manifests whenever one of their files changes (checked every second).
/// A document removed from a file is not deleted: deletion is explicit (`clusterdns delete`).
struct ManifestWatcher: ServiceLifecycle.Service {
    let paths: [String]
    let registry: Registry
    let logger: Logger

    func fingerprint() -> [String: Date] {
        var result: [String: Date] = [:]
        let manager = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? ((try? manager.contentsOfDirectory(atPath: path)) ?? []).map { (path as NSString).appendingPathComponent($0) }
                : [path]
            for file in files {
                result[file] = (try? manager.attributesOfItem(atPath: file)[.modificationDate] as? Date) ?? .distantPast
            }
        }
        return result
    }

    func run() async throws {
        let initial = fingerprint()
        // Shutdown cancels the loop; that is its normal end, not an error.
        try? await cancelWhenGracefulShutdown {
            var last = initial
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                let now = fingerprint()
                guard now != last else { continue }
                last = now
                let changed = reload(paths: paths, into: registry, logger: logger)
                logger.info("manifests re-applied", metadata: ["changed": "\(changed)", "resourceVersion": "\(registry.resourceVersion)"])
            }
        }
    }
}

/// Loads manifests and applies them in one batch; logs every refusal. Returns how many objects changed.
@discardableResult
func reload(paths: [String], embedded: String? = nil, into registry: Registry, logger: Logger) -> Int {
    let entries = paths.isEmpty && embedded != nil
        ? Manifest.decode(embedded!, file: "<embedded example cluster>")
        : paths.flatMap { Manifest.load(path: $0) }
    var objects: [RegistryObject] = []
    for entry in entries {
        switch entry.result {
        case .success(let object): objects.append(object)
        case .failure(let error): logger.error("manifest refused", metadata: ["error": "\(error)"])
        }
    }
    var changed = 0
    for (object, result) in zip(objects, registry.apply(contentsOf: objects)) {
        switch result {
        case .success(.unchanged): break
        case .success: changed += 1
        case .failure(let error): logger.error("object refused", metadata: ["object": "\(object.key)", "error": "\(error)"])
        }
    }
    return changed
}

/// `5s`, `500ms`, `1m`, or plain seconds.
func parseDuration(_ text: String) -> Duration? {
    if text.hasSuffix("ms"), let v = Int(text.dropLast(2)), v >= 0 { return .milliseconds(v) }
    if text.hasSuffix("s"), let v = Double(text.dropLast()), v >= 0 { return .milliseconds(Int(v * 1000)) }
    if text.hasSuffix("m"), let v = Int(text.dropLast()), v >= 0 { return .seconds(v * 60) }
    if let v = Double(text), v >= 0 { return .milliseconds(Int(v * 1000)) }
    return nil
}
