public import DNSResolver

/// The counters of every resolver a service has had, summed: a reconfiguration (SIGHUP) makes
/// a new resolver that counts from zero, and exported totals must go on from where they were.
public struct ResolverTotals: Hashable, Sendable {
    public var cacheHits = 0
    public var cacheMisses = 0
    public var cacheEvictions = 0
    public var spoofedReplies = 0
    public var loops = 0
    /// Per upstream address (as text): queries sent, and failures.
    public var upstreamQueries: [String: Int] = [:]
    public var upstreamFailures: [String: Int] = [:]

    public init() {}

    /// What one resolver has counted so far.
    public init(_ resolver: UpstreamResolver) {
        cacheHits = resolver.cache.hits
        cacheMisses = resolver.cache.misses
        cacheEvictions = resolver.cache.evictions
        spoofedReplies = resolver.mismatches
        loops = resolver.loopsDetected
        for upstream in resolver.upstreams {
            upstreamQueries[upstream.address.description, default: 0] += upstream.queries
            upstreamFailures[upstream.address.description, default: 0] += upstream.failures
        }
    }

    public static func + (lhs: ResolverTotals, rhs: ResolverTotals) -> ResolverTotals {
        var sum = lhs
        sum.cacheHits += rhs.cacheHits
        sum.cacheMisses += rhs.cacheMisses
        sum.cacheEvictions += rhs.cacheEvictions
        sum.spoofedReplies += rhs.spoofedReplies
        sum.loops += rhs.loops
        sum.upstreamQueries.merge(rhs.upstreamQueries, uniquingKeysWith: +)
        sum.upstreamFailures.merge(rhs.upstreamFailures, uniquingKeysWith: +)
        return sum
    }
}
