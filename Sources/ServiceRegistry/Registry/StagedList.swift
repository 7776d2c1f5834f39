import Dispatch

/// A replica's first list installed apart, a page at a time while the store sends the next
/// one: validating and installing 10,000 services is then done by the time the last page is
/// decoded, instead of after it. The pages go in the order they are listed, exactly as `adopt`
/// installs a whole list into a registry that holds nothing; `Registry.swapIn` then makes the
/// result the registry's state in one change.
final class StagedList: @unchecked Sendable {
    /// What was installed; read once the queue is done.
    struct Installed {
        var snapshot: RegistrySnapshot
        var indexes: Indexes
        var allocations: Allocations
        var adoption: Registry.Adoption
        /// Every object listed, in order (for `adopt` when the swap cannot be made).
        var received: [RegistryObject]
    }

    private let queue = DispatchQueue(label: "registry first list")
    // Touched only on `queue`.
    private var state: Registry.State
    private var adoption = Registry.Adoption()
    private var received: [RegistryObject] = []

    init(configuration: RegistryConfiguration, wallClock: @escaping @Sendable () -> Int64) {
        state = Registry.State(wallClock: wallClock, allocations: Allocations(configuration))
    }

    /// Installs a page of the list read at `revision`, after the pages given before it; returns
    /// at once (the work is this list's queue's).
    func add(_ objects: [RegistryObject], revision: Int64) {
        queue.async { [self] in
            received += objects
            let verdicts = inChunksOnEveryCore(objects, atLeast: Registry.concurrentValidation / 2) { $0.map(Validation.validate) }
            for (object, errors) in zip(objects, verdicts) {
                adoption.put(object, version: UInt64(revision), errors: errors, state: &state)
            }
        }
    }

    /// What the pages added so far installed, once the queue has installed them all. It
    /// waits on the caller's thread, as decoding on every core does: what is left after the
    /// last page is the work of one page, and a suspension here would let a busy pool of
    /// tasks hold the finished list back.
    func finished() -> Installed {
        queue.sync {
            Installed(snapshot: state.snapshot, indexes: state.indexes, allocations: state.allocations,
                      adoption: adoption, received: received)
        }
    }
}
