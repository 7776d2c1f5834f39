import ClusterDNS
import DNSAuthority
import DNSResolver
import DNSWire
import DispatchSockets
import Foundation
import Logging
import MetricsTestKit
import NetAddress
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A UDP upstream on 127.0.0.1 that answers every question with `address`; while `held`, it
/// keeps the answers back until `release()`.
final class SlowUpstream: @unchecked Sendable {
    let fd: Int32
    let port: UInt16
    /// Shared with the answering thread.
    final class State: Sendable {
        let gate = DispatchSemaphore(value: 0)
        let holding = Atomic<Bool>(false)
        let received = Atomic<Int>(0)
    }
    let state = State()

    /// Questions received so far.
    var received: Int { state.received.load(ordering: .relaxed) }

    /// Holds the answers to the next questions back until `release()`.
    func hold() { state.holding.store(true, ordering: .relaxed) }

    /// Sends the answer held back.
    func release() {
        state.holding.store(false, ordering: .relaxed)
        state.gate.signal()
    }

    init(address: String) {
        let state = self.state
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                _ = bind(fd, p, length)
                return getsockname(fd, p, &length)
            }
        }
        self.fd = fd
        port = UInt16(bigEndian: sin.sin_port)
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 2048)
            while true {
                var peer = sockaddr_storage()
                var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &peerLength) }
                }
                guard n > 0 else { return }
                guard let query = try? Message(decoding: Array(buffer[0..<n])) else { continue }
                state.received.add(1, ordering: .relaxed)
                if state.holding.load(ordering: .relaxed) { state.gate.wait() }
                var response = Message(header: Header(id: query.header.id, isResponse: true, isRecursionDesired: true,
                                                      isRecursionAvailable: true), questions: query.questions)
                response.answers = [ResourceRecord(name: query.questions[0].name, ttl: 60, data: .a(IPv4Address(address)!))]
                let bytes = response.encoded()
                _ = withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, peerLength) }
                }
            }
        }
    }

    var address: SocketAddress { SocketAddress(address: IPAddress("127.0.0.1")!, port: port) }
}

@Suite struct ReconfigureTests {
    @Test func questionsInFlightSurviveAForwardingChange() async throws {
        let slow = SlowUpstream(address: "192.0.2.1")
        let fast = SlowUpstream(address: "192.0.2.2")
        var logger = Logger(label: "reconfigure")
        logger.logLevel = .warning
        var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!])
        // The question held at the slow upstream waits as long as the test needs, on a busy
        // machine too: no read timeout or deadline of the old resolver, nor the client's, ends it.
        var forwarding = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [slow.address])])
        forwarding.readTimeout = .seconds(30)
        forwarding.deadline = .seconds(30)
        configuration.forwarding = forwarding
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        @Sendable func ask(_ name: String) -> Message? {
            let query = Message(header: Header(id: 3, isRecursionDesired: true), questions: [Question(name: try! DomainName(name), type: .a)])
            return exchange(query.encoded(), port: port, seconds: 30).flatMap { try? Message(decoding: $0) }
        }
        // A first question arms the resolver's pre-opened sockets (so the next one uses them).
        #expect(ask("warmup.example.")?.answers.count == 1)
        // A question goes to the slow upstream; while it is held there, forwarding is switched over.
        slow.hold()
        let inFlight = onThread { ask("first.example.") }
        #expect(await eventually { slow.received == 2 })
        dns.reconfigureForwarding(UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [fast.address])]),
                                  allowRecursion: RecursionPolicy.privateRanges)
        // New questions use the new upstream at once; the one in flight still gets its answer.
        #expect(ask("second.example.")?.answers.map(\.data.presentation) == ["192.0.2.2"])
        slow.release()
        #expect(await inFlight.value?.answers.map(\.data.presentation) == ["192.0.2.1"])
        await group.triggerGracefulShutdown()
        try await running.value
    }
}

