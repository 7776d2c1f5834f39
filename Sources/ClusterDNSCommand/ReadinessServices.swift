import ClusterDNS
import DispatchSockets
import Logging
import ServiceLifecycle
import ServiceRegistry
import WorkloadProbes

/// `serve --probes`: the readiness and startup probes of this node's pods, run as the kubelet
/// runs them, their results written through the registry (so a shared registry hears them too).
struct ProbeService: ServiceLifecycle.Service {
    let prober: Prober<EventLoopClock>
    let node: String
    let logger: Logger

    init(registry: Registry, node: String, exec: Bool, metrics: DNSMetrics?, logger: Logger) {
        self.node = node
        self.logger = logger
        let runner = NetworkProbeRunner(exec: exec ? CommandProbeRunner() : nil)
        prober = Prober(registry: registry, runner: runner, clock: runner.clock, nodeName: node, executor: runner.executor, observe: { succeeded, took in
            metrics?.duration("clusterdns_probe_duration_seconds", [("result", succeeded ? "success" : "failure")], took)
        }) { message in
            logger.info("\(message)", source: logSource)
        }
    }

    func run() async throws {
        logger.info("probing the pods of this node", metadata: ["node": "\(node)"], source: logSource)
        await cancelWhenGracefulShutdown { await prober.run() }
    }
}

/// Heartbeat pods (annotated `clusterdns.io/ready-ttl`) turned NotReady when nobody renews
/// them in time. Always on: only annotated pods are affected.
struct HeartbeatService: ServiceLifecycle.Service {
    let monitor: HeartbeatMonitor<ContinuousClock>

    init(registry: Registry, logger: Logger) {
        monitor = HeartbeatMonitor(registry: registry, clock: ContinuousClock(), log: { message in
            logger.info("\(message)", source: logSource)
        })
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await monitor.run() }
    }
}
