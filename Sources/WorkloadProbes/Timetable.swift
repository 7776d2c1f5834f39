import HeapModule
import Synchronization

/// Items due at instants of one clock, handed out by one task that sleeps until the earliest
/// of them: 10,000 pods probed or timed cost one sleeping task and a heap of small entries,
/// not 10,000 sleeping tasks each holding a timer in the runtime.
///
/// `run` hands the items whose instant has come to its `fire` closure together, in order of
/// their instants, and sleeps until the next. With a `slack`, it sleeps until the next instant
/// plus the slack and hands out everything due by then: never early, at most `slack` late, and
/// one wake-up for all the items of that window. Scheduling an item that would then be
/// late wakes it.
final class Timetable<C: Clock, Item: Sendable>: Sendable where C.Duration == Duration {
    /// A scheduled item, to cancel it.
    struct Ticket: Hashable, Sendable {
        let id: UInt64
    }

    struct Entry: Comparable {
        var due: C.Instant
        var id: UInt64

        /// Ordered by instant, then by when it was scheduled (first come, first handed out).
        static func < (a: Entry, b: Entry) -> Bool { a.due < b.due || (a.due == b.due && a.id < b.id) }
    }

    struct State {
        /// Cancelled entries stay until they come up (their item is gone).
        var heap = Heap<Entry>()
        var items: [UInt64: Item] = [:]
        var nextID: UInt64 = 0
        /// Until when the handing-out task sleeps on the clock (nil: it is not sleeping there).
        var sleeping: C.Instant?
        /// The task that hands items out and sleeps in between; cancelled to wake it earlier.
        var handing: Task<Void, Never>?
        /// What that task waits on while nothing is scheduled.
        var idle: CheckedContinuation<Void, Never>?
        var stopped = false
    }

    let clock: C
    let slack: Duration
    /// Where the handing-out task runs (nil: the shared pool).
    let executor: (any TaskExecutor)?
    let state = Mutex(State())

    init(clock: C, slack: Duration = .zero, executor: (any TaskExecutor)? = nil) {
        self.clock = clock
        self.slack = max(.zero, slack)
        self.executor = executor
    }

    /// Items scheduled and not yet handed out or cancelled.
    var count: Int { state.withLock { $0.items.count } }

    /// Schedules `item` for `due` (at once if it has passed).
    @discardableResult
    func schedule(_ item: Item, at due: C.Instant) -> Ticket {
        let (ticket, wake, idle) = state.withLock { state -> (Ticket, Task<Void, Never>?, CheckedContinuation<Void, Never>?) in
            let id = state.nextID
            state.nextID += 1
            state.items[id] = item
            state.heap.insert(Entry(due: due, id: id))
            let idle = state.idle
            state.idle = nil
            var wake: Task<Void, Never>? = nil
            if let sleeping = state.sleeping, due.advanced(by: slack) < sleeping {
                wake = state.handing
                state.sleeping = nil
            }
            return (Ticket(id: id), wake, idle)
        }
        wake?.cancel()
        idle?.resume()
        return ticket
    }

    /// Takes a scheduled item back; nothing happens if it has been handed out.
    func cancel(_ ticket: Ticket) {
        let wake = state.withLock { state -> Task<Void, Never>? in
            guard state.items.removeValue(forKey: ticket.id) != nil, state.items.isEmpty else { return nil }
            // Nothing left: drop the cancelled entries and stop sleeping for them.
            state.heap = Heap()
            guard state.sleeping != nil else { return nil }
            state.sleeping = nil
            return state.handing
        }
        wake?.cancel()
    }

    /// Hands out items as they come due until the task is cancelled.
    ///
    /// One task hands out and sleeps directly on the clock in between (a wake-up costs one
    /// sleep, nothing more); only an item that would be late for its sleep cancels that task,
    /// and a new one takes over.
    func run(_ fire: @escaping @Sendable ([Item]) -> Void) async {
        await withTaskCancellationHandler {
            while true {
                let handing = state.withLock { state -> Task<Void, Never>? in
                    guard !state.stopped else { return nil }
                    let task = Task(executorPreference: executor) { await self.handOut(fire) }
                    state.handing = task
                    return task
                }
                guard let handing else { return }
                await handing.value
            }
        } onCancel: {
            let (handing, idle) = state.withLock { state in
                state.stopped = true
                defer { state.handing = nil; state.idle = nil; state.sleeping = nil }
                return (state.handing, state.idle)
            }
            handing?.cancel()
            idle?.resume()
        }
    }

    /// Hands out what is due, then sleeps until the next instant plus the slack, until cancelled.
    private func handOut(_ fire: @Sendable ([Item]) -> Void) async {
        while !Task.isCancelled {
            let now = clock.now
            let (due, next) = state.withLock { state -> ([Item], C.Instant??) in
                var due: [Item] = []
                while let first = state.heap.min, first.due <= now {
                    state.heap.removeMin()
                    if let item = state.items.removeValue(forKey: first.id) { due.append(item) }
                }
                guard !state.stopped else { return (due, .none) }
                // Set under the lock that `schedule` takes: an earlier item from now on cancels.
                state.sleeping = state.heap.min.map { $0.due.advanced(by: slack) }
                return (due, .some(state.sleeping))
            }
            if !due.isEmpty { fire(due) }
            switch next {
            case .none:
                return
            case .some(let until?):
                do { try await clock.sleep(until: until, tolerance: nil) } catch { return }
            case .some(nil):
                // Nothing scheduled: wait for the next `schedule` (or cancellation).
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { state -> Bool in
                        if state.stopped || !state.heap.isEmpty { return true }
                        state.idle = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            }
        }
    }
}
