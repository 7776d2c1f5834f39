@testable import ClusterDNS
import DNSWire
import DispatchSockets
import Logging
import ServiceLifecycle
import Testing
import TestSupport

/// Without a metrics factory the service keeps no metrics, but still counts malformed
/// queries (dropped or FORMERR) for its once-a-minute log summary.
@Suite struct MalformedTallyTests {
    @Test func malformedQueriesAreCountedWithoutMetrics() async throws {
        var logger = Logger(label: "tally")
        logger.logLevel = .warning
        let dns = try ClusterDNSService(configuration: kubernetesOnly(), logger: logger)
        #expect(dns.metrics == nil)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        let good = Message(header: Header(id: 9), questions: [Question(name: try DomainName("kubernetes.default.svc.cluster.local."), type: .a)]).encoded()
        #expect(await eventually { exchange(good, port: port).map { $0[3] & 0x0F == 0 } ?? false }, "serving")
        _ = dns.malformed.take()
        var bad = good
        bad.append(0xFF)  // FORMERR
        #expect(exchange(bad, port: port).map { $0[3] & 0x0F } == 1)
        #expect(exchange([1, 2, 3], port: port) == nil)  // dropped
        #expect(exchange(good, port: port) != nil)
        #expect(dns.malformed.take() == 2)
        #expect(dns.malformed.take() == 0)
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
