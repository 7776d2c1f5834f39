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
/// its large neighbours to be read again. Without an `owner`, a document removed from a file
/// is not deleted: deletion is explicit (`clusterdns delete`). With one (a registry shared by
/// replicas), objects record which replica's file applied them, and a document or file that
/// goes away deletes what that replica's file had applied, and nothing else.
public struct ManifestWatcher: ServiceLifecycle.Service {
    public init(paths: [String], registry: Registry, logger: Logger, owner: String? = nil) {
        self.paths = paths
        self.registry = registry
        self.logger = logger
        self.owner = owner
    }

    let paths: [String]
    let registry: Registry
    let logger: Logger
    let owner: String?

    /// The stamps of the manifest files the paths name: a file itself, or a directory's
    /// manifest files, as `Manifest.load` reads them; `previous` is the last look's.
    func fingerprint(previous: [String: FileStamp] = [:]) -> [String: FileStamp] {
        var result: [String: FileStamp] = [:]
        for path in paths {
            guard let stamp = FileStamp(path: path, previous: previous[path]) else { continue }
            let files = stamp.isDirectory
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                    .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json")) && !$0.hasPrefix(".") }
                    .map { FileStamp.join(path, $0) }
                : [path]
            for file in files { result[file] = FileStamp(path: file, previous: previous[file]) }
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
                let now = fingerprint(previous: last)
                let changed = Self.changedFiles(from: last, to: now)
                let removed = last.keys.filter { now[$0] == nil }.sorted()
                last = now
                guard !changed.isEmpty || (owner != nil && !removed.isEmpty) else { continue }
                let count = await ManifestLoader.reload(files: changed, removed: removed, into: registry, logger: logger, owner: owner)
                logger.info("manifests re-applied", metadata: ["files": "\(changed.joined(separator: " "))", "changed": "\(count)",
                                                              "resourceVersion": "\(registry.resourceVersion)"])
            }
        }
    }
}

public enum ManifestLoader {
    /// Loads manifests (or, with no paths, `embedded`) and applies them in one batch; logs every
    /// refusal. Returns how many objects changed. `firstPass` is told once the first attempt
    /// at every object has ended (see `apply`).
    @discardableResult
    public static func reload(paths: [String], embedded: String? = nil, into registry: Registry, logger: Logger,
                              owner: String? = nil, firstPass: (@Sendable (_ version: UInt64) -> Void)? = nil) async -> Int {
        // Decoding takes seconds at 10,000 services: on a thread of its own, not one of Swift's
        // cooperative threads.
        let entries = await decoded {
            paths.isEmpty && embedded != nil
                ? Manifest.decode(embedded!, file: "<embedded example cluster>")
                : paths.flatMap { Manifest.load(path: $0) }
        }
        let changed = await apply(entries, into: registry, logger: logger, owner: owner, firstPass: firstPass)
        guard let owner else { return changed }
        return changed + (await prune(Set(entries.map(\.file)), everyOtherFile: true, entries: entries, from: registry,
                                      owner: owner, logger: logger))
    }

    /// Reads and applies only `files` (those that changed), in one batch; with an `owner`, what
    /// `files` and `removed` no longer name of what the owner's files applied is deleted.
    @discardableResult
    public static func reload(files: [String], removed: [String] = [], into registry: Registry, logger: Logger,
                              owner: String? = nil) async -> Int {
        let entries = await decoded { files.flatMap { Manifest.load(path: $0) } }
        let changed = await apply(entries, into: registry, logger: logger, owner: owner)
        guard let owner else { return changed }
        return changed + (await prune(Set(files + removed), entries: entries, from: registry, owner: owner, logger: logger))
    }

    /// With a shared registry, each replica whose manifests name an object records it in an
    /// annotation of its own, `manifest.clusterdns.io/OWNER: FILE`, beside the others': an
    /// object goes when the last file that names it lets go of it.
    public static let ownerPrefix = "manifest.clusterdns.io/"

