public import DispatchSockets
public import NetAddress
import Synchronization

/// Endpoints that refused or timed out recently, skipped by every frontend for a while
/// (passive health).
public final class EndpointHealth: Sendable {
    let failedUntil = Mutex<[SocketAddress: UInt64]>([:])
    public let penalty: Duration
    /// What times the penalty and, for the choosers sharing this, client affinity.
    public let clock: any MonotonicClock

    public init(penalty: Duration = .seconds(5), clock: any MonotonicClock = SystemClock()) {
        self.penalty = penalty
        self.clock = clock
    }

    public func markFailed(_ address: SocketAddress) {
        let until = clock.now() + penalty.wholeNanoseconds
        failedUntil.withLock { $0[address] = until }
    }

    public func markHealthy(_ address: SocketAddress) { failedUntil.withLock { _ = $0.removeValue(forKey: address) } }

    public func isFailing(_ address: SocketAddress) -> Bool { isFailing(address, now: clock.now()) }

    func isFailing(_ address: SocketAddress, now: UInt64) -> Bool {
        failedUntil.withLock { table in
            guard let until = table[address] else { return false }
            if until <= now {
                table.removeValue(forKey: address)
                return false
            }
            return true
        }
    }

    public var failing: [SocketAddress] {
        let now = clock.now()
        return failedUntil.withLock { $0.filter { $0.value > now }.map(\.key) }
    }
}

/// Picks the endpoint for a new connection or flow of one frontend: round robin over the
/// eligible endpoints, shuffled once when the set is made (so every frontend does not start on
/// the same endpoint after a change), `sessionAffinity: ClientIP` sticking a client to its
/// endpoint for the timeout, endpoints failing passive health skipped while others remain.
/// Immutable but for its counter and affinity table; a change of endpoints makes a new one.
public final class BackendChooser: Sendable {
    public let plan: FrontendPlan
    public let backends: [Backend]
    let health: EndpointHealth
    let next = Atomic<Int>(0)
    let affinity = Mutex<[IPAddress: (backend: SocketAddress, expires: UInt64)]>([:])

    public init(plan: FrontendPlan, node: String, health: EndpointHealth) {
        self.plan = plan
        backends = plan.eligible(node: node).shuffled()
        self.health = health
    }

    /// The endpoints to try for `client`, in order: its affine endpoint first if it still
    /// exists, then round robin from the next position; failing ones after the others.
    public func order(for client: IPAddress?) -> [Backend] {
        guard !backends.isEmpty else { return [] }
        let now = health.clock.now()
        let start = next.add(1, ordering: .relaxed).oldValue
        var list = (0..<backends.count).map { backends[($0 + start) % backends.count] }
        if plan.affinityTimeout != nil, let client {
            let sticky = affinity.withLock { table -> SocketAddress? in
                guard let entry = table[client], entry.expires > now else { return nil }
                return entry.backend
            }
            if let sticky, let index = list.firstIndex(where: { $0.address == sticky }) {
                list.insert(list.remove(at: index), at: 0)
            }
        }
        let healthy = list.filter { !health.isFailing($0.address, now: now) }
        return healthy + list.filter { health.isFailing($0.address, now: now) }
    }

    /// Records where `client` went (for affinity).
    public func chose(_ backend: Backend, for client: IPAddress?) {
        guard let timeout = plan.affinityTimeout, let client else { return }
        let now = health.clock.now()
        let expires = now + UInt64(timeout) * 1_000_000_000
        affinity.withLock { table in
            table[client] = (backend.address, expires)
            if table.count > 65536 {
                table = table.filter { $0.value.expires > now }
            }
        }
    }

    /// A new chooser for a changed plan, keeping the affinity of clients whose endpoint remains.
    public func updated(plan: FrontendPlan, node: String) -> BackendChooser {
        let chooser = BackendChooser(plan: plan, node: node, health: health)
        let remaining = Set(chooser.backends.map(\.address))
        let kept = affinity.withLock { $0.filter { remaining.contains($0.value.backend) } }
        chooser.affinity.withLock { $0 = kept }
        return chooser
    }
}

/// A frontend's current chooser, shared by everything that serves the frontend (its TCP
/// acceptors, its UDP server): a change of endpoints replaces it once, for all of them.
final class ChooserSlot: Sendable {
    let current: Mutex<BackendChooser>

    init(_ chooser: BackendChooser) { current = Mutex(chooser) }

    var chooser: BackendChooser { current.withLock { $0 } }
}
