@testable import DNSResolver
import DNSWire
import Testing
import TestSupport

/// The resolver's one timer is set for the earliest deadline of what is in flight (no tick
/// while nothing is due), an exchange leaves its table when it ends, and the timer goes once
/// nothing is left.
@Suite(.serialized) struct ResolverSweepTests {
    @Test func theTimerFollowsTheEarliestDeadlineAndEndedExchangesLeaveAtOnce() async throws {
        let upstream = FakeUpstream { query in
            query.questions.first?.name.description.hasPrefix("hold.") == true ? [] : [FakeUpstream.Reply(bytes: FakeUpstream.answer(query))]
        }
        let server = try await ForwardingServer(upstreams: [upstream.address])
        let resolver = server.resolver
        func table() -> (exchanges: [UInt64], due: UInt64?, timer: Bool) {
            resolver.queue.sync { (resolver.exchanges.values.map(\.deadline).sorted(), resolver.sweepDue, resolver.sweeper != nil) }
        }
        // Answered: gone from the table as it ends, not at a later sweep.
        #expect(try server.ask("answered.example.").answers.count == 1)
        #expect(table().exchanges.isEmpty)
        // Held: the timer is due exactly at its deadline.
        let held = server.asking("hold.example.")
        #expect(await eventually { table().exchanges.count == 1 })
        let first = table()
        #expect(first.due == first.exchanges.first && first.timer)
        // A second one, later: the timer stays where it was.
        server.clock.advance(by: .milliseconds(100))
        let second = server.asking("hold.second.example.")
        #expect(await eventually { table().exchanges.count == 2 })
        #expect(table().due == first.exchanges.first)
        // The first times out: the timer moves to the second's deadline (at least 10 ms on).
        server.advance(by: .milliseconds(300))
        let after = table()
        #expect(after.due.map { due in after.exchanges.contains(due) || due == resolver.clock.now() + UpstreamResolver.sweepInterval } == true,
                "\(after)")
        // Both time out; the upstream, down after its failures, is probed (its probe answered)
        // and is up again: then nothing is due and no timer is left.
        func idle() -> Bool { resolver.queue.sync { resolver.exchanges.isEmpty && resolver.down.isEmpty } }
        for _ in 0..<10 { server.advance(by: .milliseconds(200)) }
        // Each probe is answered in real time: wait for it before the clock moves again.
        for _ in 0..<20 where !idle() {
            server.advance(by: .milliseconds(200))
            _ = await eventually(within: 10) { resolver.queue.sync { resolver.exchanges.isEmpty } }
        }
        #expect(idle())
        #expect(await held.value?.rcode == .serverFailure)
        #expect(await second.value?.rcode == .serverFailure)
        server.advance(by: .milliseconds(400))
        #expect(!table().timer && table().due == nil)
    }
}
