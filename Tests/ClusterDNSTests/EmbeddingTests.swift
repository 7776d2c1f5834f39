import ClusterDNS
import DNSWire
import DispatchSockets
import Foundation
import Logging
import ServiceLifecycle
import ServiceRegistry
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A service on a free loopback port that serves one manifest: `kubernetes` in `default`.
func kubernetesOnly() -> ClusterDNSConfiguration {
    var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!])
    configuration.embeddedManifests = """
        apiVersion: v1
        kind: Service
        metadata: {name: kubernetes, namespace: default}
        spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443}]}
        """
    return configuration
}

/// One datagram to 127.0.0.1:`port`, one reply (or nil after a second).
/// One datagram to the server on 127.0.0.1:`port`, its reply (nil after `seconds` without one).
func exchange(_ bytes: [UInt8], port: UInt16, seconds: Int = 1) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var tv = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    sin.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = recv(fd, &buffer, buffer.count, 0)
    return n > 0 ? Array(buffer[0..<n]) : nil
}

/// The embedding API as the README shows it: one `Service`, a registry to apply objects to.
@Suite struct EmbeddingTests {
    func ask(_ name: String, port: UInt16) -> Message? {
        let query = Message(header: Header(id: 1), questions: [Question(name: try! DomainName(name), type: .a)]).encoded()
        return exchange(query, port: port).flatMap { try? Message(decoding: $0) }
    }

    @Test func embedApplyAndQuery() async throws {
        var logger = Logger(label: "embedder")
        logger.logLevel = .warning
        let dns = try ClusterDNSService(
            configuration: .init(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!]), logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port

        var spec = Service.Spec()
        spec.ports = [.init(name: "http", port: 80)]
        try await dns.registry.apply(.service(Service(metadata: ObjectMeta(name: "api", namespace: "default"), spec: spec)))
        let address = try #require(dns.registry.snapshot().service(namespace: "default", name: "api")?.spec.clusterIP)

        // The zone follows the registry.
        var answer: Message? = nil
        #expect(await eventually {
            answer = ask("api.default.svc.cluster.local.", port: port)
            return answer?.answers.isEmpty == false
        })
        #expect(answer?.answers.map(\.data.presentation) == [address])
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// A zone updater that falls behind the registry (more events at once than its watch buffer
    /// holds) is cut off and resynchronises: a full compilation from a new snapshot, then the
    /// watch again. Nothing is lost: every service of the burst is answered, and later changes
    /// still follow.
    @Test func aZoneUpdaterThatFallsBehindResynchronises() async throws {
        var logger = Logger(label: "embedder")
        logger.logLevel = .error
        var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!])
        configuration.registry.watcherBuffer = 16
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        func service(_ name: String) -> RegistryObject {
            var spec = Service.Spec()
            spec.ports = [.init(name: "http", port: 80)]
            return .service(Service(metadata: ObjectMeta(name: name, namespace: "default"), spec: spec))
        }
        func answered(_ name: String) async throws -> Bool {
            await eventually { ask("\(name).default.svc.cluster.local.", port: port)?.answers.isEmpty == false }
        }
        // 200 services in one batch: published at once, far past the updater's buffer of 16.
        let results = await dns.registry.apply(contentsOf: (0..<200).map { service("burst-\($0)") })
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        #expect(try await answered("burst-0"))
        #expect(try await answered("burst-199"))
        #expect(dns.cluster.resourceVersion >= dns.registry.resourceVersion - 1)
        // And the watch goes on after the resynchronisation.
        try await dns.registry.apply(service("after"))
        #expect(try await answered("after"))
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// `isServing` (what `/ready` asks) turns true only once the zone is compiled from the
    /// loaded registry and the DNS addresses answer, and false again at shutdown.
    @Test func servingMeansAnswering() async throws {
        var logger = Logger(label: "embedder")
        logger.logLevel = .warning
        let dns = try ClusterDNSService(
            configuration: .init(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!]), logger: logger)
        #expect(!dns.isServing)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        #expect(await eventually { dns.isServing })
        // Serving: an unknown name is NXDOMAIN at once (SERVFAIL would mean the zone was not
        // yet loaded; no reply, that nothing listens).
        let port = try #require(await dns.server.boundAddresses.first).port
        #expect(ask("nothing.default.svc.cluster.local.", port: port)?.rcode == .nameError)
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(!dns.isServing)
    }

    /// A start from a restored state compiles the cluster zone once, when serving starts: its
    /// services are compiled whole once (twice would be a third of a start at 10,000), and
    /// they are answered.
    @Test func aRestoredStateIsCompiledOnce() async throws {
        var logger = Logger(label: "embedder")
        logger.logLevel = .warning
        let state = Scratch.url("restored-once").path
        do {
            let registry = try Registry(storage: SQLiteStorage(directory: state))
            var spec = Service.Spec()
            spec.ports = [.init(name: "http", port: 80)]
            for name in ["a", "b", "c"] {
                try await registry.apply(.service(Service(metadata: ObjectMeta(name: name, namespace: "default"), spec: spec)))
            }
        }
        var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!])
        configuration.stateDirectory = state
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        #expect(await eventually { dns.isServing })
        let port = try #require(await dns.server.boundAddresses.first).port
        #expect(ask("c.default.svc.cluster.local.", port: port)?.answers.isEmpty == false)
        #expect(dns.cluster.servicesCompiledWhole == 3)
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
