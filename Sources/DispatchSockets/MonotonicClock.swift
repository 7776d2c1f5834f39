import Dispatch
import Synchronization

/// Monotonic time in nanoseconds, injected wherever time decides something (cache ages and
/// expiry, prefetch and stale windows), so that tests advance a clock instead of sleeping
/// (CoreDNS's cache takes its `now` the same way).
public protocol MonotonicClock: Sendable {
    /// Nanoseconds since an arbitrary fixed point.
    func now() -> UInt64
}

/// The system's monotonic clock (uptime).
public struct SystemClock: MonotonicClock {
    public init() {}
    @inline(__always) public func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// A clock that moves only when told: tests advance it past a TTL instead of waiting for it.
public final class ManualClock: MonotonicClock {
    let nanoseconds: Atomic<UInt64>

    /// Starts where the system clock is now, so that values from the two can be compared.
    public init(startingAt start: UInt64 = SystemClock().now()) {
        nanoseconds = Atomic(start)
    }

    public func now() -> UInt64 { nanoseconds.load(ordering: .relaxed) }

    public func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let delta = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        nanoseconds.add(delta, ordering: .relaxed)
    }
}
