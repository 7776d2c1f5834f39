import Synchronization
import Foundation

/// What an `apply` did, in kubectl's words.
public enum ApplyOutcome: String, Sendable {
    case created, configured, unchanged
}

/// Where changes are made durable before they are published. The in-memory registry uses
/// `MemoryStorage`; `SQLiteStorage` keeps them on disk.
public protocol RegistryStorage: Sendable {
    /// Everything stored, in the order to re-apply it, and the last resource version.
    func load() throws(RegistryError) -> (objects: [RegistryObject], resourceVersion: UInt64)
    /// Makes one change durable: `object` upserted, or the object at `deleted` removed.
    func commit(upsert object: RegistryObject?, delete key: ObjectKey?, resourceVersion: UInt64) throws(RegistryError)
}

public struct MemoryStorage: RegistryStorage {
    public init() {}
    public func load() -> (objects: [RegistryObject], resourceVersion: UInt64) { ([], 0) }
    public func commit(upsert object: RegistryObject?, delete key: ObjectKey?, resourceVersion: UInt64) {}
}

/// The single source of truth: Kubernetes-shaped objects, their allocations and derived
/// endpoints. Writers serialise on a lock; readers take immutable snapshots; watchers get an
/// ordered stream of changes and never block writers.
public final class Registry: Sendable {
    public let configuration: RegistryConfiguration
    let storage: any RegistryStorage
    let state: Mutex<State>

    /// Events kept for watchers that resume from a resource version.
    static let historyLimit = 4096
    /// Events buffered per watcher before it is cut off (and must re-list).
    static let watcherBuffer = 65536

    struct Watcher {
        var continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
    }

    struct State: ~Copyable {
        var snapshot = RegistrySnapshot()
        var allocations: Allocations
        var indexes = Indexes()
        var history: [WatchEvent] = []
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
    }

    /// Creates a registry and replays what `storage` holds (allocations identical to before).
    public init(configuration: RegistryConfiguration = RegistryConfiguration(),
                storage: any RegistryStorage = MemoryStorage()) throws(RegistryError) {
        try configuration.validate()
        self.configuration = configuration
        self.storage = storage
        state = Mutex(State(allocations: Allocations(configuration)))
        let (objects, version) = try storage.load()
        try state.withLock { (state: inout State) throws(RegistryError) in
            for object in objects.sorted(by: { $0.kind < $1.kind }) {
                // Stored objects carry their allocations; re-applying marks them used.
                _ = try Self.applyLocked(object, state: &state, storage: nil, isRestore: true)
            }
            state.snapshot.resourceVersion = max(version, state.snapshot.resourceVersion)
            state.history.removeAll()
        }
    }

    /// The current state, immutable.
    public func snapshot() -> RegistrySnapshot { state.withLock { $0.snapshot } }

    public var resourceVersion: UInt64 { state.withLock { $0.snapshot.resourceVersion } }

    public func get(_ key: ObjectKey) -> RegistryObject? { snapshot().get(key) }

    public func list(_ kind: ObjectKind, namespace: String? = nil) -> [RegistryObject] {
        snapshot().list(kind, namespace: namespace)
    }

    /// Marks the initial load as complete (until then DNS answers SERVFAIL instead of NXDOMAIN).
    public func markLoaded() {
        state.withLock { $0.snapshot.isLoaded = true }
    }

    /// Creates or updates an object by kind, namespace and name. Unchanged input is a no-op.
    /// Validation and allocation errors throw and change nothing; a change is durable before
    /// any reader or watcher sees it.
    @discardableResult
    public func apply(_ object: RegistryObject) throws(RegistryError) -> ApplyOutcome {
        try state.withLock { (state: inout State) throws(RegistryError) -> ApplyOutcome in
            try Self.applyLocked(object, state: &state, storage: storage, isRestore: false)
        }
    }

    /// Deletes an object; its allocations are released.
    public func delete(_ key: ObjectKey) throws(RegistryError) {
        try state.withLock { (state: inout State) throws(RegistryError) in
            try Self.deleteLocked(key, state: &state, storage: storage)
        }
    }

    /// Watches changes. With `resourceVersion` nil the stream starts after the current state
    /// (take `snapshot()` first, or use `watchWithSnapshot()`); with a version, every change after
    /// it is replayed first, or the stream fails with `.expired` when that history is gone.
    public func watch(from resourceVersion: UInt64? = nil) -> AsyncThrowingStream<WatchEvent, any Error> {
        watchWithSnapshot(from: resourceVersion).events
    }

    /// A snapshot and the stream of every change after it, atomically.
    public func watchWithSnapshot(from resourceVersion: UInt64? = nil)
        -> (snapshot: RegistrySnapshot, events: AsyncThrowingStream<WatchEvent, any Error>) {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(Self.watcherBuffer))
        let snapshot = state.withLock { (state: inout State) -> RegistrySnapshot in
            if let from = resourceVersion, from < state.snapshot.resourceVersion {
                let oldest = state.history.first?.resourceVersion ?? state.snapshot.resourceVersion + 1
                if from + 1 < oldest {
                    continuation.finish(throwing: WatchExpired(requested: from, oldest: oldest))
                    return state.snapshot
                }
                for event in state.history where event.resourceVersion > from {
                    continuation.yield(event)
                }
            }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = Watcher(continuation: continuation)
            continuation.onTermination = { [weak self] _ in
                self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
            }
            return state.snapshot
        }
        return (snapshot, stream)
    }

    static func publish(_ event: WatchEvent, state: inout State) {
        state.history.append(event)
        if state.history.count > historyLimit { state.history.removeFirst(state.history.count - historyLimit) }
        var overflowed: [Int] = []
        for (id, watcher) in state.watchers {
            if case .dropped = watcher.continuation.yield(event) { overflowed.append(id) }
        }
        // A watcher that cannot keep up is cut off rather than allowed to block or grow without bound.
        for id in overflowed {
            state.watchers.removeValue(forKey: id)?.continuation.finish(
                throwing: WatchExpired(requested: event.resourceVersion - 1, oldest: event.resourceVersion))
        }
    }
}

/// The watcher fell behind, or asked for history the registry no longer has: take a new
/// snapshot and watch from its version (Kubernetes' 410 Gone).
public struct WatchExpired: Error, Hashable, Sendable, CustomStringConvertible {
    public var requested: UInt64
    public var oldest: UInt64
    public var description: String {
        "too old resource version: \(requested) (\(oldest))"
    }
}
