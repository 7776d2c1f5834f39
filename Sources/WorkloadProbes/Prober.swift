import DispatchSockets
public import ServiceRegistry
import Synchronization

/// Probes the pods of one node as the kubelet would and writes what it finds through the
/// registry as each pod's `Ready` condition, so that endpoints, DNS answers, the forwarder and
/// watchers follow. Every probed container's next probe waits in one `Timetable` on the injected
/// clock; each attempt runs on its own with its own deadline, so a hung backend delays nobody else.
///
/// Which pods are this prober's is `ProbeAssignment`'s: its node's pods, or, when no pod names a
/// node, its share of every pod among the probers announced in the registry (all of them when
/// none is). A pod's stored readiness stands until its first probe result: a restart, or a pod
/// moving to another prober, does not flap what was last decided.
public final class Prober<C: Clock>: Sendable where C.Duration == Duration {
    public typealias Log = @Sendable (_ message: String) -> Void

    let registry: Registry
    let runner: any ProbeRunner
    let clock: C
    let nodeName: String?
    let log: Log
    /// Told of every probe attempt: its outcome and how long it took on the clock (metrics).
    let observe: @Sendable (_ succeeded: Bool, _ took: Duration) -> Void
    /// How many status writes may be in flight at once.
    let writers: Int
    let state = Mutex(State())
    let dirty: AsyncStream<ObjectKey>
    let dirtyContinuation: AsyncStream<ObjectKey>.Continuation
    /// Every container's next probe.
    let timetable: Timetable<C, Slot>
    /// When the prober was made: the pods it meets within a period of it have their first
    /// probe spread over that period.
    let began: C.Instant

    /// One container's place in the timetable: its pod, which of its plan's containers, and the
    /// workers' generation (a pod whose probes changed starts a new one; older slots are dropped).
    struct Slot: Sendable {
        var key: ObjectKey
        var generation: UInt64
        var container: Int
        /// The tick this probe is for: the next is one period after it (a fixed rate).
        var due: C.Instant
    }

    struct PodEntry {
        var uid: String
        /// What the workers were started from: a change restarts them.
        var plan: [ContainerPlan]
        var containers: [String: ContainerProbeState]
        var generation: UInt64
        /// Each container's next probe while it waits (none while one runs).
        var tickets: [Int: Timetable<C, Slot>.Ticket] = [:]
        /// The pod's readiness as its probes decide it (nil: not decided yet).
        var desired: Bool? {
            var undecided = false
            for state in containers.values {
                switch state.ready {
                case false?: return false
                case nil: undecided = true
                default: break
                }
            }
            return undecided ? nil : true
        }
        /// Each container's readiness (false until decided, as the kubelet starts it) and, with
        /// a startup probe, whether it has started; in the pod's order.
        var containerStatuses: [Pod.ContainerStatus] {
            plan.map { container in
                let state = containers[container.name]
                return Pod.ContainerStatus(name: container.name, ready: state?.ready ?? false,
                                           started: container.startup == nil ? nil : state?.phase == .running)
            }
        }
    }

    struct ContainerPlan: Hashable {
        var name: String
        var startup: Probe?
        var readiness: Probe?
        var startupTarget: ProbeTarget?
        var readinessTarget: ProbeTarget?
    }

    struct State {
        var pods: [ObjectKey: PodEntry] = [:]
        /// Pods that name a node: while there is none, pods are shared among the probers.
        var namingNodes: Set<ObjectKey> = []
        /// The probers announced in the registry (Nodes annotated as probers, ready).
        var probers: [String] = []
        var assignment: ProbeAssignment { ProbeAssignment(podsNameNodes: !namingNodes.isEmpty, probers: probers) }
        /// Pods whose probes were taken away: written Ready once, as the kubelet counts a
        /// running container without a readiness probe.
        var released: [ObjectKey: (uid: String, statuses: [Pod.ContainerStatus])] = [:]
        var stopped = false
        var counts = ProbeCounts()
        var generations: UInt64 = 0
    }

