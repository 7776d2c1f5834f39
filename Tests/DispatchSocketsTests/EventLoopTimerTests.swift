@testable import DispatchSockets
import Synchronization
import Testing

/// The event loop's timers and its Swift face (a `Clock` whose sleeps are those timers, a
/// `TaskExecutor` that runs tasks on the loop's thread): timers fire in the order of their
/// deadlines once the loop's clock has reached them and never before, a cancelled one never
/// fires, and a task that sleeps on the loop wakes on the loop.
struct EventLoopTimerTests {
    /// A loop on a clock that moves only when told.
    static func loop() -> (EventLoop, ManualClock) {
        let clock = ManualClock()
        let loop = EventLoop(label: "test.timers", clock: clock)
        loop.start()
        return (loop, clock)
    }

    /// Returns once the loop has had a whole turn after this call: a task queued now runs and
    /// queues another, so the timers of the first turn have had their chance by the second.
    static func settle(_ loop: EventLoop) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute { loop.execute { continuation.resume() } }
        }
    }

    /// Returns once a timer is armed on the loop (a minute at most).
    static func untilArmed(_ loop: EventLoop) async throws {
        for tries in 0... {
            let armed = await withCheckedContinuation { continuation in loop.execute { continuation.resume(returning: loop.timerActions.count) } }
            if armed > 0 { return }
            try #require(tries < 30_000)
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    final class Fired: Sendable {
        let names = Mutex<[String]>([])
        func take() -> [String] { names.withLock { names in defer { names.removeAll() }; return names } }
    }

    /// (timer, milliseconds from start) armed in this order → what fires after each advance of
    /// the clock, in order of deadline (then of arming).
    @Test(arguments: [
        ([("a", 30), ("b", 10), ("c", 20)], [(10, ["b"]), (10, ["c"]), (10, ["a"])]),
        ([("a", 20), ("b", 20), ("c", 5)], [(19, ["c"]), (1, ["a", "b"])]),
        ([("a", 5000)], [(4999, []), (1, ["a"])]),
        ([("past", 0), ("later", 60_000)], [(0, ["past"]), (59_999, []), (2, ["later"])]),
    ] as [([(String, Int)], [(Int, [String])])])
    func timersFireInTheOrderOfTheirDeadlinesAndNeverEarly(_ timers: [(String, Int)], _ steps: [(Int, [String])]) async {
        let (loop, clock) = Self.loop()
        defer { loop.stop() }
        let fired = Fired()
        let start = clock.now()
        loop.execute {
            for (name, milliseconds) in timers {
                loop.schedule(at: start + UInt64(milliseconds) * 1_000_000) { fired.names.withLock { $0.append(name) } }
            }
        }
        for (milliseconds, expected) in steps {
            clock.advance(by: .milliseconds(milliseconds))
            await Self.settle(loop)
            #expect(fired.take() == expected, "after \(milliseconds) ms more")
        }
    }

    @Test func aCancelledTimerNeverFiresAndCancellingAFiredOneDoesNothing() async {
        let (loop, clock) = Self.loop()
        defer { loop.stop() }
        let fired = Fired()
        let start = clock.now()
        let ids = Mutex<[EventLoop.TimerID]>([])
        loop.execute {
            for (name, milliseconds) in [("kept", 10), ("cancelled", 10), ("first", 5)] {
                let id = loop.schedule(at: start + UInt64(milliseconds) * 1_000_000) { fired.names.withLock { $0.append(name) } }
                ids.withLock { $0.append(id) }
            }
            loop.cancel(ids.withLock { $0[1] })
        }
        clock.advance(by: .milliseconds(5))
        await Self.settle(loop)
        #expect(fired.take() == ["first"])
        loop.execute { loop.cancel(ids.withLock { $0[2] }) }
        clock.advance(by: .milliseconds(5))
        await Self.settle(loop)
        #expect(fired.take() == ["kept"])
        // Nothing armed is left: no entry kept, no wake-up computed for one.
        let left = await withCheckedContinuation { continuation in loop.execute { continuation.resume(returning: (loop.timers.count, loop.timerActions.count)) } }
        #expect(left == (0, 0))
    }

    /// A task that prefers the loop and sleeps on its clock wakes on the loop's thread, when the
    /// loop's (injected) clock has passed the deadline and not before.
    @Test func aSleepOnTheLoopsClockWakesOnTheLoopWhenItsClockHasPassed() async throws {
        let (loop, clock) = Self.loop()
        defer { loop.stop() }
        let swiftClock = EventLoopClock(loop)
        let deadline = swiftClock.now.advanced(by: .seconds(10))
        let woke = Mutex<(onLoop: Bool, at: UInt64)?>(nil)
        let sleeper = Task(executorPreference: loop) {
            try await swiftClock.sleep(until: deadline)
            woke.withLock { $0 = (loop.isCurrent, loop.now) }
        }
        // The sleep is armed once a timer is on the loop.
        try await Self.untilArmed(loop)
        clock.advance(by: .milliseconds(9_999))
        await Self.settle(loop)
        #expect(woke.withLock { $0 } == nil)
        clock.advance(by: .milliseconds(1))
        try await sleeper.value
        let result = try #require(woke.withLock { $0 })
        #expect(result.onLoop)
        #expect(result.at >= deadline.nanoseconds)
    }

    /// A cancelled sleep ends at once with CancellationError and disarms its timer: a long
    /// sleep cut short leaves nothing on the loop to wake it.
    @Test func aCancelledSleepEndsAtOnceAndDisarmsItsTimer() async throws {
        let (loop, _) = Self.loop()
        defer { loop.stop() }
        let swiftClock = EventLoopClock(loop)
        let sleeper = Task(executorPreference: loop) {
            try await swiftClock.sleep(until: swiftClock.now.advanced(by: .seconds(3600)))
        }
        try await Self.untilArmed(loop)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        await Self.settle(loop)
        let left = await withCheckedContinuation { continuation in loop.execute { continuation.resume(returning: (loop.timers.count, loop.timerActions.count)) } }
        #expect(left == (0, 0))
        // Cancelled before it began: it does not sleep at all.
        let early = Task(executorPreference: loop) {
            withUnsafeCurrentTask { $0?.cancel() }
            try await swiftClock.sleep(until: swiftClock.now.advanced(by: .seconds(3600)))
        }
        await #expect(throws: CancellationError.self) { try await early.value }
    }

    /// On the system clock: a short sleep lasts at least its length.
    @Test func aRealSleepLastsAtLeastItsLength() async throws {
        let loop = EventLoop(label: "test.timers.real")
        loop.start()
        defer { loop.stop() }
        let clock = EventLoopClock(loop)
        let start = clock.now
        try await Task(executorPreference: loop) { try await clock.sleep(until: start.advanced(by: .milliseconds(20))) }.value
        #expect(start.duration(to: clock.now) >= .milliseconds(20))
    }
}
