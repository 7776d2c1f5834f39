@testable import DispatchSockets
import Synchronization
import Testing
import TestSupport
@testable import WorkloadProbes

/// The timetable behind probes and heartbeats: items come out in the order of their instants
/// (then of scheduling) when the clock passes them, with one sleep on the clock whatever their
/// number; an earlier item wakes it, a cancelled one never comes out, and with nothing
/// scheduled it does not sleep on the clock at all.
struct TimetableTests {
    /// What came out, as the batches `run` handed out.
    final class Fired: Sendable {
        let batches = Mutex<[[String]]>([])
        func take() -> [[String]] { batches.withLock { batches in defer { batches.removeAll() }; return batches } }
        var count: Int { batches.withLock { $0.joined().count } }
    }

    /// A timetable, running; `before` schedules what must be in it before it runs.
    static func start(_ clock: TestClock, before: (Timetable<TestClock, String>) -> Void = { _ in }) -> (Timetable<TestClock, String>, Fired, Task<Void, Never>) {
        let timetable = Timetable<TestClock, String>(clock: clock)
        before(timetable)
        let fired = Fired()
        let task = Task { await timetable.run { items in fired.batches.withLock { $0.append(items) } } }
        return (timetable, fired, task)
    }

    static func at(_ seconds: Int, _ clock: TestClock) -> TestClock.Instant { clock.now.advanced(by: .seconds(seconds)) }

    /// (item, seconds from start) scheduled in this order → what each advance of the clock hands
    /// out: everything due at once, in one batch.
    @Test(arguments: [
        ([("a", 3), ("b", 1), ("c", 2)], [(1, ["b"]), (1, ["c"]), (1, ["a"])]),
        ([("a", 2), ("b", 2), ("c", 1)], [(2, ["c", "a", "b"])]),
        ([("a", 5), ("b", 10)], [(4, []), (1, ["a"]), (4, []), (10, ["b"])]),
        ([("past", -1), ("now", 0)], [(0, ["past", "now"])]),
    ] as [([(String, Int)], [(Int, [String])])])
    func itemsComeOutInTheOrderOfTheirInstants(_ schedule: [(String, Int)], _ steps: [(Int, [String])]) async throws {
        let clock = TestClock()
        let start = clock.now
        // All in before it runs, so that items due together are handed out together.
        let (timetable, fired, task) = Self.start(clock) { timetable in
            for (item, seconds) in schedule { timetable.schedule(item, at: start.advanced(by: .seconds(seconds))) }
        }
        defer { task.cancel() }
        for (seconds, expected) in steps {
            // Settled: everything due handed out, one sleep for the next (none when nothing is left).
            #expect(await eventually { clock.sleeping == (timetable.count == 0 ? 0 : 1) })
            let due = clock.deadlines.first
            clock.advance(by: .seconds(seconds))
            if expected.isEmpty {
                // Nothing due: the sleep, due later, was not woken, so nothing could be handed out.
                #expect(due.map { $0 > clock.now } ?? true)
                #expect(clock.sleeping == (timetable.count == 0 ? 0 : 1))
            } else {
                #expect(await eventually { fired.count >= expected.count })
            }
            #expect(fired.take() == (expected.isEmpty ? [] : [expected]))
        }
        #expect(timetable.count == 0)
    }

    /// With a slack, items due within it of the first leave together, none early and none more
    /// than the slack late; an item scheduled meanwhile moves the wake-up only if it would be late.
    @Test func itemsWithinTheSlackOfTheFirstLeaveTogether() async throws {
        let clock = TestClock()
        let start = clock.now
        func at(_ ms: Int64) -> TestClock.Instant { start.advanced(by: .milliseconds(ms)) }
        let timetable = Timetable<TestClock, String>(clock: clock, slack: .seconds(1))
        for (item, ms) in [("a", 1000), ("b", 1500), ("c", 3000), ("d", 3200)] as [(String, Int64)] { timetable.schedule(item, at: at(ms)) }
        let fired = Fired()
        let task = Task { await timetable.run { items in fired.batches.withLock { $0.append(items) } } }
        defer { task.cancel() }
        func until() -> TestClock.Instant? { timetable.state.withLock { $0.sleeping } }
        #expect(await eventually { clock.sleeping == 1 && until() == at(2000) })
        clock.advance(by: .milliseconds(1999))
        // The sleep until 2 s is not woken: nothing can be handed out a moment early.
        #expect(clock.sleeping == 1 && clock.deadlines == [at(2000)])
        #expect(fired.take() == [])
        clock.advance(by: .milliseconds(1))
        #expect(await eventually { fired.count == 2 })
        #expect(fired.take() == [["a", "b"]])
        #expect(await eventually { clock.sleeping == 1 && until() == at(4000) })
        // 3.1 s is within the slack of the wake-up at 4 s: no change; 2.5 s would be late: 3.5 s.
        timetable.schedule("e", at: at(3100))
        #expect(until() == at(4000))
        timetable.schedule("f", at: at(2500))
        #expect(await eventually { clock.sleeping == 1 && until() == at(3500) })
        clock.advance(by: .milliseconds(1500))
        #expect(await eventually { fired.count == 4 })
        #expect(fired.take() == [["f", "c", "e", "d"]])
        #expect(timetable.count == 0)
    }

