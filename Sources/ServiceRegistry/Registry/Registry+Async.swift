import Dispatch

/// The same operations for async callers. A durable change waits for its fsync; these run it on
/// a queue of the registry's own, so that the caller's task suspends instead of holding one of
/// Swift's cooperative threads for the write.
extension Registry {
    static let writeQueue = DispatchQueue(label: "clusterdns.registry.writes")

    @discardableResult
    public func apply(_ object: RegistryObject) async throws(RegistryError) -> ApplyOutcome {
        try await offload { () throws(RegistryError) in try self.apply(object) }
    }

    public func apply(contentsOf objects: [RegistryObject]) async -> [Result<ApplyOutcome, RegistryError>] {
        let result: Result<[Result<ApplyOutcome, RegistryError>], RegistryError> = await withCheckedContinuation { continuation in
            Self.writeQueue.async { continuation.resume(returning: .success(self.apply(contentsOf: objects))) }
        }
        return (try? result.get()) ?? []
    }

    public func delete(_ key: ObjectKey) async throws(RegistryError) {
        try await offload { () throws(RegistryError) in try self.delete(key) }
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
