import Synchronization

/// Items due at instants of one clock, handed out by one task that sleeps until the earliest
/// of them: 10,000 pods probed or timed cost one sleeping task and a heap of small entries,
/// not 10,000 sleeping tasks each holding a timer in the runtime.
///
/// `run` hands the items whose instant has come to its `fire` closure together, in order of
/// their instants, and sleeps until the next. With a `slack`, it sleeps until the next instant
/// plus the slack and hands out everything due by then: never early, at most `slack` late, and
/// one wake-up for all the items of that window (10,000 probes spread over 10 s are a thousand
/// wake-ups a second without it, a hundred with 10 ms). Scheduling an item that would then be
/// late wakes it.
final class Timetable<C: Clock, Item: Sendable>: Sendable where C.Duration == Duration {
    /// A scheduled item, to cancel it.
    struct Ticket: Hashable, Sendable {
        let id: UInt64
    }

    struct Entry {
        var due: C.Instant
        var id: UInt64

        /// Ordered by instant, then by when it was scheduled (first come, first handed out).
        static func precedes(_ a: Entry, _ b: Entry) -> Bool { a.due < b.due || (a.due == b.due && a.id < b.id) }
    }

    struct State {
        /// A binary min-heap; cancelled entries stay until they come up (their item is gone).
        var heap: [Entry] = []
        var items: [UInt64: Item] = [:]
        var nextID: UInt64 = 0
        /// What `run` sleeps for: the instant, and the task to cancel to wake it earlier.
        var sleeper: (until: C.Instant, task: Task<Void, Never>)?
        /// What `run` waits on while nothing is scheduled.
        var idle: CheckedContinuation<Void, Never>?
        var stopped = false
    }

    let clock: C
    let slack: Duration
    let state = Mutex(State())

    init(clock: C, slack: Duration = .zero) {
        self.clock = clock
        self.slack = max(.zero, slack)
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
            state.push(Entry(due: due, id: id))
            let idle = state.idle
            state.idle = nil
            var wake: Task<Void, Never>? = nil
            if let sleeper = state.sleeper, due.advanced(by: slack) < sleeper.until {
                wake = sleeper.task
                state.sleeper = nil
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
            state.heap.removeAll(keepingCapacity: true)
            defer { state.sleeper = nil }
            return state.sleeper?.task
        }
        wake?.cancel()
    }

    /// Hands out items as they come due until the task is cancelled.
    func run(_ fire: ([Item]) -> Void) async {
        await withTaskCancellationHandler {
            while !Task.isCancelled {
                let now = clock.now
                let due = state.withLock { state -> [Item] in
                    var due: [Item] = []
                    while let first = state.heap.first, first.due <= now {
                        state.pop()
                        if let item = state.items.removeValue(forKey: first.id) { due.append(item) }
                    }
                    return due
                }
                if !due.isEmpty { fire(due) }
                await sleep()
            }
        } onCancel: {
            let (sleeper, idle) = state.withLock { state in
                state.stopped = true
                defer { state.sleeper = nil; state.idle = nil }
                return (state.sleeper?.task, state.idle)
            }
            sleeper?.cancel()
            idle?.resume()
        }
    }

    /// Until the earliest item's instant, an earlier item, or cancellation.
    private func sleep() async {
        let clock = self.clock
        let slack = self.slack
        let next = state.withLock { state -> Task<Void, Never>?? in
            guard !state.stopped else { return .none }
            guard let first = state.heap.first else { return .some(nil) }
            if first.due <= clock.now { return .none }
            let until = first.due.advanced(by: slack)
            let task = Task<Void, Never> { _ = try? await clock.sleep(until: until, tolerance: nil) }
            state.sleeper = (until, task)
            return .some(task)
        }
        switch next {
        case .none:
            return
        case .some(let task?):
            await task.value
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

extension Timetable.State {
    mutating func push(_ entry: Timetable.Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Timetable.Entry.precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            var least = left
            if left + 1 < heap.count, Timetable.Entry.precedes(heap[left + 1], heap[left]) { least = left + 1 }
            guard Timetable.Entry.precedes(heap[least], heap[parent]) else { break }
            heap.swapAt(least, parent)
            parent = least
        }
    }
}