@Suite struct CountersAcrossReconfigurationTests {
    /// 5 forwarded questions, a reconfiguration (what SIGHUP does with changed forwarding
    /// settings), 7 more: the exported totals say 12, not 7 (the new resolver counts from zero).
    @Test func countersStayCompleteAcrossAForwardingChange() async throws {
        let upstream = SlowUpstream(address: "192.0.2.1")
        let metrics = TestMetrics()
        var logger = Logger(label: "counters")
        logger.logLevel = .warning
        var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!])
        configuration.metricsFactory = metrics
        configuration.forwarding = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [upstream.address])])
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        func ask(_ name: String) -> Message? {
            let query = Message(header: Header(id: 5, isRecursionDesired: true), questions: [Question(name: try! DomainName(name), type: .a)])
            return exchange(query.encoded(), port: port).flatMap { try? Message(decoding: $0) }
        }
        let requests = { try metrics.expectCounter("clusterdns_dns_upstream_requests_total", [("upstream", upstream.address.description)]).totalValue }
        let misses = { try metrics.expectCounter("clusterdns_dns_cache_misses_total", []).totalValue }
        for i in 0..<5 { #expect(ask("before-\(i).example.")?.answers.count == 1) }
        dns.metrics?.refresh(service: dns)
        #expect(try requests() == 5)
        #expect(try misses() == 5)
        var changed = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [upstream.address])])
        changed.cache.capacity = 500
        dns.reconfigureForwarding(changed, allowRecursion: RecursionPolicy.privateRanges)
        for i in 0..<7 { #expect(ask("after-\(i).example.")?.answers.count == 1) }
        dns.metrics?.refresh(service: dns)
        #expect(try requests() == 12)
        #expect(try misses() == 12)
        #expect(dns.resolverTotals.upstreamQueries[upstream.address.description] == 12)
        await group.triggerGracefulShutdown()
        try await running.value
    }
}

/// A name answered from upstream and cached, then a static zone that covers it: the zone's
/// answer at once, not the cached one (the set of zones changed, so the cache is emptied);
/// and once the zone is removed, the name is forwarded again.
@Suite struct CacheAcrossZoneChangesTests {
    @Test func aNewZoneIsAnsweredAtOnceAndARemovedOneIsForwardedAgain() async throws {
        let upstream = SlowUpstream(address: "192.0.2.1")
        let directory = Scratch.url("zones").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "cache-flush")
        logger.logLevel = .warning
        var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!])
        configuration.zonesDirectory = directory
        configuration.forwarding = UpstreamResolver.Configuration(groups: [UpstreamGroup(servers: [upstream.address])])
        let dns = try ClusterDNSService(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [dns], logger: logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        func ask(_ name: String) throws -> (addresses: [String], authoritative: Bool) {
            let query = Message(header: Header(id: 9, isRecursionDesired: true), questions: [Question(name: try DomainName(name), type: .a)])
            let reply = try Message(decoding: try #require(exchange(query.encoded(), port: port, seconds: 5)))
            return (reply.answers.map(\.data.presentation), reply.header.isAuthoritative)
        }
        // Forwarded, then the same answer from the cache.
        #expect(try ask("www.example.test.") == (["192.0.2.1"], false))
        #expect(try ask("www.example.test.") == (["192.0.2.1"], false))
        #expect(upstream.received == 1, "the second answer came from the cache")

        try """
            $TTL 60
            @   IN SOA ns hostmaster 1 7200 900 1209600 60
                IN NS ns
            ns  IN A 192.0.2.53
            www IN A 198.51.100.7
            """.write(toFile: directory + "/example.test.zone", atomically: true, encoding: .utf8)
        // Reloaded by this call or by the service's own watch of the directory, whichever is first.
        dns.reloadZones()
        #expect(try await eventually { try ask("www.example.test.") == (["198.51.100.7"], true) })

        try FileManager.default.removeItem(atPath: directory + "/example.test.zone")
        dns.reloadZones()
        #expect(try await eventually { try ask("www.example.test.") == (["192.0.2.1"], false) })
        #expect(upstream.received == 2, "asked upstream again, not answered from a cache of before the zone")
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
