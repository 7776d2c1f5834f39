#if canImport(Glibc)
import Glibc
#endif

/// Raises this process's descriptor limit to `wanted` (root may raise the hard limit too; others
/// get as far as the hard limit): true when it is at least `wanted` now.
@discardableResult
public func raiseDescriptorLimit(to count: Int) -> Bool {
    let wanted = rlim_t(count)
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur >= wanted { return true }
    var raised = rlimit(rlim_cur: wanted, rlim_max: max(wanted, limit.rlim_max))
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return true }
    raised = rlimit(rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max)
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
    return limit.rlim_max >= wanted
}

/// The process's descriptor limit now.
public var descriptorLimit: Int {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return Int(min(limit.rlim_cur, 1 << 30))
}
