import ServiceRegistry
import Testing
import WorkloadProbes

/// A container's readiness as the kubelet derives it from probe results: table cases of
/// probes, a sequence of results, and the readiness after each.
struct ProbeStateTests {
    static let tcp = Probe.Action.tcpSocket(Probe.TCPSocket(port: .int(80)))

    struct Case: CustomTestStringConvertible, Sendable {
        var reason: String
        var startup: Probe?
        var readiness: Probe?
        /// "s" for a success, "f" for a failure.
        var results: String
        /// Readiness after each result: "R" ready, "N" not ready, "?" not decided yet.
        var expected: String
        var testDescription: String { reason }
    }

    static let cases: [Case] = [
        Case(reason: "readiness: one success makes it ready (default threshold 1)",
             readiness: Probe(action: tcp), results: "s", expected: "R"),
        Case(reason: "readiness: a first failure says not ready at once (it starts as a failure)",
             readiness: Probe(action: tcp), results: "fs", expected: "NR"),
        Case(reason: "readiness: failureThreshold 3 consecutive failures take it out, not 2",
             readiness: Probe(action: tcp), results: "sffsfff", expected: "RRRRRRN"),
        Case(reason: "readiness: successThreshold 2 needs two in a row to come back",
             readiness: Probe(action: tcp, successThreshold: 2, failureThreshold: 1), results: "ssfsfss", expected: "?RNNNNR"),
        Case(reason: "startup: nothing is ready until the startup probe has succeeded, then readiness decides",
             startup: Probe(action: tcp, failureThreshold: 2), readiness: Probe(action: tcp), results: "ffsfs", expected: "NNNNR"),
        Case(reason: "startup without readiness: started is ready",
             startup: Probe(action: tcp), results: "fs", expected: "NR"),
        Case(reason: "startup succeeded once: its failures no longer count (only readiness is probed)",
             startup: Probe(action: tcp), readiness: Probe(action: tcp, failureThreshold: 1), results: "ssf", expected: "?RN"),
    ]

    @Test(arguments: cases) func readinessFollowsTheResults(_ c: Case) {
        var state = ContainerProbeState(startup: c.startup, readiness: c.readiness)
        var seen = ""
        for result in c.results {
            _ = state.record(result == "s" ? .success : .failure("refused"))
            seen += state.ready.map { $0 ? "R" : "N" } ?? "?"
        }
        #expect(seen == c.expected)
    }

    @Test func aChangeIsReportedOnceAndTheProbeInUseFollowsThePhase() {
        let startup = Probe(action: Self.tcp, periodSeconds: 1)
        let readiness = Probe(action: Self.tcp, periodSeconds: 5)
        var state = ContainerProbeState(startup: startup, readiness: readiness)
        #expect(state.current == startup && state.ready == nil)
        #expect(state.record(.success) == nil)
        #expect(state.current == readiness && state.phase == .running)
        #expect(state.record(.success) == true)
        #expect(state.record(.success) == nil)
        #expect(state.record(.failure("HTTP 503")) == nil && state.lastFailure == "HTTP 503")
    }

    @Test func aContainerWithoutProbesIsReady() {
        #expect(ContainerProbeState(startup: nil, readiness: nil).ready == true)
    }
}
