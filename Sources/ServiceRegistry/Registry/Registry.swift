import DequeModule
#if canImport(Glibc)
import Glibc
#endif
import Dispatch

#if canImport(Glibc)
/// glibc's `malloc_trim` (in <malloc.h>, which the Glibc module does not export).
@_silgen_name("malloc_trim")
func mallocTrim(_ pad: Int) -> Int32
#endif
import Synchronization

/// What an `apply` did, in kubectl's words.
public enum ApplyOutcome: String, Sendable {
    case created, configured, unchanged
}

/// What must hold for a write to go ahead, checked under the registry's lock so that two
/// writers cannot both pass (kube-apiserver's preconditions and optimistic concurrency).
public struct WritePreconditions: Hashable, Sendable {
    /// The object must not exist yet (a create).
    public var mustNotExist = false
    /// The object must exist (an update or a delete).
    public var mustExist = false
    /// The object's uid must be this one.
    public var uid: String? = nil
    /// The object must still be at this version (it has not been written since it was read).
    public var resourceVersion: UInt64? = nil

    public init(mustNotExist: Bool = false, mustExist: Bool = false, uid: String? = nil, resourceVersion: UInt64? = nil) {
        self.mustNotExist = mustNotExist
        self.mustExist = mustExist
        self.uid = uid
        self.resourceVersion = resourceVersion
    }

    public static let none = WritePreconditions()

    public func check(_ key: ObjectKey, existing: RegistryObject?) throws(RegistryError) {
        guard let existing else {
            if mustExist || uid != nil || resourceVersion != nil { throw .notFound(key) }
            return
        }
        if mustNotExist { throw .alreadyExists(key) }
        if let uid, uid != existing.metadata.uid {
            throw .conflict(key, .uid(expected: uid, actual: existing.metadata.uid))
        }
        if let resourceVersion, resourceVersion != existing.metadata.resourceVersion {
            throw .conflict(key, .resourceVersion(expected: resourceVersion, actual: existing.metadata.resourceVersion))
        }
    }
}

/// Where changes are made durable before they are published. The in-memory registry uses
/// `MemoryStorage`; `SQLiteStorage` keeps them on disk.
public protocol RegistryStorage: Sendable {
    /// Everything stored, in the order to re-apply it, and the last resource version.
    func load() throws(RegistryError) -> (objects: [RegistryObject], resourceVersion: UInt64)
    /// Makes one change durable: `object` upserted, or the object at `deleted` removed.
    func commit(upsert object: RegistryObject?, delete key: ObjectKey?, resourceVersion: UInt64) throws(RegistryError)
    /// Makes several upserts durable together (one transaction): all or none.
    func commit(upserts objects: [RegistryObject], resourceVersion: UInt64) throws(RegistryError)
}

public struct MemoryStorage: RegistryStorage {
    public init() {}
    public func load() -> (objects: [RegistryObject], resourceVersion: UInt64) { ([], 0) }
    public func commit(upsert object: RegistryObject?, delete key: ObjectKey?, resourceVersion: UInt64) {}
    public func commit(upserts objects: [RegistryObject], resourceVersion: UInt64) {}
}

/// The single source of truth: Kubernetes-shaped objects, their allocations and derived
/// endpoints. Writers serialise on a lock; readers take immutable snapshots; watchers get an
/// ordered stream of changes and never block writers.
public final class Registry: Sendable {
    public let configuration: RegistryConfiguration
    let storage: any RegistryStorage
    /// The store shared with other replicas (etcd), when there is one: then every write goes
    /// through it, and `storage` only keeps a local copy of what was last seen there.
    public let shared: (any SharedRegistryStore)?
    let state: Mutex<State>

    /// Events kept for watchers that resume from a resource version.
    public static let historyLimit = 4096

    struct Watcher {
        var continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
    }

