#if canImport(Glibc)
import Glibc
#endif

/// Waits for a state another thread brings about (a socket accepted, a reply stored), looking
/// every 2 ms: true as soon as `condition` holds. The bound only stops a test whose
/// condition never comes from hanging; it is not what the test waits for, and a test never
/// relies on something happening within it except that it happens at all. It is generous
/// (60 s): the suites share two cooperative threads, which tests blocked in a client call
/// can hold for seconds, and what is awaited (an embedded service starting) may need them.
public func eventually(within seconds: Double = 60, _ condition: () throws -> Bool) async rethrows -> Bool {
    let start = monotonicSeconds()
    while monotonicSeconds() - start < seconds {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return try condition()
}

public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
