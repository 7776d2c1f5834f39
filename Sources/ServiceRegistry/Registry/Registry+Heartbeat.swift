/// Heartbeats for workloads that report their own health (Consul's TTL checks): a pod
/// annotated `clusterdns.io/ready-ttl` stays Ready only while it is renewed within that time.
/// A renewal is an ordinary status write, so every replica of a shared registry sees it, and
/// the Kubernetes API's `pods/NAME/status` writes renew in the same way.
extension Registry {
    /// Sets the pod's Ready condition to `ready` and its `lastProbeTime` to now, reading the
    /// pod again after a conflicting write; returns the pod as stored. The time is kept to the
    /// second (as Kubernetes keeps it), so renewals more often than once a second are one.
    @discardableResult
    public func renew(_ key: ObjectKey, ready: Bool = true) async throws(RegistryError) -> Pod {
        guard key.kind == .pod else { throw .badManifest("only pods are renewed, not \(key.kind.plural)") }
        var attempt = 0
        while true {
            attempt += 1
            guard case .pod(var pod)? = get(key) else { throw .notFound(key) }
            pod.status.isReady = ready
            pod.status.readyProbeTime = state.withLock { $0.wallClock() }
            do {
                let (_, stored) = try await write(.pod(pod), preconditions: WritePreconditions(
                    mustExist: true, uid: pod.metadata.uid, resourceVersion: pod.metadata.resourceVersion))
                guard case .pod(let written) = stored else { return pod }
                return written
            } catch .conflict where attempt < 5 {
                continue
            }
        }
    }
}
