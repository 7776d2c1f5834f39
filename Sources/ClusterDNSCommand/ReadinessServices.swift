import Logging
import ServiceLifecycle
import ServiceRegistry
import WorkloadProbes

/// `serve --probes`: the readiness and startup probes of this node's pods, run as the kubelet
/// runs them, their results written through the registry (so a shared registry hears them too).
struct ProbeService: ServiceLifecycle.Service {
    let prober: Prober<ContinuousClock>
    let node: String
    let logger: Logger

    init(registry: Registry, node: String, logger: Logger) {
        self.node = node
        self.logger = logger
        prober = Prober(registry: registry, runner: NetworkProbeRunner(), clock: ContinuousClock(), nodeName: node) { message in
            logger.info("\(message)", source: logSource)
        }
    }

    func run() async throws {
        logger.info("probing the pods of this node", metadata: ["node": "\(node)"], source: logSource)
        await cancelWhenGracefulShutdown { await prober.run() }
    }
}
