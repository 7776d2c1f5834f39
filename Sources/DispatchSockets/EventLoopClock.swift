import Synchronization

/// An event loop's clock as a Swift `Clock`: a task sleeping on it is woken by the loop's own
/// timer, on the loop's thread, so a task that also prefers the loop as its executor sleeps and
/// wakes without a timer thread or a hand-off (Swift's clocks sleep on a libdispatch timer,
/// whose manager thread then wakes a pool thread). Time is the loop's injected clock.
public struct EventLoopClock: Clock {
    public struct Instant: InstantProtocol {
        /// Nanoseconds of the loop's clock.
        public var nanoseconds: UInt64

        public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

        public func advanced(by duration: Duration) -> Instant {
            duration >= .zero ? Instant(nanoseconds: nanoseconds &+ duration.wholeNanoseconds)
                              : Instant(nanoseconds: nanoseconds - min(nanoseconds, (.zero - duration).wholeNanoseconds))
        }

        public func duration(to other: Instant) -> Duration {
            other.nanoseconds >= nanoseconds ? .nanoseconds(Int64(clamping: other.nanoseconds - nanoseconds))
                                             : .nanoseconds(-Int64(clamping: nanoseconds - other.nanoseconds))
        }

        public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }
    }

    public let loop: EventLoop

    public init(_ loop: EventLoop) { self.loop = loop }

    public var now: Instant { Instant(nanoseconds: loop.now) }
    public var minimumResolution: Duration { .milliseconds(1) }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard sleeper.wait(continuation) else { return continuation.resume(throwing: CancellationError()) }
                loop.executeHere { [loop] in
                    guard sleeper.isWaiting else { return }
                    sleeper.timer = loop.schedule(at: deadline.nanoseconds) { sleeper.wake(nil) }
                }
            }
        } onCancel: {
            sleeper.wake(CancellationError())
            loop.execute { [loop] in if let timer = sleeper.timer { loop.cancel(timer) } }
        }
    }

    /// One sleep: its continuation, resumed once, and its timer once armed (on the loop only).
    final class Sleeper: @unchecked Sendable {
        enum State {
            case ready
            case waiting(CheckedContinuation<Void, any Error>)
            case over
        }
        let state = Mutex(State.ready)
        /// Read and written on the loop's thread only.
        var timer: EventLoop.TimerID?

        /// Takes the continuation; false when the sleep was cancelled first.
        func wait(_ continuation: CheckedContinuation<Void, any Error>) -> Bool {
            state.withLock { state in
                guard case .ready = state else { return false }
                state = .waiting(continuation)
                return true
            }
        }

        var isWaiting: Bool { state.withLock { if case .waiting = $0 { true } else { false } } }

        /// Ends the sleep (the timer fired, or `error` cancelled it); only the first call counts.
        func wake(_ error: (any Error)?) {
            let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                defer { state = .over }
                if case .waiting(let continuation) = state { return continuation }
                return nil
            }
            guard let continuation else { return }
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }
}
