import Dispatch

/// The same operations for async callers. A durable change waits for its fsync; these run it on
/// a queue of the registry's own, so that the caller's task suspends instead of holding one of
/// Swift's cooperative threads for the write.
extension Registry {
    static let writeQueue = DispatchQueue(label: "clusterdns.registry.writes")

    @discardableResult
    public func apply(_ object: RegistryObject, preconditions: WritePreconditions = .none) async throws(RegistryError) -> ApplyOutcome {
        if let shared { return try await writeShared(object, preconditions: preconditions, dryRun: false, store: shared).outcome }
        return try await offload { () throws(RegistryError) in try self.apply(object, preconditions: preconditions) }
    }

    public func write(_ object: RegistryObject, preconditions: WritePreconditions = .none, dryRun: Bool = false)
        async throws(RegistryError) -> (outcome: ApplyOutcome, stored: RegistryObject) {
        if let shared { return try await writeShared(object, preconditions: preconditions, dryRun: dryRun, store: shared) }
        // A dry run stores nothing, so it waits for no disk.
        if dryRun { return try writeNow(object, preconditions: preconditions, dryRun: true) }
        return try await offload { () throws(RegistryError) in try self.writeNow(object, preconditions: preconditions, dryRun: false) }
    }

    public func apply(contentsOf objects: [RegistryObject]) async -> [Result<ApplyOutcome, RegistryError>] {
        if let shared { return await applyShared(contentsOf: objects, store: shared) }
        let result: Result<[Result<ApplyOutcome, RegistryError>], RegistryError> = await withCheckedContinuation { continuation in
            Self.writeQueue.async { continuation.resume(returning: .success(self.apply(contentsOf: objects))) }
        }
        return (try? result.get()) ?? []
    }

    /// `apply(contentsOf:)` with each object merged with the one stored just before it is
    /// written (with a shared store, again on every attempt a conflict causes): what another
    /// writer added meanwhile is kept where `merge` keeps it.
    public func apply(contentsOf objects: [RegistryObject], merging merge: @escaping Merge) async -> [Result<ApplyOutcome, RegistryError>] {
        if let shared { return await applyShared(contentsOf: objects, store: shared, merge: merge) }
        let snapshot = snapshot()
        return await apply(contentsOf: objects.map { merge($0, snapshot.get($0.key)) })
    }

    @discardableResult
    public func delete(_ key: ObjectKey, preconditions: WritePreconditions = .none) async throws(RegistryError) -> RegistryObject {
        if let shared { return try await deleteShared(key, preconditions: preconditions, store: shared) }
        return try await offload { () throws(RegistryError) in try self.delete(key, preconditions: preconditions) }
    }

    func offload<T: Sendable>(_ body: @escaping @Sendable () throws(RegistryError) -> T) async throws(RegistryError) -> T {
        let result: Result<T, RegistryError> = await withCheckedContinuation { continuation in
            Self.writeQueue.async {
                do throws(RegistryError) { continuation.resume(returning: .success(try body())) } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }
}