    /// The annotation key of `owner` (its name as an annotation name allows it).
    public static func ownerKey(_ owner: String) -> String {
        let allowed = owner.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "-" }
        return ownerPrefix + String(allowed.prefix(63))
    }

    /// The objects to write keep the other owners' annotations of what is stored now.
    static func keepingOtherOwners(_ owner: String) -> Registry.Merge {
        let mine = ownerKey(owner)
        return { given, existing in
            var object = given
            for (key, value) in existing?.metadata.annotations ?? [:] where key.hasPrefix(ownerPrefix) && key != mine {
                object.metadata.annotations[key] = value
            }
            return object
        }
    }

    /// Lets go of the objects `owner`'s files applied and no longer name: among `files` (read
    /// again, or gone), or, with `everyOtherFile`, from a file not read at all (the start of a
    /// replica whose files changed while it was down). An object no other owner names is
    /// deleted; one that others name loses this owner's annotation only. A file that did not
    /// read cleanly lets go of nothing: a typo must not empty the cluster.
    static func prune(_ files: Set<String>, everyOtherFile: Bool = false, entries: [ManifestEntry], from registry: Registry,
                      owner: String, logger: Logger) async -> Int {
        let mine = ownerKey(owner)
        var named: [String: Set<ObjectKey>] = [:]
        var unclean = Set<String>()
        for entry in entries {
            switch entry.result {
            case .success(let object): named[entry.file, default: []].insert(object.key)
            case .failure(let error) where error.isUnservedKind: break
            case .failure: unclean.insert(entry.file)
            }
        }
        let read = Set(entries.map(\.file))
        var changed = 0
        for object in registry.snapshot().objects.values {
            guard let file = object.metadata.annotations[mine] else { continue }
            let gone = files.contains(file) ? !unclean.contains(file) && !(named[file]?.contains(object.key) ?? false)
                : everyOtherFile && !read.contains(file)
            guard gone else { continue }
            let preconditions = WritePreconditions(uid: object.metadata.uid, resourceVersion: object.metadata.resourceVersion)
            let others = object.metadata.annotations.keys.contains { $0.hasPrefix(ownerPrefix) && $0 != mine }
            do {
                if others {
                    var kept = object
                    kept.metadata.annotations[mine] = nil
                    _ = try await registry.write(kept, preconditions: preconditions)
                } else {
                    try await registry.delete(object.key, preconditions: preconditions)
                    logger.info("object deleted: no manifest names it any more", metadata: ["object": "\(object.key)", "file": "\(file)"])
                }
                changed += 1
            } catch {
                logger.notice("object not let go of", metadata: ["object": "\(object.key)", "file": "\(file)", "error": "\(error)"])
            }
        }
        for file in unclean.intersection(files).sorted() {
            logger.warning("nothing deleted for a manifest that did not read cleanly", metadata: ["file": "\(file)"])
        }
        return changed
    }

    static func decoded(_ read: @escaping @Sendable () -> [ManifestEntry]) async -> [ManifestEntry] {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: read()) }
        }
    }

    /// Applies what decoded; what a shared store could not take for want of the store is
    /// applied again once it is back (the first retry after a second, then less often).
    /// `firstPass` is told when the first attempt at every object has ended (written, refused,
    /// or not taken for want of the store), with the highest resourceVersion the registry then
    /// holds of those objects (a write returns once the registry holds it): a zone that serves
    /// that version serves every object the pass wrote.
    static func apply(_ entries: [ManifestEntry], into registry: Registry, logger: Logger, owner: String? = nil,
                      firstPass: (@Sendable (_ version: UInt64) -> Void)? = nil) async -> Int {
        var objects: [RegistryObject] = []
        for entry in entries {
            switch entry.result {
            case .success(var object):
                if let owner { object.metadata.annotations[ownerKey(owner)] = entry.file }
                objects.append(object)
            case .failure(let error) where error.isUnservedKind:
                logger.notice("manifest object skipped: not served by this registry", metadata: ["object": "\(error)"])
            case .failure(let error): logger.error("manifest refused", metadata: ["error": "\(error)"])
            }
        }
        var changed = 0
        var delay = Duration.seconds(1)
        var firstPass = firstPass
        defer { firstPass?(0) }
        while !objects.isEmpty && !Task.isCancelled {
            var again: [RegistryObject] = []
            var unavailable: RegistryError? = nil
            let results = if let owner {
                await registry.apply(contentsOf: objects, merging: keepingOtherOwners(owner))
            } else {
                await registry.apply(contentsOf: objects)
            }
            for (object, result) in zip(objects, results) {
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
            if let told = firstPass {
                let held = registry.snapshot().objects
                told(objects.lazy.compactMap { held[$0.key]?.metadata.resourceVersion }.max() ?? 0)
                firstPass = nil
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
