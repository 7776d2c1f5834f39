import Foundation
public import Testing

/// What a test body running on a thread of its own found wrong, recorded for the test once
/// the body is back (an `#expect` on a thread without the test's task has no test to belong to).
public final class Checks: @unchecked Sendable {
    let lock = NSLock()
    var failures: [(String, SourceLocation)] = []

    /// Records a failure unless `condition` holds.
    public func that(_ condition: Bool, _ message: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        guard !condition else { return }
        let text = message()
        lock.withLock { failures.append((text.isEmpty ? "expectation failed" : text, sourceLocation)) }
    }

    /// The value, or a failure recorded and thrown.
    public func require<T>(_ value: T?, _ message: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        guard let value else {
            let text = message()
            lock.withLock { failures.append((text.isEmpty ? "required value was nil" : text, sourceLocation)) }
            throw RequirementFailed()
        }
        return value
    }

    public func require(_ condition: Bool, _ message: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) throws {
        _ = try require(condition ? true : nil, message(), sourceLocation: sourceLocation)
    }

    struct RequirementFailed: Error {}
}

/// Runs a test body that blocks (processes, sockets, polling with sleeps) on a thread of its
/// own, not on one of Swift's cooperative threads (two on a two-core machine): tests that block
/// there starve every async test beside them, whose timeouts then fire for no fault of theirs.
/// Its checks and errors are recorded for the calling test.
public func offThePool(_ body: @escaping @Sendable (Checks) throws -> Void) async throws {
    let checks = Checks()
    let result: Result<Void, any Error> = await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: Result { try body(checks) }) }
    }
    for (message, location) in checks.lock.withLock({ checks.failures }) {
        Issue.record(Comment(rawValue: message), sourceLocation: location)
    }
    if case .failure(let error) = result, !(error is Checks.RequirementFailed) { throw error }
}

extension EtcdCluster {
    /// `EtcdCluster(size:)` off the cooperative pool (starting members waits on processes).
    public static func starting(size: Int = 1) async throws -> EtcdCluster {
        let result: Result<EtcdCluster, any Error> = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: Result { try EtcdCluster(size: size) }) }
        }
        return try result.get()
    }

    /// `start(_:)` then `waitUntilHealthy(seconds:)`, off the cooperative pool.
    public func restart(_ name: String, healthyWithin seconds: Double = 60) async throws -> Bool {
        let result: Result<Bool, any Error> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: Result { try self.start(name); return self.waitUntilHealthy(seconds: seconds) })
            }
        }
        return try result.get()
    }
}
