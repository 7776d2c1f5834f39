import EtcdStore
import Logging
import NetAddress
import ServiceLifecycle
import ServiceRegistry
import WorkloadProbes

/// What a node's replica does for its node with a shared registry (`--etcd` with `--forwarder` or
/// `--probes`), as the kubelet does: holds the node's lease (its heartbeat) and keeps its Node
/// object, annotated so that every replica takes the node's endpoints out when the lease lapses,
/// and, with `--probes`, announced as a prober, so that pods that name no node are shared among
/// the probers alive. The lease is revoked on shutdown: the node's endpoints leave, and its pods
/// go to the other probers, at once, not a lease's length later.
struct NodeAgent: ServiceLifecycle.Service {
    let store: EtcdRegistryStore
    let registry: Registry
    let node: String
    let addresses: [IPAddress]
    let ttl: Duration
    /// This replica probes (`--probes`): its Node says so.
    let probes: Bool
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await store.holdNodeLease(node, ttl: ttl) { problem in
                        logger.warning("node lease", metadata: ["node": "\(node)", "problem": "\(problem)"])
                    }
                }
                group.addTask { await keepNodeObject() }
                await group.waitForAll()
            }
        }
    }

    /// Once the lease is seen (so the node never looks lapsed for want of it), the Node object
    /// exists and carries the lease annotation, and the prober annotation exactly when this
    /// replica probes: created with the node's addresses when missing.
    func keepNodeObject() async {
        let key = ObjectKey(.node, name: node)
        let value = "\(ttl.components.seconds)s"
        while !Task.isCancelled {
            let snapshot = registry.snapshot()
            guard registry.sharedRevision != nil, snapshot.leasedNodes.contains(node) else {
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            let existing = snapshot.get(key)
            let prober = probes ? "true" : nil
            if let existing, existing.metadata.annotations[RegistrySnapshot.nodeLeaseAnnotation] == value,
               existing.metadata.annotations[ProbeAssignment.proberAnnotation] == prober { return }
            var object = existing ?? .node(Node(metadata: ObjectMeta(name: node),
                                                addresses: addresses.map { Node.Address(type: "InternalIP", address: $0.description) }))
            object.metadata.annotations[RegistrySnapshot.nodeLeaseAnnotation] = value
            object.metadata.annotations[ProbeAssignment.proberAnnotation] = prober
            let preconditions = existing.map { WritePreconditions(resourceVersion: $0.metadata.resourceVersion) }
                ?? WritePreconditions(mustNotExist: true)
            do {
                _ = try await registry.write(object, preconditions: preconditions)
                logger.info("node registered", metadata: ["node": "\(node)", "lease": "\(value)", "prober": "\(probes)"])
                return
            } catch {
                // Another writer came first, or etcd is away: look again shortly.
                logger.debug("node not registered yet", metadata: ["node": "\(node)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