    struct State: ~Copyable {
        /// The time objects are created at (seconds since 1970).
        let wallClock: @Sendable () -> Int64
        var snapshot = RegistrySnapshot()
        var allocations: Allocations
        var indexes = Indexes()
        var history = Deque<WatchEvent>()
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        /// With a shared store: allocations of writes in flight, held until the store's answer
        /// has been seen, so that two writes of this replica never claim the same thing.
        var reserved: Set<AllocationClaim> = []
        /// With a shared store: writers waiting to see the store's state reach a condition.
        var waiters: [Int: SharedWaiter] = [:]
        var nextWaiter = 0
        /// With a shared store: the revision of its first complete list, once read.
        var sharedRevision: UInt64? = nil
        /// Callers of `waitUntilListed` until the first list is installed.
        var listedWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var sharedStatus = SharedStoreStatus()
    }

    /// Creates a registry and replays what `storage` holds (allocations identical to before).
    /// The system's wall clock, in seconds since 1970.
    public static let systemTime: @Sendable () -> Int64 = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }

    public init(configuration: RegistryConfiguration = RegistryConfiguration(),
                storage: any RegistryStorage = MemoryStorage(),
                shared: (any SharedRegistryStore)? = nil,
                wallClock: @escaping @Sendable () -> Int64 = Registry.systemTime) throws(RegistryError) {
        try configuration.validate()
        self.configuration = configuration
        self.storage = storage
        self.shared = shared
        state = Mutex(State(wallClock: wallClock, allocations: Allocations(configuration)))
        let (loaded, version) = try storage.load()
        let objects = loaded.sorted(by: { $0.kind < $1.kind })
        // Validation is half of installing a restored registry and independent per object:
        // every core takes a share first.
        let verdicts = inChunksOnEveryCore(objects, atLeast: Self.concurrentValidation / 2) { $0.map(Validation.validate) }
        try state.withLock { (state: inout State) throws(RegistryError) in
            for (object, errors) in zip(objects, verdicts) {
                guard errors.isEmpty else { throw .invalid(kind: object.kind, name: object.metadata.name, errors: errors) }
                // Stored objects carry their allocations; re-applying marks them used.
                _ = try Self.applyLocked(object, state: &state, storage: nil, isRestore: true, validated: true)
            }
            state.snapshot.resourceVersion = max(version, state.snapshot.resourceVersion)
            state.history.removeAll()
        }
        #if canImport(Glibc)
        // Loading freed a lot of temporary memory (rows, JSON); give it back to the system.
        if !objects.isEmpty { _ = mallocTrim(0) }
        #endif
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
    public func apply(_ object: RegistryObject, preconditions: WritePreconditions = .none) throws(RegistryError) -> ApplyOutcome {
        try write(object, preconditions: preconditions).outcome
    }

    /// `apply`, returning also the object as stored (allocations made, uid and version set).
    /// With `dryRun`, everything is checked and allocated as for real, then undone: nothing is
    /// stored or published, and the result is what the write would have stored.
    public func write(_ object: RegistryObject, preconditions: WritePreconditions = .none, dryRun: Bool = false)
        throws(RegistryError) -> (outcome: ApplyOutcome, stored: RegistryObject) {
        try refuseWithSharedStore()
        return try writeNow(object, preconditions: preconditions, dryRun: dryRun)
    }

    /// A write to a shared store waits for the store: only the async calls make it.
    func refuseWithSharedStore() throws(RegistryError) {
        if let shared { throw .storage("the registry is kept in \(shared.name): write through the async calls") }
    }

    func writeNow(_ object: RegistryObject, preconditions: WritePreconditions, dryRun: Bool)
        throws(RegistryError) -> (outcome: ApplyOutcome, stored: RegistryObject) {
        try state.withLock { (state: inout State) throws(RegistryError) -> (outcome: ApplyOutcome, stored: RegistryObject) in
            try preconditions.check(object.key, existing: state.snapshot.objects[object.key])
            guard dryRun else {
                let outcome = try Self.applyLocked(object, state: &state, storage: storage, isRestore: false)
                return (outcome, state.snapshot.objects[object.key]!)
            }
            let saved = (state.snapshot, state.allocations, state.indexes)
            defer { (state.snapshot, state.allocations, state.indexes) = saved }
            var events: [WatchEvent] = []
            let outcome = try withUnsafeMutablePointer(to: &events) { (batch) throws(RegistryError) -> ApplyOutcome in
                try Self.applyLocked(object, state: &state, storage: storage, isRestore: false, batch: batch)
            }
            return (outcome, state.snapshot.objects[object.key]!)
        }
    }

    /// Applies many objects with one durable commit (one fsync): what a manifest load does.
    /// Objects are applied in dependency order (namespaces and nodes first); each one that is
    /// invalid or cannot be allocated gets its error and is skipped, as `kubectl apply` does. If
    /// the store fails, none of the batch is applied and every result is that error.
    public func apply(contentsOf objects: [RegistryObject]) -> [Result<ApplyOutcome, RegistryError>] {
        do throws(RegistryError) { try refuseWithSharedStore() } catch { return objects.map { _ in .failure(error) } }
        let order = objects.indices.sorted { (objects[$0].kind, $0) < (objects[$1].kind, $1) }
        return state.withLock { (state: inout State) -> [Result<ApplyOutcome, RegistryError>] in
            let saved = (state.snapshot, state.allocations, state.indexes)
            var events: [WatchEvent] = []
            var results = [Result<ApplyOutcome, RegistryError>](repeating: .success(.unchanged), count: objects.count)
            withUnsafeMutablePointer(to: &events) { batch in
                for index in order {
                    do throws(RegistryError) {
                        results[index] = .success(try Self.applyLocked(objects[index], state: &state, storage: storage,
                                                                        isRestore: false, batch: batch))
                    } catch {
                        results[index] = .failure(error)
                    }
                }
            }
            guard !events.isEmpty else { return results }
            do throws(RegistryError) {
                try storage.commit(upserts: events.map(\.object), resourceVersion: state.snapshot.resourceVersion)
            } catch {
                (state.snapshot, state.allocations, state.indexes) = saved
                return results.map { _ in .failure(error) }
            }
            for event in events { Self.publish(event, state: &state) }
            return results
        }
    }

    /// Deletes an object; its allocations are released. Returns its last state. A namespace
    /// takes what is in it along (each object its own change, before the namespace's), as
    /// Kubernetes' namespace controller empties a namespace before it goes.
    @discardableResult
    public func delete(_ key: ObjectKey, preconditions: WritePreconditions = .none) throws(RegistryError) -> RegistryObject {
        try refuseWithSharedStore()
        return try state.withLock { (state: inout State) throws(RegistryError) -> RegistryObject in
            try preconditions.check(key, existing: state.snapshot.objects[key])
            if key.kind == .namespace {
                guard state.snapshot.objects[key] != nil else { throw .notFound(key) }
                for object in state.snapshot.contents(ofNamespace: key.name) { _ = try Self.deleteLocked(object, state: &state, storage: storage) }
            }
            return try Self.deleteLocked(key, state: &state, storage: storage)
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
            bufferingPolicy: .bufferingOldest(configuration.watcherBuffer))
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
                // A watcher cut off for falling behind is finished by `publish`, under the state
                // lock, and this runs right there: taking the lock again would trap. Then (or
                // when another writer holds it) the removal is left to another thread; it is
                // idempotent, and a finished watcher's stream ignores what is yielded to it.
                guard let self else { return }
                if self.state.withLockIfAvailable({ _ = $0.watchers.removeValue(forKey: id) }) == nil {
                    DispatchQueue.global().async { [weak self] in
                        self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
                    }
                }
            }
            return state.snapshot
        }
        return (snapshot, stream)
    }

    /// Gives `event` to every watcher, and to the history unless `recordingHistory` is false.
    static func publish(_ event: WatchEvent, state: inout State, recordingHistory: Bool = true) {
        if recordingHistory {
            state.history.append(event)
            if state.history.count > historyLimit { state.history.removeFirst() }
        }
        guard !state.watchers.isEmpty else { return }
        var live = event
        live.snapshot = state.snapshot
        var overflowed: [Int] = []
        for (id, watcher) in state.watchers {
            if case .dropped = watcher.continuation.yield(live) { overflowed.append(id) }
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