    @Test func anEarlierItemWakesTheSleepForALaterOne() async throws {
        let clock = TestClock()
        let (timetable, fired, task) = Self.start(clock)
        defer { task.cancel() }
        timetable.schedule("late", at: Self.at(60, clock))
        #expect(await eventually { clock.sleeping == 1 })
        timetable.schedule("early", at: Self.at(1, clock))
        // The sleep for 60 s is given up for one for 1 s.
        #expect(await eventually { clock.sleeping == 1 && timetable.state.withLock { $0.sleeping } == Self.at(1, clock) })
        clock.advance(by: .seconds(1))
        #expect(await eventually { fired.count == 1 })
        #expect(fired.take() == [["early"]])
        #expect(timetable.count == 1)
    }

    @Test func aCancelledItemNeverComesOutAndNothingLeftMeansNoSleep() async throws {
        let clock = TestClock()
        let (timetable, fired, task) = Self.start(clock)
        defer { task.cancel() }
        let a = timetable.schedule("a", at: Self.at(1, clock))
        let two = Self.at(2, clock)
        timetable.schedule("b", at: two)
        timetable.cancel(a)
        #expect(timetable.count == 1)
        #expect(await eventually { clock.sleeping == 1 })
        clock.advance(by: .seconds(1))
        // Woken for the cancelled item, it finds nothing to hand out and sleeps until the next.
        #expect(await eventually { clock.sleeping == 1 && clock.deadlines == [two] })
        #expect(fired.count == 0)
        clock.advance(by: .seconds(1))
        #expect(await eventually { fired.count == 1 })
        #expect(fired.take() == [["b"]])
        // Cancelling what has come out is nothing; cancelling the last one stops the sleep.
        timetable.cancel(a)
        let c = timetable.schedule("c", at: Self.at(30, clock))
        #expect(await eventually { clock.sleeping == 1 })
        timetable.cancel(c)
        #expect(await eventually { clock.sleeping == 0 })
        #expect(timetable.state.withLock { $0.heap.isEmpty })
        // And it goes on when something is scheduled again.
        timetable.schedule("d", at: Self.at(1, clock))
        #expect(await eventually { clock.sleeping == 1 })
        clock.advance(by: .seconds(1))
        #expect(await eventually { fired.count == 1 })
        #expect(fired.take() == [["d"]])
    }

    /// 10,000 items at random instants come out sorted, each once.
    @Test func manyItemsComeOutSortedAndOnce() async throws {
        let clock = TestClock()
        let timetable = Timetable<TestClock, Int>(clock: clock)
        let fired = Mutex<[Int]>([])
        let task = Task { await timetable.run { items in fired.withLock { $0.append(contentsOf: items) } } }
        defer { task.cancel() }
        var generator = SystemRandomNumberGenerator()
        let offsets = (0..<10_000).map { _ in Int.random(in: 0..<100_000, using: &generator) }
        for (item, offset) in offsets.enumerated() { timetable.schedule(item, at: clock.now.advanced(by: .milliseconds(offset))) }
        #expect(await eventually { clock.sleeping == 1 })
        clock.advance(by: .seconds(100))
        #expect(await eventually { fired.withLock { $0.count } == 10_000 })
        let order = fired.withLock { $0 }
        #expect(Set(order).count == 10_000)
        let instants = order.map { offsets[$0] }
        #expect(instants == instants.sorted())
        // Equal instants keep the order they were scheduled in.
        for index in 1..<order.count where instants[index] == instants[index - 1] { #expect(order[index - 1] < order[index]) }
    }

    /// The daemon's arrangement: the timetable sleeps on an event loop's clock and hands out on
    /// the loop itself, so the probes leave from the loop's thread, on its clock's time.
    @Test func onAnEventLoopItHandsOutOnTheLoopsThread() async throws {
        let manual = ManualClock()
        let loop = EventLoop(label: "test.timetable", clock: manual)
        loop.start()
        defer { loop.stop() }
        let clock = EventLoopClock(loop)
        let timetable = Timetable<EventLoopClock, String>(clock: clock, executor: loop)
        let start = clock.now
        timetable.schedule("a", at: start.advanced(by: .seconds(1)))
        timetable.schedule("b", at: start.advanced(by: .seconds(2)))
        let fired = Mutex<[(String, Bool)]>([])
        let task = Task { await timetable.run { items in fired.withLock { $0 += items.map { ($0, loop.isCurrent) } } } }
        defer { task.cancel() }
        func armed() async -> Int { await withCheckedContinuation { continuation in loop.execute { continuation.resume(returning: loop.timerActions.count) } } }
        // Armed: the handing task sleeps on the loop's timer (a minute at most).
        var tries = 0
        while await armed() == 0 {
            tries += 1
            try #require(tries < 30_000)
            try await Task.sleep(for: .milliseconds(2))
        }
        manual.advance(by: .seconds(1))
        #expect(await eventually { fired.withLock { $0.count } == 1 })
        manual.advance(by: .seconds(1))
        #expect(await eventually { fired.withLock { $0.count } == 2 })
        #expect(fired.withLock { $0.map(\.0) } == ["a", "b"])
        #expect(fired.withLock { $0.allSatisfy(\.1) })
    }
}