    /// `slack`: how late a probe may leave so that those due close together leave on one
    /// wake-up. Larger batches cost fewer wake-ups but are bursts on a shared core that raise the
    /// DNS p99 (10,000 pods every 10 s: 10 ms slack doubled it; BENCHMARKS.md); 1 ms is the default.
    /// `executor`: where the timetable hands probes out and `clock` is slept on; the daemon
    /// gives the probe loop's (`NetworkProbeRunner.executor`, `.clock`), so a wake-up is the
    /// loop's own timer and the connects start on the same thread.
    public init(registry: Registry, runner: any ProbeRunner, clock: C, nodeName: String?, writers: Int = 16,
                slack: Duration = .milliseconds(1), executor: (any TaskExecutor)? = nil,
                observe: @escaping @Sendable (_ succeeded: Bool, _ took: Duration) -> Void = { _, _ in },
                log: @escaping Log = { _ in }) {
        self.observe = observe
        self.registry = registry
        self.runner = runner
        self.clock = clock
        self.nodeName = nodeName
        self.writers = max(1, writers)
        self.log = log
        (dirty, dirtyContinuation) = AsyncStream<ObjectKey>.makeStream()
        timetable = Timetable(clock: clock, slack: slack, executor: executor)
        began = clock.now
    }

    /// Probe results so far, by outcome, and the pods being probed.
    public var counts: ProbeCounts { state.withLock { state in
        var counts = state.counts
        counts.pods = state.pods.count
        return counts
    } }

    /// Containers waiting for their next probe (not being probed at this moment).
    public var scheduled: Int { timetable.count }

