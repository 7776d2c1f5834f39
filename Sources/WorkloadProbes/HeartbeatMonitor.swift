public import ServiceRegistry
import Synchronization

/// Turns heartbeat pods (annotated `clusterdns.io/ready-ttl`) NotReady when their Ready
/// condition is not renewed in time: a renewal is a status write that moves the condition's
/// `lastProbeTime` (`Registry.renew`, or `pods/NAME/status` through the Kubernetes API).
///
/// Time is measured on the injected clock from the moment a renewal is seen, not from the
/// time written in it, so that replicas whose wall clocks differ agree; only the pods found
/// at start, whose renewal nobody here saw, are judged by the time they carry. Every replica
/// of a shared registry may run one: the write that expires a pod is conditional on its
/// version, so the first to write wins and the others find nothing left to do.
public final class HeartbeatMonitor<C: Clock>: Sendable where C.Duration == Duration {
    public typealias Log = @Sendable (_ message: String) -> Void

    let registry: Registry
    let clock: C
    let wallClock: @Sendable () -> Int64
    let log: Log
    let state = Mutex(State())
    /// Every timed renewal's deadline.
    let timetable: Timetable<C, Expiry>

    struct Entry {
        var uid: String
        var ttl: Duration
        /// The renewal being timed: its probe time, or nil for a pod made Ready without one.
        var probeTime: Int64?
        var timer: Timetable<C, Expiry>.Ticket?
    }

    /// A renewal that runs out at its instant unless renewed again.
    struct Expiry: Sendable {
        var key: ObjectKey
        var uid: String
        var probeTime: Int64?
        var ttl: Duration
    }

    struct State {
        var pods: [ObjectKey: Entry] = [:]
        var expiries = 0
        /// The registry version whose pods have been considered.
        var version: UInt64 = 0
        var stopped = false
    }

    public init(registry: Registry, clock: C, wallClock: @escaping @Sendable () -> Int64 = Registry.systemTime,
                log: @escaping Log = { _ in }) {
        self.registry = registry
        self.clock = clock
        self.wallClock = wallClock
        self.log = log
        timetable = Timetable(clock: clock)
    }

    /// Heartbeat pods turned NotReady so far, and the heartbeat pods being timed.
    public var counts: (expiries: Int, timed: Int) {
        state.withLock { ($0.expiries, $0.pods.values.count { $0.timer != nil }) }
    }

    /// The registry version this monitor has caught up with.
    public var resourceVersion: UInt64 { state.withLock { $0.version } }

    /// Follows the registry until the task is cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow() }
            group.addTask { await self.timetable.run { expiries in for expiry in expiries { Task { await self.expire(expiry) } } } }
            await group.next()
            group.cancelAll()
        }
        let timers = state.withLock { state -> [Timetable<C, Expiry>.Ticket] in
            state.stopped = true
            defer { state.pods.removeAll() }
            return state.pods.values.compactMap(\.timer)
        }
        for timer in timers { timetable.cancel(timer) }
    }

    /// The registry's pods, then every change; after a watch is cut off, a new snapshot. With
    /// a shared store, from its first list: a pod's expiry is a write to the store, which cannot
    /// be made before, and the listed state is taken whole instead of as an event per object.
    func follow() async {
        await registry.waitUntilListed()
        while !Task.isCancelled {
            let (snapshot, events) = registry.watchWithSnapshot()
            let present = Set(snapshot.pods.map(\.key))
            for key in state.withLock({ Array($0.pods.keys) }) where !present.contains(key) { forget(key) }
            for pod in snapshot.pods { consider(pod, atStart: true) }
            state.withLock { $0.version = max($0.version, snapshot.resourceVersion) }
            do {
                for try await event in events {
                    if case .pod(let pod) = event.object {
                        if event.change == .deleted { forget(pod.key) } else { consider(pod, atStart: false) }
                    }
                    state.withLock { $0.version = max($0.version, event.resourceVersion) }
                }
            } catch {
                log("heartbeats: the registry's watch was cut off (\(error)); reading it again")
            }
        }
    }

    /// Starts, restarts or stops the pod's timer as the pod now is.
    func consider(_ pod: Pod, atStart: Bool) {
        let key = pod.key
        guard let ttl = pod.readyTTL else { return forget(key) }
        let uid = pod.metadata.uid
        let probeTime = pod.status.readyProbeTime
        let timing = pod.status.isReady == true
        let now = clock.now
        var deadline = now.advanced(by: ttl)
        if atStart, let probeTime {
            // Nobody here saw this renewal: judge it by the time it carries.
            let age = Duration.seconds(max(0, wallClock() - probeTime))
            deadline = age >= ttl ? now : now.advanced(by: ttl - age)
        }
        let stale = state.withLock { state -> Timetable<C, Expiry>.Ticket?? in
            guard !state.stopped else { return .none }
            let entry = state.pods[key]
            // The same renewal already timed (another field of the pod changed): keep its deadline.
            if let entry, entry.uid == uid, entry.ttl == ttl, entry.probeTime == probeTime, (entry.timer != nil) == timing {
                return .none
            }
            // Scheduled under the lock, so that a newer renewal or a `forget` finds its ticket.
            let timer = timing ? timetable.schedule(Expiry(key: key, uid: uid, probeTime: probeTime, ttl: ttl), at: deadline) : nil
            state.pods[key] = Entry(uid: uid, ttl: ttl, probeTime: probeTime, timer: timer)
            return .some(entry?.timer)
        }
        if case .some(let stale?) = stale { timetable.cancel(stale) }
    }

    func forget(_ key: ObjectKey) {
        if let timer = state.withLock({ $0.pods.removeValue(forKey: key)?.timer }) { timetable.cancel(timer) }
    }

    /// Writes NotReady over the renewal that ran out, unless a newer one has been written.
    func expire(_ expiry: Expiry) async {
        let (key, uid, probeTime, ttl) = (expiry.key, expiry.uid, expiry.probeTime, expiry.ttl)
        state.withLock { state in
            // No longer timed: what it holds is an expired renewal until the next one.
            if state.pods[key]?.uid == uid, state.pods[key]?.probeTime == probeTime { state.pods[key]?.timer = nil }
        }
        for _ in 0..<5 {
            guard case .pod(var pod)? = registry.get(key), pod.metadata.uid == uid, pod.status.isReady == true,
                  pod.status.readyProbeTime == probeTime else { return }
            pod.status.isReady = false
            do {
                _ = try await registry.write(.pod(pod), preconditions: WritePreconditions(
                    mustExist: true, uid: uid, resourceVersion: pod.metadata.resourceVersion))
                state.withLock { $0.expiries += 1 }
                log("heartbeats: \(key) was not renewed within \(ttl); not ready until it is")
                return
            } catch .conflict {
                continue
            } catch {
                log("heartbeats: cannot write the readiness of \(key): \(error)")
                return
            }
        }
    }
}
