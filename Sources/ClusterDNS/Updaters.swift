public import KubernetesDNS
import Dispatch
import FoundationEssentials
public import CoreMetrics
public import Logging
public import ServiceLifecycle
public import ServiceRegistry

/// Keeps the cluster zone in step with the registry: each change recompiles only the services
/// it touched (`ClusterAuthority.apply`). A watch cut off for falling behind is re-established
/// with a full compilation.
public struct ZoneUpdater: ServiceLifecycle.Service {
    public init(registry: Registry, cluster: ClusterAuthority, logger: Logger, programmingLatency: CoreMetrics.Timer? = nil) {
        self.registry = registry
        self.cluster = cluster
        self.logger = logger
        self.programmingLatency = programmingLatency
    }

    let registry: Registry
    let cluster: ClusterAuthority
    let logger: Logger
    /// Commit of a change to the moment its answers are served.
    let programmingLatency: CoreMetrics.Timer?

    public func run() async throws {
        // Shutdown cancels the stream; that is its normal end, not an error.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let (snapshot, events) = registry.watchWithSnapshot()
                // A full compilation only when the served zone is not already this snapshot's.
                if cluster.resourceVersion != snapshot.resourceVersion || cluster.zone.isLoaded != snapshot.isLoaded {
                    cluster.update(snapshot)
                }
                do {
                    for try await event in events {
                        // The objects are read from the latest snapshot; applying an event whose
                        // objects already moved on is harmless (they are recompiled as they are).
                        cluster.apply([event], snapshot: registry.snapshot())
                        programmingLatency?.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds &- event.committedAt))
                        logger.trace("zone updated", metadata: ["resourceVersion": "\(event.resourceVersion)"])
                    }
                    return
                } catch is WatchExpired {
                    logger.warning("zone updater fell behind the registry; resynchronising")
                }
            }
        }
    }
}


/// Re-applies the manifest files that change: told by inotify at once (polled every second as
/// well, where inotify misses something or cannot be had), it compares every file's stamp and
/// reads and applies only the files that changed, so a change to a small file does not wait for
/// its large neighbours to be read again. A document removed from a file is not deleted:
/// deletion is explicit (`clusterdns delete`).
public struct ManifestWatcher: ServiceLifecycle.Service {
    public init(paths: [String], registry: Registry, logger: Logger) {
        self.paths = paths
        self.registry = registry
        self.logger = logger
    }

    let paths: [String]
    let registry: Registry
    let logger: Logger

    /// The stamps of the manifest files the paths name: a file itself, or a directory's
    /// manifest files, as `Manifest.load` reads them.
    func fingerprint() -> [String: FileStamp] {
        var result: [String: FileStamp] = [:]
        for path in paths {
            guard let stamp = FileStamp(path: path) else { continue }
            let files = stamp.isDirectory
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                    .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json")) && !$0.hasPrefix(".") }
                    .map { FileStamp.join(path, $0) }
                : [path]
            for file in files { result[file] = FileStamp(path: file) }
        }
        return result
    }

    /// The files added or changed between two fingerprints, in name order.
    static func changedFiles(from old: [String: FileStamp], to new: [String: FileStamp]) -> [String] {
        new.filter { old[$0.key] != $0.value }.keys.sorted()
    }

    public func run() async throws {
        let initial = fingerprint()
        let changes = FileChanges(paths: paths)
        defer { changes.stop() }
        // Shutdown cancels the loop (the stream ends for a cancelled task): its normal end.
        await cancelWhenGracefulShutdown {
            var last = initial
            for await _ in changes.signals {
                let now = fingerprint()
                let changed = Self.changedFiles(from: last, to: now)
                last = now
                guard !changed.isEmpty else { continue }
                let count = await ManifestLoader.reload(files: changed, into: registry, logger: logger)
                logger.info("manifests re-applied", metadata: ["files": "\(changed.joined(separator: " "))", "changed": "\(count)",
                                                              "resourceVersion": "\(registry.resourceVersion)"])
            }
        }
    }
}

public enum ManifestLoader {
    /// Loads manifests (or, with no paths, `embedded`) and applies them in one batch; logs every
    /// refusal. Returns how many objects changed.
    @discardableResult
    public static func reload(paths: [String], embedded: String? = nil, into registry: Registry, logger: Logger) async -> Int {
        // Decoding takes seconds at 10,000 services: on a thread of its own, not one of Swift's
        // cooperative threads.
        let entries = await decoded {
            paths.isEmpty && embedded != nil
                ? Manifest.decode(embedded!, file: "<embedded example cluster>")
                : paths.flatMap { Manifest.load(path: $0) }
        }
        return await apply(entries, into: registry, logger: logger)
    }

    /// Reads and applies only `files` (those that changed), in one batch.
    @discardableResult
    public static func reload(files: [String], into registry: Registry, logger: Logger) async -> Int {
        await apply(await decoded { files.flatMap { Manifest.load(path: $0) } }, into: registry, logger: logger)
    }

    static func decoded(_ read: @escaping @Sendable () -> [ManifestEntry]) async -> [ManifestEntry] {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: read()) }
        }
    }

    /// Applies what decoded; what a shared store could not take for want of the store is
    /// applied again once it is back (the first retry after a second, then less often).
    static func apply(_ entries: [ManifestEntry], into registry: Registry, logger: Logger) async -> Int {
        var objects: [RegistryObject] = []
        for entry in entries {
            switch entry.result {
            case .success(let object): objects.append(object)
            case .failure(let error) where error.isUnservedKind:
                logger.notice("manifest object skipped: not served by this registry", metadata: ["object": "\(error)"])
            case .failure(let error): logger.error("manifest refused", metadata: ["error": "\(error)"])
            }
        }
        var changed = 0
        var delay = Duration.seconds(1)
        while !objects.isEmpty && !Task.isCancelled {
            var again: [RegistryObject] = []
            var unavailable: RegistryError? = nil
            for (object, result) in zip(objects, await registry.apply(contentsOf: objects)) {
                switch result {
                case .success(.unchanged): break
                case .success: changed += 1
                case .failure(let error):
                    if case .unavailable = error {
                        again.append(object)
                        unavailable = error
                    } else {
                        logger.error("object refused", metadata: ["object": "\(object.key)", "error": "\(error)"])
                    }
                }
            }
            objects = again
            if let unavailable {
                logger.warning("manifests not applied yet; trying again", metadata: [
                    "objects": "\(again.count)", "in": "\(delay)", "error": "\(unavailable)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
        return changed
    }
}
