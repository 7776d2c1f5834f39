public import ServiceRegistry

/// What one probe attempt found.
public enum ProbeResult: Hashable, Sendable {
    case success
    /// Why it failed, in words for the log ("connection refused", "HTTP 503", "no answer within 1 s").
    case failure(String)

    public var succeeded: Bool { self == .success }
}

/// One container's readiness as the kubelet keeps it: a startup probe first (nothing else is
/// probed until it has succeeded once), then the readiness probe, each result counted against
/// the probe's thresholds. Pure: the prober feeds it results and acts on what it returns.
public struct ContainerProbeState: Hashable, Sendable {
    public enum Phase: Hashable, Sendable {
        /// The startup probe has not succeeded yet: the container is not ready.
        case starting
        /// Started (or no startup probe): readiness follows the readiness probe.
        case running
    }

    public let startup: Probe?
    public let readiness: Probe?
    public private(set) var phase: Phase
    /// Ready for traffic; nil until a probe has decided (the status already stored stands until then).
    public private(set) var ready: Bool?
    public private(set) var successes = 0
    public private(set) var failures = 0
    /// The last failure's reason, for the log and the metrics.
    public private(set) var lastFailure: String? = nil

    public init(startup: Probe?, readiness: Probe?) {
        self.startup = startup
        self.readiness = readiness
        phase = startup == nil ? .running : .starting
        // Without a startup probe and without a readiness probe a started container is ready.
        ready = startup == nil && readiness == nil ? true : nil
    }

    /// The probe to run next: the startup probe while starting, then the readiness probe.
    public var current: Probe? { phase == .starting ? startup : readiness }

    /// Takes one result of `current`; returns the container's readiness when it changes.
    public mutating func record(_ result: ProbeResult) -> Bool? {
        let before = ready
        if case .failure(let reason) = result { lastFailure = reason }
        switch phase {
        case .starting:
            guard let startup else { return nil }
            if result.succeeded {
                successes += 1
                failures = 0
                // A startup probe's success threshold is always 1 (validated).
                if successes >= startup.successThreshold {
                    phase = .running
                    successes = 0
                    // With no readiness probe, started means ready; otherwise it waits for one.
                    if readiness == nil { ready = true }
                }
            } else {
                failures += 1
                successes = 0
                // The kubelet would restart the container and probe its startup again; there is
                // nothing to restart here, so it stays not ready and starts counting again.
                ready = false
                if failures >= startup.failureThreshold { failures = 0 }
            }
        case .running:
            guard let readiness else { return nil }
            if result.succeeded {
                successes += 1
                failures = 0
                if successes >= readiness.successThreshold { ready = true }
            } else {
                failures += 1
                successes = 0
                // Until the first decision, one failure is enough to say not ready (the
                // kubelet's readiness starts as a failure); after that, the threshold decides.
                if failures >= readiness.failureThreshold || ready == nil { ready = false }
            }
        }
        return ready != before ? ready : nil
    }
}
