import NetAddress
import ServiceRegistry
import Synchronization
import Testing
import TestSupport
import WorkloadProbes

/// The prober against a registry, with probe results the test decides and time it advances:
/// a pod's Ready condition, and so its service's endpoints, follow its probes within the
/// thresholds, and only the pods of the prober's node are probed.
struct ProberTests {
    /// Answers each target as the test last said (success unless told otherwise), counting calls.
    final class ScriptedRunner: ProbeRunner {
        let answers = Mutex<[ProbeTarget: ProbeResult]>([:])
        let calls = Mutex<[ProbeTarget: Int]>([:])

        func run(_ target: ProbeTarget, timeout: Duration) async -> ProbeResult {
            calls.withLock { $0[target, default: 0] += 1 }
            return answers.withLock { $0[target] } ?? .success
        }
        func answer(_ target: ProbeTarget, _ result: ProbeResult) { answers.withLock { $0[target] = result } }
        func count(_ target: ProbeTarget) -> Int { calls.withLock { $0[target] ?? 0 } }
    }

    static func manifests(nodeOfB: String = "") throws -> [RegistryObject] {
        try Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {clusterIP: None, selector: {app: web}, ports: [{name: http, port: 80}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: a, namespace: shop, labels: {app: web}}
            spec:
              nodeName: node-a
              containers:
              - name: app
                ports: [{name: http, containerPort: 8080}]
                readinessProbe: {tcpSocket: {port: http}, periodSeconds: 5, failureThreshold: 2}
            status: {podIP: 127.0.0.11, phase: Running}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: b, namespace: shop, labels: {app: web}}
            spec:
              nodeName: "\(nodeOfB)"
              containers:
              - name: app
                readinessProbe: {httpGet: {port: 8080, path: /ready}, initialDelaySeconds: 30}
            status: {podIP: 127.0.0.12, phase: Running}
            """).map { try $0.result.get() }
    }

    static let a = ProbeTarget.tcp(address: IPAddress("127.0.0.11")!, port: 8080)

    static func ready(_ registry: Registry, _ name: String) -> Bool? {
        guard case .pod(let pod)? = registry.get(ObjectKey(.pod, namespace: "shop", name: name)) else { return nil }
        return pod.isReady
    }

    /// Every prober waits with `containers` probes scheduled in all and sleeps until the first
    /// (one sleep on the clock each, whatever the number of pods): a test advances then.
    static func waiting(_ probers: Prober<TestClock>..., containers: Int, on clock: TestClock) -> Bool {
        probers.map(\.scheduled).reduce(0, +) == containers && clock.sleeping == (containers == 0 ? 0 : probers.count)
    }

    static func readyEndpoints(_ registry: Registry) -> [String] {
        let endpoints = registry.snapshot().serviceEndpoints[ObjectKey(.service, namespace: "shop", name: "web")]
        return (endpoints?.endpoints ?? []).filter(\.isReady).flatMap(\.addresses).map(\.description).sorted()
    }

    @Test func readinessFollowsTheProbesWithinTheThresholds() async throws {
        let registry = try Registry()
        for object in try Self.manifests(nodeOfB: "node-b") { try await registry.apply(object) }
        let clock = TestClock()
        let runner = ScriptedRunner()
        let prober = Prober(registry: registry, runner: runner, clock: clock, nodeName: "node-a", slack: .zero)
        let running = Task { await prober.run() }
        defer { running.cancel() }

        // The pod found at start is probed within its first period (spread), and only a, the
        // pod of node-a, is probed.
        #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
        runner.answer(Self.a, .failure("connection refused"))
        clock.advance(by: .seconds(5))
        #expect(await eventually { Self.ready(registry, "a") == false })
        #expect(Self.readyEndpoints(registry) == ["127.0.0.12"])

        // Back after one success (successThreshold 1).
        runner.answer(Self.a, .success)
        #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
        clock.advance(by: .seconds(5))
        #expect(await eventually { Self.ready(registry, "a") == true })
        #expect(Self.readyEndpoints(registry) == ["127.0.0.11", "127.0.0.12"])

        // One failure is not enough (failureThreshold 2); the second takes it out.
        runner.answer(Self.a, .failure("connection refused"))
        #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
        clock.advance(by: .seconds(5))
        #expect(await eventually { runner.count(Self.a) == 3 && Self.waiting(prober, containers: 1, on: clock) })
        #expect(Self.ready(registry, "a") == true)
        clock.advance(by: .seconds(5))
        #expect(await eventually { Self.ready(registry, "a") == false })
        #expect(runner.count(Self.a) == 4)
        #expect(await eventually { prober.counts.statusWrites == 3 })
    }

    @Test func withoutPodsNamingNodesEveryPodIsProbedAfterItsInitialDelay() async throws {
        let registry = try Registry()
        var objects = try Self.manifests()
        // a names no node either.
        if case .pod(var pod) = objects[1] { pod.spec.nodeName = ""; objects[1] = .pod(pod) }
        for object in objects { try await registry.apply(object) }
        let clock = TestClock()
        let runner = ScriptedRunner()
        let b = ProbeTarget.http(scheme: .http, address: IPAddress("127.0.0.12")!, port: 8080, host: "127.0.0.12:8080", path: "/ready", headers: [])
        runner.answer(b, .failure("HTTP probe failed with status code 503"))
        let prober = Prober(registry: registry, runner: runner, clock: clock, nodeName: "node-a", slack: .zero)
        let running = Task { await prober.run() }
        defer { running.cancel() }
        #expect(await eventually { Self.waiting(prober, containers: 2, on: clock) })
        // One jump over several of a's periods: a is probed (once at its spread start, once for
        // the tick kept from those jumped over); b waits for its initial delay.
        clock.advance(by: .seconds(29))
        #expect(await eventually { runner.count(Self.a) == 2 })
        #expect(runner.count(b) == 0)
        clock.advance(by: .seconds(1))
        #expect(await eventually { Self.ready(registry, "b") == false })
    }

    /// A manifest applied over the prober's verdict (its status says Ready) is put right again.
    @Test func aStatusWrittenOverTheVerdictIsPutRight() async throws {
        let registry = try Registry()
        let objects = try Self.manifests(nodeOfB: "node-b")
        for object in objects { try await registry.apply(object) }
        let clock = TestClock()
        let runner = ScriptedRunner()
        runner.answer(Self.a, .failure("connection refused"))
        let prober = Prober(registry: registry, runner: runner, clock: clock, nodeName: "node-a", slack: .zero)
        let running = Task { await prober.run() }
        defer { running.cancel() }
        #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
        clock.advance(by: .seconds(5))
        #expect(await eventually { Self.ready(registry, "a") == false })
        guard case .pod(var pod) = objects[1] else { Issue.record("not a pod"); return }
        pod.status.isReady = true
        try await registry.apply(.pod(pod))
        #expect(await eventually { Self.ready(registry, "a") == false })
        #expect(runner.count(Self.a) == 1)
    }

    /// Each container's readiness is written with the pod's (a container without probes is
    /// ready; one whose startup probe has not passed has not started); and a pod whose probes
    /// are taken away is ready again, as the kubelet counts a container without a readiness probe.
    @Test func containerStatusesFollowAndRemovedProbesLeaveThePodReady() async throws {
        let objects = try Manifest.decode("""
            apiVersion: v1
            kind: Pod
            metadata: {name: c, namespace: shop, labels: {app: web}}
            spec:
              containers:
              - name: app
                startupProbe: {tcpSocket: {port: 8080}, periodSeconds: 5}
                readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 5, failureThreshold: 1}
              - name: sidecar
            status: {podIP: 127.0.0.13, phase: Running}
            """).map { try $0.result.get() }
        let registry = try Registry()
        for object in objects { try await registry.apply(object) }
        let clock = TestClock()
        let runner = ScriptedRunner()
        let target = ProbeTarget.tcp(address: IPAddress("127.0.0.13")!, port: 8080)
        runner.answer(target, .failure("connection refused"))
        let prober = Prober(registry: registry, runner: runner, clock: clock, nodeName: nil, slack: .zero)
        let running = Task { await prober.run() }
        defer { running.cancel() }
        func statuses() -> [Pod.ContainerStatus]? {
            guard case .pod(let pod)? = registry.get(ObjectKey(.pod, namespace: "shop", name: "c")) else { return nil }
            return pod.status.containerStatuses
        }
        #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
        clock.advance(by: .seconds(5))
        #expect(await eventually { statuses() == [.init(name: "app", ready: false, started: false), .init(name: "sidecar", ready: true)] })
        #expect(Self.ready(registry, "c") == false)
        // Started, then ready.
        runner.answer(target, .success)
        for _ in 0..<2 {
            #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
            clock.advance(by: .seconds(5))
        }
        #expect(await eventually { statuses() == [.init(name: "app", ready: true, started: true), .init(name: "sidecar", ready: true)] })
        #expect(Self.ready(registry, "c") == true)
        // Failing again, then the probes are taken away: ready, with nothing left to probe.
        runner.answer(target, .failure("connection refused"))
        #expect(await eventually { Self.waiting(prober, containers: 1, on: clock) })
        clock.advance(by: .seconds(5))
        #expect(await eventually { Self.ready(registry, "c") == false })
        guard case .pod(var pod)? = registry.get(ObjectKey(.pod, namespace: "shop", name: "c")) else { Issue.record("gone"); return }
        pod.spec.containers[0].startupProbe = nil
        pod.spec.containers[0].readinessProbe = nil
        try await registry.apply(.pod(pod))
        #expect(await eventually { Self.ready(registry, "c") == true })
        #expect(statuses() == [.init(name: "app", ready: true), .init(name: "sidecar", ready: true)])
        #expect(await eventually { Self.waiting(prober, containers: 0, on: clock) })
    }

    /// Two probers on one registry, each announced by its Node: each pod is probed by one of
    /// them, the same one whichever prober decides; when one goes (its Node deleted, as its lease
    /// lapsing takes it out), the other takes its pods and probes them.
    @Test func announcedProbersShareThePodsAndTakeOverFromOneThatGoes() async throws {
        let registry = try Registry()
        var text = """
            apiVersion: v1
            kind: Node
            metadata: {name: node-a, annotations: {clusterdns.io/prober: "true"}}
            ---
            apiVersion: v1
            kind: Node
            metadata: {name: node-b, annotations: {clusterdns.io/prober: "true"}}
            """
        for index in 0..<8 {
            text += """

                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: w\(index), namespace: default}
                spec: {containers: [{name: app, readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 5}}]}
                status: {podIP: 127.0.1.\(index), phase: Running}
                """
        }
        for object in try Manifest.decode(text).map({ try $0.result.get() }) { try await registry.apply(object) }
        // The owners, pinned as in ProbeAssignmentTests.
        let owners = ["node-b", "node-a", "node-b", "node-b", "node-a", "node-a", "node-b", "node-a"]
        let clock = TestClock()
        let runners = [ScriptedRunner(), ScriptedRunner()]
        let probers = [Prober(registry: registry, runner: runners[0], clock: clock, nodeName: "node-a", slack: .zero),
                       Prober(registry: registry, runner: runners[1], clock: clock, nodeName: "node-b", slack: .zero)]
        let running = probers.map { prober in Task { await prober.run() } }
        defer { for task in running { task.cancel() } }
        #expect(await eventually { probers[0].counts.pods == 4 && probers[1].counts.pods == 4 })
        #expect(await eventually { Self.waiting(probers[0], probers[1], containers: 8, on: clock) })
        clock.advance(by: .seconds(5))
        let targets = (0..<8).map { ProbeTarget.tcp(address: IPAddress("127.0.1.\($0)")!, port: 8080) }
        #expect(await eventually { targets.allSatisfy { runners[0].count($0) + runners[1].count($0) == 1 } })
        for (target, owner) in zip(targets, owners) {
            #expect(runners[owner == "node-a" ? 0 : 1].count(target) == 1, "\(target) is \(owner)'s")
        }
        // node-b goes: node-a probes all eight, node-b none.
        _ = try await registry.delete(ObjectKey(.node, name: "node-b"))
        #expect(await eventually { probers[0].counts.pods == 8 && probers[1].counts.pods == 0 })
        // node-a alone sleeps now: node-b has nothing left to wait for.
        #expect(await eventually { probers[0].scheduled == 8 && probers[1].scheduled == 0 && clock.sleeping == 1 })
        clock.advance(by: .seconds(5))
        #expect(await eventually { targets.allSatisfy { runners[0].count($0) >= 1 } })
        #expect(targets.allSatisfy { runners[1].count($0) <= 1 })
    }

    /// Pods met within a period of the prober's start (a registry still being loaded) have their
    /// first probes spread over that period, as the kubelet spreads its workers after a restart,
    /// so that they do not come due together every period after; a pod created later is probed
    /// at once.
    @Test func podsMetAtStartAreSpreadAndALaterOneIsProbedAtOnce() async throws {
        let registry = try Registry()
        let clock = TestClock()
        let runner = ScriptedRunner()
        let prober = Prober(registry: registry, runner: runner, clock: clock, nodeName: nil, slack: .zero)
        let running = Task { await prober.run() }
        defer { running.cancel() }
        func pod(_ index: Int) throws -> RegistryObject {
            try Manifest.decode("""
                apiVersion: v1
                kind: Pod
                metadata: {name: p\(index), namespace: shop}
                spec: {containers: [{name: app, readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 10}}]}
                status: {podIP: 127.0.2.\(index), phase: Running}
                """)[0].result.get()
        }
        func probed() -> Int { (0..<21).map { runner.count(.tcp(address: IPAddress("127.0.2.\($0)")!, port: 8080)) }.reduce(0, +) }
        // Twenty pods arrive as changes after the prober has started (not in its first snapshot).
        #expect(await eventually { Self.waiting(prober, containers: 0, on: clock) })
        for index in 0..<20 { try await registry.apply(try pod(index)) }
        #expect(await eventually { Self.waiting(prober, containers: 20, on: clock) })
        #expect(probed() == 0)
        // Uniform over 10 s: all twenty in one half has a chance of 2 in a million.
        clock.advance(by: .seconds(5))
        #expect(await eventually { prober.scheduled == 20 && probed() > 0 })
        #expect(probed() < 20)
        clock.advance(by: .seconds(5))
        #expect(await eventually { probed() == 20 })
        // After the first period a new pod's first probe is not delayed.
        try await registry.apply(try pod(20))
        #expect(await eventually { runner.count(.tcp(address: IPAddress("127.0.2.20")!, port: 8080)) == 1 })
    }

    /// A probe slower than its period (a backend that holds it to its timeout) is followed at
    /// once by the next, as the kubelet's ticker keeps one missed tick: attempts at 1, 8 and 15 s
    /// for a 5 s period and a 7 s attempt, not 1, 11 and 21 s.
    @Test func aProbeSlowerThanItsPeriodIsFollowedAtOnce() async throws {
        final class SlowRunner: ProbeRunner {
            let clock: TestClock
            let starts = Mutex<[Duration]>([])
            init(clock: TestClock) { self.clock = clock }
            func run(_ target: ProbeTarget, timeout: Duration) async -> ProbeResult {
                starts.withLock { $0.append(clock.now.offset) }
                try? await clock.sleep(until: clock.now.advanced(by: .seconds(7)), tolerance: nil)
                return .failure("no answer within 7 s")
            }
        }
        let registry = try Registry()
        for object in try Manifest.decode("""
            apiVersion: v1
            kind: Pod
            metadata: {name: slow, namespace: shop}
            spec: {containers: [{name: app, readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 5, initialDelaySeconds: 1, failureThreshold: 3}}]}
            status: {podIP: 127.0.0.14, phase: Running}
            """).map({ try $0.result.get() }) { try await registry.apply(object) }
        let clock = TestClock()
        let runner = SlowRunner(clock: clock)
        let prober = Prober(registry: registry, runner: runner, clock: clock, nodeName: nil, slack: .zero)
        let running = Task { await prober.run() }
        defer { running.cancel() }
        #expect(await eventually { clock.sleeping == 1 })
        clock.advance(by: .seconds(1))
        for expected in 1...3 {
            #expect(await eventually { runner.starts.withLock { $0.count } == expected && clock.sleeping == 1 })
            if expected < 3 { clock.advance(by: .seconds(7)) }
        }
        #expect(runner.starts.withLock { $0 } == [.seconds(1), .seconds(8), .seconds(15)])
    }
}
