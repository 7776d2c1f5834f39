import Foundation

/// Runs a blocking call (a client waiting on its socket) on a thread of its own and gives its
/// result to whoever awaits the task. A blocking call inside `Task.detached` would hold one of
/// the few threads of Swift's cooperative pool (two on a two-core machine) and starve the tests
/// that run beside it, including the one that would unblock it.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> Task<T, Never> {
    Task {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: body()) }
        }
    }
}