    /// Follows the registry and probes until the task is cancelled.
    // Specialised for the daemon's clock: unspecialised, every heap step and dictionary
    // access of the hot path goes through generic metadata and witness tables.
    @_specialize(exported: true, where C == EventLoopClock)
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.writeStatuses() }
            group.addTask { await self.follow() }
            // Attempts are not awaited when the prober stops: a result then finds no pod and
            // is dropped.
            group.addTask { await self.timetable.run { slots in self.start(slots) } }
            await group.next()
            group.cancelAll()
        }
        let tickets = state.withLock { state -> [Timetable<C, Slot>.Ticket] in
            state.stopped = true
            defer { state.pods.removeAll() }
            return state.pods.values.flatMap(\.tickets.values)
        }
        for ticket in tickets { timetable.cancel(ticket) }
    }

    /// The registry's pods, then every change; after a watch is cut off, a new snapshot. With
    /// a shared store, from its first list: a probe's result is a write to the store, which
    /// cannot be made before, and the listed state is taken whole instead of as an event per
    /// object.
    func follow() async {
        await registry.waitUntilListed()
        while !Task.isCancelled {
            let (snapshot, events) = registry.watchWithSnapshot()
            state.withLock { state in
                state.namingNodes = Set(snapshot.pods.filter { !$0.spec.nodeName.isEmpty }.map(\.key))
                state.probers = ProbeAssignment.probers(in: snapshot)
            }
            let pods = snapshot.pods
            for key in state.withLock({ Array($0.pods.keys) }) where snapshot.get(key) == nil { forget(key) }
            for pod in pods { consider(pod, starting: true) }
            do {
                for try await event in events {
                    let before = state.withLock { $0.assignment }
                    switch event.object {
                    case .pod(let pod):
                        if event.change == .deleted {
                            state.withLock { _ = $0.namingNodes.remove(pod.key) }
                            forget(pod.key)
                        } else {
                            state.withLock { state in
                                if pod.spec.nodeName.isEmpty { state.namingNodes.remove(pod.key) } else { state.namingNodes.insert(pod.key) }
                            }
                            consider(pod, starting: false)
                        }
                    case .node:
                        // A prober announced, gone, or its lease lapsed or back (its Node's change).
                        let probers = ProbeAssignment.probers(in: registry.snapshot())
                        state.withLock { $0.probers = probers }
                    default:
                        continue
                    }
                    // The first pod to name a node (or the last to stop), or a prober that comes or
                    // goes, changes whose pods are ours.
                    if before != state.withLock({ $0.assignment }) {
                        for pod in registry.snapshot().pods { consider(pod, starting: false) }
                    }
                }
            } catch {
                log("probes: the registry's watch was cut off (\(error)); reading it again")
            }
        }
    }


    static func plan(_ pod: Pod) -> [ContainerPlan] {
        guard !pod.status.podIP.isEmpty, pod.status.phase.isEmpty || pod.status.phase == "Running" else { return [] }
        let plans = pod.spec.containers.map { container in
            ContainerPlan(name: container.name, startup: container.startupProbe, readiness: container.readinessProbe,
                          startupTarget: container.startupProbe.map { ProbeTarget($0.action, podIP: pod.status.podIP, ports: container.ports) },
                          readinessTarget: container.readinessProbe.map { ProbeTarget($0.action, podIP: pod.status.podIP, ports: container.ports) })
        }
        return plans.contains { $0.startup != nil || $0.readiness != nil } ? plans : []
    }

    /// Starts, restarts or stops the workers of `pod` as it now is; asks for a status write
    /// when the stored readiness differs from what its probes decided.
    func consider(_ pod: Pod, starting: Bool) {
        let key = pod.key
        let ours = state.withLock { $0.assignment }.probes(pod, as: nodeName)
        let plan = ours ? Self.plan(pod) : []
        let uid = pod.metadata.uid
        let (stale, generation, rewrite) = state.withLock { state -> ([Timetable<C, Slot>.Ticket], UInt64?, Bool) in
            guard !state.stopped else { return ([], nil, false) }
            if let entry = state.pods[key], entry.uid == uid, entry.plan == plan {
                // Unchanged probes: only the stored status may need putting right again
                // (a manifest applied over it, say).
                guard let desired = entry.desired else { return ([], nil, false) }
                return ([], nil, pod.status.isReady != desired || pod.status.containerStatuses != entry.containerStatuses)
            }
            let removed = state.pods.removeValue(forKey: key)
            let old = removed.map { Array($0.tickets.values) } ?? []
            guard !plan.isEmpty else {
                // The probes of a running pod were taken away: it is ready now, as a container
                // without a readiness probe is.
                if let removed, removed.uid == uid, ours, pod.status.isReady == false {
                    state.released[key] = (uid, pod.spec.containers.map { Pod.ContainerStatus(name: $0.name, ready: true) })
                    return (old, nil, true)
                }
                return (old, nil, false)
            }
            var containers: [String: ContainerProbeState] = [:]
            for container in plan { containers[container.name] = ContainerProbeState(startup: container.startup, readiness: container.readiness) }
            state.generations += 1
            state.pods[key] = PodEntry(uid: uid, plan: plan, containers: containers, generation: state.generations)
            return (old, state.generations, false)
        }
        for ticket in stale { timetable.cancel(ticket) }
        if rewrite { dirtyContinuation.yield(key) }
        guard let generation else { return }
        let now = clock.now
        for (index, container) in plan.enumerated() where container.startup != nil || container.readiness != nil {
            let first = container.startup ?? container.readiness!
            var delay = Duration.seconds(first.initialDelaySeconds)
            // The pods found at start, or within a period of it (a registry still being loaded
            // from manifests or etcd), are spread over their first period, as the kubelet spreads
            // its workers after a restart: 10,000 probes that left together would come due
            // together every period after, all in one turn of the loop.
            let period = Duration.seconds(max(1, first.periodSeconds))
            if first.initialDelaySeconds == 0 && (starting || now < began.advanced(by: period)) {
                delay = .milliseconds(Int64.random(in: 0..<Int64(max(1, first.periodSeconds) * 1000)))
            }
            schedule(Slot(key: key, generation: generation, container: index, due: now.advanced(by: delay)))
        }
    }

    func forget(_ key: ObjectKey) {
        let tickets = state.withLock { $0.pods.removeValue(forKey: key).map { Array($0.tickets.values) } ?? [] }
        for ticket in tickets { timetable.cancel(ticket) }
    }

    /// Puts the slot in the timetable, unless its pod's probes have changed meanwhile. The
    /// ticket is taken under the lock, so a `forget` or a restart either sees it or wins first.
    func schedule(_ slot: Slot) {
        state.withLock { state in
            guard state.pods[slot.key]?.generation == slot.generation else { return }
            state.pods[slot.key]?.tickets[slot.container] = timetable.schedule(slot, at: slot.due)
        }
    }

    /// The probes that came due together, each followed by its container's next in the
    /// timetable once its result is in.
    func start(_ slots: [Slot]) {
        let attempts = state.withLock { state -> [ProbeAttempt] in
            var attempts: [ProbeAttempt] = []
            attempts.reserveCapacity(slots.count)
            for slot in slots {
                guard state.pods[slot.key]?.generation == slot.generation,
                      state.pods[slot.key]?.tickets.removeValue(forKey: slot.container) != nil,
                      let entry = state.pods[slot.key], slot.container < entry.plan.count else { continue }
                let container = entry.plan[slot.container]
                guard let phase = entry.containers[container.name]?.phase else { continue }
                let chosen = phase == .starting ? container.startup.flatMap { p in container.startupTarget.map { (p, $0) } }
                                                : container.readiness.flatMap { p in container.readinessTarget.map { (p, $0) } }
                guard let (probe, target) = chosen else { continue }
                let started = clock.now
                attempts.append(ProbeAttempt(target: target, timeout: .seconds(max(1, probe.timeoutSeconds))) { result in
                    self.finish(slot, container: container.name, probe: probe, target: target, result: result, started: started)
                })
            }
            return attempts
        }
        if !attempts.isEmpty { runner.start(attempts) }
    }

    /// One attempt's result: counted, and the container's next probe scheduled.
    func finish(_ slot: Slot, container: String, probe: Probe, target: ProbeTarget, result: ProbeResult, started: C.Instant) {
        let now = clock.now
        observe(result.succeeded, started.duration(to: now))
        record(result, key: slot.key, generation: slot.generation, container: container, target: target)
        // A fixed rate, as the kubelet's ticker: a slow probe does not push the next one back.
        // Of the ticks missed while it ran one is kept (a Go ticker's channel holds one), so a
        // probe slower than its period is followed at once by the next, and a hung backend
        // fails its threshold within failureThreshold × timeoutSeconds.
        let period = Duration.seconds(max(1, probe.periodSeconds))
        var next = slot
        next.due = slot.due.advanced(by: period)
        while next.due.advanced(by: period) <= now { next.due = next.due.advanced(by: period) }
        schedule(next)
    }

    /// Counts the result against the container's thresholds, unless the pod's probes changed
    /// while it ran (its generation moved on: the new workers start from nothing).
    func record(_ result: ProbeResult, key: ObjectKey, generation: UInt64, container: String, target: ProbeTarget) {
        let change = state.withLock { state -> (ready: Bool?, started: Bool)? in
            if result.succeeded { state.counts.successes += 1 } else { state.counts.failures += 1 }
            guard state.pods[key]?.generation == generation, var probing = state.pods[key]?.containers[container] else { return nil }
            let phase = probing.phase
            let changed = probing.record(result)
            state.pods[key]!.containers[container] = probing
            guard changed != nil || probing.phase != phase else { return nil }
            return (changed, probing.phase != phase)
        }
        guard let change else { return }
        if let ready = change.ready {
            var message = "probes: \(key) container \(container) is \(ready ? "ready" : "not ready") (\(target))"
            if case .failure(let reason) = result { message += ": \(reason)" }
            log(message)
        } else if change.started {
            log("probes: \(key) container \(container) has started (\(target))")
        }
        // The container's status changed, and with it perhaps the pod's.
        dirtyContinuation.yield(key)
    }

    /// Status writes for the pods whose readiness changed, a few at a time.
    func writeStatuses() async {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for await key in dirty {
                if running >= writers {
                    await group.next()
                    running -= 1
                }
                group.addTask { await self.writeStatus(key) }
                running += 1
            }
        }
    }

    /// Writes the pod's decided readiness (the Ready condition and each container's) over the
    /// stored one, reading it again after a conflict.
    func writeStatus(_ key: ObjectKey) async {
        // A release is written once, whatever becomes of the write; only the one this call
        // took (a newer one may be set while it runs).
        var releasing: String? = nil
        defer {
            if let releasing {
                state.withLock { state in if state.released[key]?.uid == releasing { state.released[key] = nil } }
            }
        }
        for _ in 0..<5 {
            guard let (uid, desired, statuses, release) = state.withLock({ state -> (String, Bool, [Pod.ContainerStatus], Bool)? in
                if let entry = state.pods[key], let desired = entry.desired {
                    state.released[key] = nil
                    return (entry.uid, desired, entry.containerStatuses, false)
                }
                guard state.pods[key] == nil, let released = state.released[key] else { return nil }
                return (released.uid, true, released.statuses, true)
            }) else { return }
            if release { releasing = uid }
            guard case .pod(var pod)? = registry.get(key), pod.metadata.uid == uid else { return }
            if pod.status.isReady == desired && pod.status.containerStatuses == statuses { return }
            // Probes confirm the condition now; a status that changes gets its transition time
            // from the registry.
            if pod.status.isReady != desired { pod.status.readyTransitionTime = nil }
            pod.status.isReady = desired
            pod.status.containerStatuses = statuses
            do {
                _ = try await registry.write(.pod(pod), preconditions: WritePreconditions(mustExist: true, uid: uid,
                                                                                      resourceVersion: pod.metadata.resourceVersion))
                state.withLock { $0.counts.statusWrites += 1 }
                return
            } catch .conflict {
                continue
            } catch {
                log("probes: cannot write the readiness of \(key): \(error)")
                return
            }
        }
    }
}

/// What the prober has done, for metrics.
public struct ProbeCounts: Hashable, Sendable {
    public var successes = 0
    public var failures = 0
    public var statusWrites = 0
    public var pods = 0
}
