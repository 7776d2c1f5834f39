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

    struct Entry {
        var uid: String
        var ttl: Duration
        /// The renewal being timed: its probe time, or nil for a pod made Ready without one.
        var probeTime: Int64?
        var timer: Task<Void, Never>?
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
    }

    /// Heartbeat pods turned NotReady so far, and the heartbeat pods being timed.
    public var counts: (expiries: Int, timed: Int) {
        state.withLock { ($0.expiries, $0.pods.values.count { $0.timer != nil }) }
    }

    /// The registry version this monitor has caught up with.
    public var resourceVersion: UInt64 { state.withLock { $0.version } }

    /// Follows the registry until the task is cancelled.
    public func run() async {
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
        let timers = state.withLock { state -> [Task<Void, Never>] in
            state.stopped = true
            defer { state.pods.removeAll() }
            return state.pods.values.compactMap(\.timer)
        }
        for timer in timers { timer.cancel() }
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
        let old = state.withLock { state -> Task<Void, Never>?? in
            guard !state.stopped else { return .none }
            let entry = state.pods[key]
            // The same renewal already timed (another field of the pod changed): keep its deadline.
            if let entry, entry.uid == uid, entry.ttl == ttl, entry.probeTime == probeTime, (entry.timer != nil) == timing {
                return .none
            }
            state.pods[key] = Entry(uid: uid, ttl: ttl, probeTime: probeTime, timer: nil)
            return .some(entry?.timer)
        }
        guard case .some(let stale) = old else { return }
        stale?.cancel()
        guard timing else { return }
        let timer = Task { [self] in
            do { try await clock.sleep(until: deadline, tolerance: nil) } catch { return }
            await expire(key, uid: uid, probeTime: probeTime, ttl: ttl)
        }
        state.withLock { state in
            if state.pods[key]?.uid == uid, state.pods[key]?.probeTime == probeTime, state.pods[key]?.timer == nil {
                state.pods[key]?.timer = timer
            } else {
                timer.cancel()
            }
        }
    }

    func forget(_ key: ObjectKey) {
        state.withLock { $0.pods.removeValue(forKey: key)?.timer }?.cancel()
    }

    /// Writes NotReady over the renewal that ran out, unless a newer one has been written.
    func expire(_ key: ObjectKey, uid: String, probeTime: Int64?, ttl: Duration) async {
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
