@testable import EtcdClient
import Testing
import TestSupport

/// The etcd client against a real etcd (Debian's etcd-server 3.4) on loopback: what the
/// registry will build on, each behaviour as etcd defines it.
@Suite(.serialized) struct EtcdClientTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Runs `body` with a client of a fresh cluster of `size` members. The timeout is generous:
    /// the suites run side by side on two cores, and no test here is about how fast etcd is.
    func withEtcd(size: Int = 1, timeout: Duration = .seconds(30),
                  _ body: (EtcdClient, EtcdCluster) async throws -> Void) async throws {
        let cluster = try await EtcdCluster.starting(size: size)
        defer { cluster.stop() }
        var configuration = try EtcdConfiguration(urls: cluster.clientURLs)
        configuration.requestTimeout = timeout
        let client = try EtcdClient(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { client.shutdown() }
            try await body(client, cluster)
        }
    }

    @Test func keysTransactionsAndPagedLists() async throws {
        try await withEtcd { etcd, _ in
            let first = try await etcd.put(bytes("/t/services/shop/web"), bytes("v1"))
            let read = try #require(try await etcd.range(bytes("/t/services/shop/web")).keyValues.first)
            #expect(Array(read.value) == bytes("v1") && read.modRevision == first && read.version == 1)
            // A write that names the revision it read: applied once, refused when stale.
            let updated = try await etcd.transaction(if: [.modRevision(read.key, equals: read.modRevision)],
                                                     then: [.put(read.key, bytes("v2"))], else: [.get(read.key)])
            #expect(updated.succeeded && updated.revision == first + 1)
            let stale = try await etcd.transaction(if: [.modRevision(read.key, equals: read.modRevision)],
                                                   then: [.put(read.key, bytes("v3"))], else: [.get(read.key)])
            #expect(!stale.succeeded && stale.reads.first?.first.map { Array($0.value) } == bytes("v2"), "the failure branch reads the current value")
            // Create only if absent: the second creator loses.
            let created = try await etcd.transaction(if: [.absent(bytes("/t/ip/10.96.0.1"))], then: [.put(bytes("/t/ip/10.96.0.1"), bytes("web"))])
            let again = try await etcd.transaction(if: [.absent(bytes("/t/ip/10.96.0.1"))], then: [.put(bytes("/t/ip/10.96.0.1"), bytes("db"))])
            #expect(created.succeeded && !again.succeeded)
            // A list in pages reads one revision: a write between pages is not in it.
            for i in 0..<25 { try await etcd.put(bytes("/t/pods/p\(String(format: "%02d", i))"), bytes("\(i)")) }
            let listed = try await etcd.list(prefix: bytes("/t/pods/"), pageSize: 10)
            #expect(listed.keyValues.count == 25 && listed.keyValues.map { Array($0.value) } == (0..<25).map { bytes("\($0)") })
            let atRevision = try await etcd.range(bytes("/t/pods/"), end: EtcdClient.rangeEnd(ofPrefix: bytes("/t/pods/")),
                                                  revision: listed.revision - 1)
            #expect(atRevision.keyValues.count == 24, "read at an earlier revision")
            let deleted = try await etcd.delete(bytes("/t/pods/"), end: EtcdClient.rangeEnd(ofPrefix: bytes("/t/pods/")))
            #expect(deleted.deleted == 25)
            #expect(try await etcd.list(prefix: bytes("/t/pods/")).keyValues.isEmpty)
        }
    }

    /// A page larger than grpc-swift's default message limit (4 MiB): six values of 1 MB each
    /// (etcd takes up to 1.5 MiB a value) read in one range, and seen by a watch.
    @Test func pagesLargerThanFourMebibytesAreRead() async throws {
        try await withEtcd { etcd, _ in
            let value = [UInt8](repeating: UInt8(ascii: "x"), count: 1_000_000)
            let start = try await etcd.put(bytes("/big/start"), bytes("0"))
            for i in 0..<6 { try await etcd.put(bytes("/big/v\(i)"), value) }
            let page = try await etcd.range(bytes("/big/v"), end: EtcdClient.rangeEnd(ofPrefix: bytes("/big/v")), limit: 1000)
            #expect(page.keyValues.count == 6 && page.keyValues.allSatisfy { $0.value.count == value.count })
            var seen = 0
            for try await batch in etcd.watch(prefix: bytes("/big/v"), from: start + 1) {
                seen += batch.events.count
                if seen >= 6 { break }
            }
            #expect(seen == 6)
        }
    }

    @Test func watchesFromARevisionAndAfterACompaction() async throws {
        try await withEtcd { etcd, _ in
            let start = try await etcd.put(bytes("/w/a"), bytes("1"))
            try await etcd.put(bytes("/w/b"), bytes("2"))
            try await etcd.put(bytes("/elsewhere"), bytes("x"))
            try await etcd.delete(bytes("/w/a"))
            // From the first write's revision: every change under the prefix since, in order.
            var seen: [String] = []
            for try await batch in etcd.watch(prefix: bytes("/w/"), from: start) {
                for event in batch.events {
                    seen.append("\(event.kind) \(String(decoding: event.keyValue.key, as: UTF8.self)) \(String(decoding: event.previous.map { Array($0.value) } ?? [], as: UTF8.self))")
                }
                if seen.count >= 3 { break }
            }
            #expect(seen == ["put /w/a ", "put /w/b ", "delete /w/a 1"])
            // History compacted past it: the watch fails, naming where etcd's history starts.
            let now = try await etcd.put(bytes("/w/c"), bytes("3"))
            try await etcd.compact(revision: now)
            do {
                for try await _ in etcd.watch(prefix: bytes("/w/"), from: start) {}
                Issue.record("a watch from before the compaction was not refused")
            } catch let error as EtcdError {
                #expect(error == .compacted(requested: start, compactRevision: now), "\(error)")
            }
            // Changes after the present, however soon after the watch starts they are made.
            var live = etcd.watch(prefix: bytes("/w/"), from: now + 1).makeAsyncIterator()
            let written = try await etcd.put(bytes("/w/d"), bytes("4"))
            let batch = try #require(try await live.next())
            #expect(batch.events.map(\.keyValue.modRevision) == [written])
        }
    }

    /// etcd pings back on nearly every request (grpc-go's bandwidth estimate); the connection
    /// must not be closed for it. Without the ping answerer, swift-nio-http2 closes it after 200
    /// pings in 30 s, and the watch on it with it.
    @Test func manyRequestsKeepTheConnection() async throws {
        try await withEtcd { etcd, _ in
            let start = try await etcd.put(bytes("/many/start"), bytes(""))
            let watched = Task {
                var seen = 0
                for try await batch in etcd.watch(prefix: bytes("/many/"), from: start + 1) {
                    seen += batch.events.count
                    if seen == 500 { break }
                }
                return seen
            }
            for i in 0..<500 { try await etcd.put(bytes("/many/\(i)"), bytes("\(i)")) }
            #expect(try await watched.value == 500, "one watch saw every write: the connection stayed")
        }
    }

    @Test func leasesExpireTheirKeys() async throws {
        try await withEtcd { etcd, _ in
            let lease = try await etcd.grantLease(ttl: 30)
            #expect(lease.ttl == 30)
            try await etcd.put(bytes("/l/node-a"), bytes("alive"), lease: lease.id)
            #expect(try await etcd.renewLease(lease.id) == 30)
            try await etcd.revokeLease(lease.id)
            #expect(try await etcd.range(bytes("/l/node-a")).keyValues.isEmpty, "the key went with its lease")
            await #expect(throws: EtcdError.self) { try await etcd.put(bytes("/l/x"), bytes(""), lease: lease.id) }
        }
    }

    /// Three members, one killed (perhaps the leader): every request is answered by the two
    /// left. A write caught in the election may time out without an answer (etcd drops the
    /// proposals its dead leader held), and is then tried again, as etcd's own client does for
    /// a put: at most once each here.
    @Test func aMemberDownIsNotVisible() async throws {
        try await withEtcd(size: 3, timeout: .seconds(10)) { etcd, cluster in
            try await etcd.put(bytes("/m/before"), bytes("1"))
            cluster.kill("m0")
            var retries = 0
            for i in 0..<20 {
                do throws(EtcdError) {
                    try await etcd.put(bytes("/m/\(i)"), bytes("\(i)"))
                } catch .timeout, .unavailable {
                    retries += 1
                    try await etcd.put(bytes("/m/\(i)"), bytes("\(i)"))
                }
            }
            #expect(retries <= 1, "only a write in flight when the leader went can be lost")
            #expect(try await etcd.list(prefix: bytes("/m/")).keyValues.count == 21)
            // The member comes back with its data and catches up.
            #expect(try await cluster.restart("m0"))
        }
    }

    /// A revision the cluster has not reached is said as such, member-local or not (a
    /// member-local read that meets it is asked of the cluster again, which says the same).
    @Test func aRevisionNotReachedIsNamed() async throws {
        try await withEtcd { etcd, _ in
            let revision = try await etcd.put(bytes("/f/a"), bytes("1"))
            #expect(try await etcd.range(bytes("/f/a"), revision: revision, memberLocal: true).keyValues.count == 1)
            for memberLocal in [false, true] {
                await #expect(throws: EtcdError.futureRevision) {
                    _ = try await etcd.range(bytes("/f/a"), revision: revision + 1000, memberLocal: memberLocal)
                }
            }
        }
    }

    /// Nothing listening: a clear error naming the endpoints, within the request timeout.
    @Test func anUnreachableClusterIsNamed() async throws {
        var configuration = try EtcdConfiguration(urls: ["http://127.0.0.1:9"])
        configuration.requestTimeout = .milliseconds(500)
        let client = try EtcdClient(configuration: configuration)
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { client.shutdown() }
            do throws(EtcdError) {
                _ = try await client.range(bytes("/x"))
                Issue.record("a request to nothing succeeded")
            } catch {
                #expect(error.description.contains("127.0.0.1:9"), "\(error)")
                switch error {
                case .timeout, .unavailable: break
                default: Issue.record("\(error)")
                }
            }
        }
    }

    struct URLCase: Sendable, CustomTestStringConvertible {
        var urls: [String]
        var expected: String
        var testDescription: String { urls.joined(separator: " ") }
    }

    static let urlCases: [URLCase] = [
        URLCase(urls: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"], expected: "10.0.0.1:2379 10.0.0.2:2379"),
        URLCase(urls: ["https://etcd.example"], expected: "etcd.example:2379 tls"),
        URLCase(urls: ["http://[::1]:12379/"], expected: "::1:12379"),
        URLCase(urls: [], expected: "no etcd endpoint given"),
        URLCase(urls: ["10.0.0.1:2379"], expected: #"etcd endpoint "10.0.0.1:2379": expected http://HOST:PORT or https://HOST:PORT"#),
        URLCase(urls: ["http://h:0"], expected: #"etcd endpoint "http://h:0": the port is not a number from 1 to 65535"#),
        URLCase(urls: ["http://h/v3"], expected: #"etcd endpoint "http://h/v3": expected http://HOST:PORT or https://HOST:PORT"#),
        URLCase(urls: ["http://a:1", "https://b:1"], expected: "etcd endpoints mix http:// and https://: use one scheme for all"),
    ]

    @Test(arguments: urlCases)
    func endpointsAreReadAsKubeAPIServerReadsThem(_ test: URLCase) {
        let result: String
        do {
            let configuration = try EtcdConfiguration(urls: test.urls)
            result = configuration.endpoints.map { "\($0.host):\($0.port)" }.joined(separator: " ")
                + (configuration.endpoints.first?.secure == true ? " tls" : "")
        } catch {
            result = error.description
        }
        #expect(result == test.expected)
    }

    @Test func prefixRangeEnds() {
        #expect(EtcdClient.rangeEnd(ofPrefix: [0x61, 0x62]) == [0x61, 0x63])
        #expect(EtcdClient.rangeEnd(ofPrefix: [0x61, 0xFF]) == [0x62])
        #expect(EtcdClient.rangeEnd(ofPrefix: [0xFF, 0xFF]) == [0])
    }
}
