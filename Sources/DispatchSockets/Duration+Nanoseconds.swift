public import Dispatch

extension Duration {
    /// Whole nanoseconds (0 for a negative duration): for uptime arithmetic and Dispatch times.
    public var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// The same span as a Dispatch interval.
    public var dispatchInterval: DispatchTimeInterval { .nanoseconds(Int(clamping: wholeNanoseconds)) }
}
