import ClusterDNS
import CoreMetrics
import DNSWire
import DispatchSockets
import Foundation
import Logging
import MetricsTestKit
import ServiceLifecycle
import ServiceRegistry
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct MetricsTests {
    func query(_ name: String, _ type: RecordType) -> [UInt8] {
        Message(header: Header(id: 9), questions: [Question(name: try! DomainName(name), type: type)]).encoded()
    }

    @Test func countersFollowAKnownSetOfQueries() async throws {
        let metrics = TestMetrics()
        var logger = Logger(label: "metrics")
        logger.logLevel = .warning
        var configuration = kubernetesOnly()
        configuration.metricsFactory = metrics
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        // Wait for the first load (answers are SERVFAIL before it).
        #expect(await eventually { exchange(query("kubernetes.default.svc.cluster.local.", .a), port: port).map { $0[3] & 0x0F == 0 } ?? false })
        let before = try metrics.expectCounter("clusterdns_dns_requests_total", [("transport", "udp"), ("type", "A")]).totalValue

        for _ in 0..<3 { #expect(exchange(query("kubernetes.default.svc.cluster.local.", .a), port: port) != nil) }
        #expect(exchange(query("nope.default.svc.cluster.local.", .aaaa), port: port) != nil)
        #expect(exchange(query("kubernetes.default.svc.cluster.local.", .srv), port: port) != nil)
        #expect(exchange(query("www.example.org.", .txt), port: port) != nil)  // no forwarding: REFUSED
        var bad = query("kubernetes.default.svc.cluster.local.", .a)
        bad.append(0xFF)  // a trailing byte: FORMERR
        #expect(exchange(bad, port: port) != nil)
        #expect(exchange([1, 2, 3], port: port) == nil)  // not even a header: dropped

        let counter = { (label: String, dimensions: [(String, String)]) in try metrics.expectCounter(label, dimensions).totalValue }
        #expect(try counter("clusterdns_dns_requests_total", [("transport", "udp"), ("type", "A")]) - before == 4)
        #expect(try counter("clusterdns_dns_requests_total", [("transport", "udp"), ("type", "AAAA")]) == 1)
        #expect(try counter("clusterdns_dns_requests_total", [("transport", "udp"), ("type", "SRV")]) == 1)
        #expect(try counter("clusterdns_dns_requests_total", [("transport", "udp"), ("type", "TXT")]) == 1)
        #expect(try counter("clusterdns_dns_responses_total", [("transport", "udp"), ("rcode", "NXDOMAIN")]) == 1)
        #expect(try counter("clusterdns_dns_responses_total", [("transport", "udp"), ("rcode", "REFUSED")]) == 1)
        #expect(try counter("clusterdns_dns_responses_total", [("transport", "udp"), ("rcode", "FORMERR")]) == 1)
        #expect(try counter("clusterdns_dns_dropped_total", []) == 1)
        #expect(try metrics.expectTimer("clusterdns_dns_request_duration_seconds", [("transport", "udp")]).values.count >= 7)

        // Pulled at scrape time.
        dns.metrics?.refresh(service: dns)
        #expect(try metrics.expectGauge("clusterdns_registry_objects", [("kind", "Service")]).lastValue == 1)

        // A registry change is timed from commit to served.
        var spec = Service.Spec()
        spec.ports = [.init(name: "http", port: 80)]
        try await dns.registry.apply(.service(Service(metadata: ObjectMeta(name: "api", namespace: "default"), spec: spec)))
        #expect(await eventually { ((try? metrics.expectTimer("clusterdns_dns_programming_duration_seconds").values.count) ?? 0) >= 1 })
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// Each service's endpoints by readiness, pulled at scrape time; a deleted service's
    /// series are removed, not left at their last value.
    @Test func endpointsByReadinessPerService() async throws {
        let metrics = TestMetrics()
        let dns = try await serviceWithWeb(metrics)
        dns.metrics?.refresh(service: dns)
        #expect(try metrics.expectGauge("clusterdns_service_endpoints", [("service", "shop/web"), ("ready", "true")]).lastValue == 2)
        #expect(try metrics.expectGauge("clusterdns_service_endpoints", [("service", "shop/web"), ("ready", "false")]).lastValue == 1)
        try await dns.registry.delete(ObjectKey(.service, namespace: "shop", name: "web"))
        dns.metrics?.refresh(service: dns)
        #expect(throws: (any Error).self) { try metrics.expectGauge("clusterdns_service_endpoints", [("service", "shop/web"), ("ready", "true")]) }
    }

    /// The same through the daemon's factory, as /metrics writes it: every scrape sets the
    /// series it made at the first (a pod turning ready moves them), a deleted service's go.
    @Test func endpointsInTheDaemonsText() async throws {
        let factory = AtomicMetricsFactory(wrapping: TestMetrics(), buckets: [.milliseconds(1)])
        let dns = try await serviceWithWeb(factory)
        let lines = {
            dns.metrics?.refresh(service: dns)
            return factory.emitToString().split(separator: "\n").filter { $0.contains("clusterdns_service_endpoints") }
        }
        #expect(lines() == ["# TYPE clusterdns_service_endpoints gauge", #"clusterdns_service_endpoints{service="shop/web",ready="false"} 1.0"#,
                            #"clusterdns_service_endpoints{service="shop/web",ready="true"} 2.0"#])
        var pod = try #require(dns.registry.snapshot().objects[ObjectKey(.pod, namespace: "shop", name: "b")].flatMap { object -> Pod? in
            if case .pod(let pod) = object { return pod } else { return nil }
        })
        pod.status.isReady = true
        try await dns.registry.apply(.pod(pod))
        #expect(lines() == ["# TYPE clusterdns_service_endpoints gauge", #"clusterdns_service_endpoints{service="shop/web",ready="false"} 0.0"#,
                            #"clusterdns_service_endpoints{service="shop/web",ready="true"} 3.0"#])
        try await dns.registry.delete(ObjectKey(.service, namespace: "shop", name: "web"))
        #expect(lines() == [])
    }

    /// A service `shop/web` selecting three pods: ready, not ready, and without conditions (ready).
    func serviceWithWeb(_ factory: any MetricsFactory) async throws -> ClusterDNSService {
        var logger = Logger(label: "metrics")
        logger.logLevel = .warning
        var configuration = kubernetesOnly()
        configuration.metricsFactory = factory
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        for entry in Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: a, namespace: shop, labels: {app: web}}
            spec: {containers: [{name: c}]}
            status: {podIP: 10.244.0.1, conditions: [{type: Ready, status: "True"}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: b, namespace: shop, labels: {app: web}}
            spec: {containers: [{name: c}]}
            status: {podIP: 10.244.0.2, conditions: [{type: Ready, status: "False"}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: c, namespace: shop, labels: {app: web}}
            spec: {containers: [{name: c}]}
            status: {podIP: 10.244.0.3}
            """) { try await dns.registry.apply(try entry.result.get()) }
        return dns
    }
}
