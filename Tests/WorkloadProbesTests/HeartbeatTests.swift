import RegistryTestSupport
@testable import ServiceRegistry
import Synchronization
import Testing
import TestSupport
import WorkloadProbes

/// Heartbeat pods (`clusterdns.io/ready-ttl`): Ready while renewed within the TTL, NotReady
/// when not, Ready again on the next renewal; the endpoints follow. Time is the test's.
struct HeartbeatTests {
    /// A wall clock the test sets (seconds since 1970).
    final class Wall: Sendable {
        let seconds = Atomic<Int64>(1_796_440_800)
        func advance(_ by: Int64) { seconds.add(by, ordering: .relaxed) }
        var read: @Sendable () -> Int64 { { self.seconds.load(ordering: .relaxed) } }
    }

    static let key = ObjectKey(.pod, namespace: "shop", name: "worker")

    static func objects(ttl: String = "15s", ready: String = "True", probeTime: String? = nil) throws -> [RegistryObject] {
        let time = probeTime.map { ", lastProbeTime: \"\($0)\"" } ?? ""
        return try Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: jobs, namespace: shop}
            spec: {clusterIP: None, selector: {app: worker}, ports: [{port: 9000}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: worker, namespace: shop, labels: {app: worker}, annotations: {clusterdns.io/ready-ttl: "\(ttl)"}}
            spec: {containers: [{name: app}]}
            status: {podIP: 10.244.0.9, phase: Running, conditions: [{type: Ready, status: "\(ready)"\(time)}]}
            """).map { try $0.result.get() }
    }

    static func pod(_ registry: Registry) -> Pod? {
        guard case .pod(let pod)? = registry.get(key) else { return nil }
        return pod
    }

    static func readyEndpoints(_ registry: Registry) -> [String] {
        let endpoints = registry.snapshot().serviceEndpoints[ObjectKey(.service, namespace: "shop", name: "jobs")]
        return (endpoints?.endpoints ?? []).filter(\.isReady).flatMap(\.addresses).map(\.description)
    }

    /// With a shared store the monitor starts from the first list, taken whole: it does not
    /// watch the registry fill (a start at 10,000 services would queue an event per object
    /// for it), and then times the listed heartbeat pod.
    @Test func aSharedRegistryIsFollowedFromItsFirstList() async throws {
        var objects = try Self.objects()
        for index in objects.indices { objects[index].metadata.resourceVersion = 5 }
        let store = GatedStore(StoreListing(objects: objects, revision: 5))
        let registry = try Registry(shared: store)
        let listing = Task { await registry.followSharedStore { _ in } }
        defer { listing.cancel() }
        let clock = TestClock()
        let monitor = HeartbeatMonitor(registry: registry, clock: clock)
        let running = Task { await monitor.run() }
        defer { running.cancel() }
        #expect(await eventually { registry.state.withLock { $0.listedWaiters.count } == 1 })
        #expect(registry.state.withLock { $0.watchers.isEmpty })
        store.open()
        #expect(await eventually { monitor.resourceVersion == 5 && monitor.counts.timed == 1 })
        #expect(registry.state.withLock { $0.watchers.count } == 1)
    }

    @Test func aPodStaysReadyWhileRenewedAndTurnsNotReadyWithinItsTTL() async throws {
        let wall = Wall()
        let registry = try Registry(wallClock: wall.read)
        for object in try Self.objects() { try await registry.apply(object) }
        let clock = TestClock()
        let monitor = HeartbeatMonitor(registry: registry, clock: clock, wallClock: wall.read)
        let running = Task { await monitor.run() }
        defer { running.cancel() }
        #expect(await eventually { clock.sleeping == 1 })

        // Renewed every 10 s for a minute: never expires.
        for _ in 0..<6 {
            clock.advance(by: .seconds(10))
            wall.advance(10)
            let renewed = try await registry.renew(Self.key)
            #expect(renewed.status.readyProbeTime == wall.read())
            #expect(await eventually { monitor.resourceVersion >= registry.resourceVersion && clock.sleeping == 1 && monitor.counts.timed == 1 })
        }
        #expect(Self.pod(registry)?.status.isReady == true)
        #expect(monitor.counts.expiries == 0)

        // Silent: still ready a moment before the TTL runs out, not ready at it.
        clock.advance(by: .milliseconds(14_999))
        // Settled: whatever this woke (the sleep for a renewal's earlier expiry) has found
        // nothing due and sleeps again, until a moment after now.
        #expect(await eventually { clock.sleeping == 1 && clock.deadlines.allSatisfy { $0 > clock.now } })
        #expect(Self.pod(registry)?.status.isReady == true)
        #expect(Self.readyEndpoints(registry) == ["10.244.0.9"])
        clock.advance(by: .milliseconds(1))
        #expect(await eventually { Self.pod(registry)?.status.isReady == false })
        #expect(Self.readyEndpoints(registry).isEmpty)
        #expect(await eventually { monitor.counts.expiries == 1 })
        // The expiry keeps the last renewal's time and records when readiness changed.
        #expect(Self.pod(registry)?.status.readyProbeTime == wall.read())

        // The next renewal makes it ready again, and starts the timing again.
        wall.advance(20)
        try await registry.renew(Self.key)
        #expect(Self.pod(registry)?.status.isReady == true)
        #expect(Self.pod(registry)?.status.readyTransitionTime == wall.read())
        #expect(Self.readyEndpoints(registry) == ["10.244.0.9"])
        #expect(await eventually { monitor.resourceVersion >= registry.resourceVersion && clock.sleeping == 1 && monitor.counts.timed == 1 })
        clock.advance(by: .seconds(15))
        #expect(await eventually { Self.pod(registry)?.status.isReady == false })
        #expect(await eventually { monitor.counts.expiries == 2 })
    }

    /// A workload may report itself not ready; a renewal of not-ready is not timed.
    @Test func aRenewalMaySayNotReady() async throws {
        let wall = Wall()
        let registry = try Registry(wallClock: wall.read)
        for object in try Self.objects() { try await registry.apply(object) }
        let clock = TestClock()
        let monitor = HeartbeatMonitor(registry: registry, clock: clock, wallClock: wall.read)
        let running = Task { await monitor.run() }
        defer { running.cancel() }
        #expect(await eventually { clock.sleeping == 1 })
        try await registry.renew(Self.key, ready: false)
        #expect(Self.readyEndpoints(registry).isEmpty)
        #expect(await eventually { monitor.resourceVersion >= registry.resourceVersion && clock.sleeping == 0 && monitor.counts.timed == 0 })
        try await registry.renew(Self.key)
        #expect(await eventually { monitor.resourceVersion >= registry.resourceVersion && clock.sleeping == 1 })
        #expect(Self.readyEndpoints(registry) == ["10.244.0.9"])
    }

    /// At start, a renewal nobody here saw is judged by the time it carries: one older than the
    /// TTL expires at once, a recent one when its TTL runs out.
    @Test(arguments: [("2026-12-05T03:19:00Z", Duration.zero), ("2026-12-05T03:19:50Z", .seconds(5))])
    func renewalsFoundAtStartAreJudgedByTheirTime(_ probeTime: String, _ left: Duration) async throws {
        let wall = Wall()  // 2026-12-05T03:20:00Z
        let registry = try Registry(wallClock: wall.read)
        for object in try Self.objects(probeTime: probeTime) { try await registry.apply(object) }
        let clock = TestClock()
        let monitor = HeartbeatMonitor(registry: registry, clock: clock, wallClock: wall.read)
        let running = Task { await monitor.run() }
        defer { running.cancel() }
        if left > .zero {
            #expect(await eventually { clock.sleeping == 1 })
            clock.advance(by: left - .milliseconds(1))
            // Settled, sleeping until after now: nothing was due.
            #expect(await eventually { clock.sleeping == 1 && clock.deadlines.allSatisfy { $0 > clock.now } })
            #expect(Self.pod(registry)?.status.isReady == true)
            clock.advance(by: .milliseconds(1))
        }
        #expect(await eventually { Self.pod(registry)?.status.isReady == false })
    }

    /// Pods without the annotation are left alone, whatever their status says.
    @Test func podsWithoutTheAnnotationAreNotTimed() async throws {
        let registry = try Registry()
        for object in try Self.objects() {
            guard case .pod(var pod) = object else { try await registry.apply(object); continue }
            pod.metadata.annotations = [:]
            try await registry.apply(.pod(pod))
        }
        let clock = TestClock()
        let monitor = HeartbeatMonitor(registry: registry, clock: clock)
        let running = Task { await monitor.run() }
        defer { running.cancel() }
        // Once it has read everything the registry holds, it times nothing and sleeps for nothing.
        #expect(await eventually { monitor.resourceVersion >= registry.resourceVersion })
        #expect(clock.sleeping == 0)
        #expect(monitor.counts.timed == 0)
    }
}
