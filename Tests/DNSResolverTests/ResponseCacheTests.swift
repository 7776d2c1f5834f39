import DNSResolver
import DNSWire
import NetAddress
import Testing

func record(_ text: String) -> ResourceRecord {
    // "name ttl TYPE data" for the few types these tests use.
    let parts = text.split(separator: " ").map(String.init)
    let name = try! DomainName(parts[0])
    let ttl = UInt32(parts[1])!
    let data: RecordData
    switch parts[2] {
    case "A": data = .a(IPv4Address(parts[3])!)
    case "CNAME": data = .cname(try! DomainName(parts[3]))
    case "SOA":
        data = .soa(SOA(mname: try! DomainName(parts[3]), rname: try! DomainName(parts[4]), serial: UInt32(parts[5])!,
                        refresh: UInt32(parts[6])!, retry: UInt32(parts[7])!, expire: UInt32(parts[8])!, minimum: UInt32(parts[9])!))
    default: fatalError(parts[2])
    }
    return ResourceRecord(name: name, ttl: ttl, data: data)
}

func response(_ rcode: ResponseCode = .noError, answers: [String] = [], authority: [String] = [], truncated: Bool = false) -> Message {
    var message = Message(header: Header(id: 1, isResponse: true, isRecursionDesired: true, isRecursionAvailable: true),
                          questions: [Question(name: try! DomainName("www.example."), type: .a)])
    message.answers = answers.map(record)
    message.authorities = authority.map(record)
    message.rcode = rcode
    message.header.isTruncated = truncated
    return message
}

let soa = "example. 300 SOA ns.example. host.example. 1 7200 900 1209600 60"

struct LifetimeCase: Sendable, CustomStringConvertible {
    var description: String
    var message: Message
    var expected: UInt32?
}

let lifetimeCases: [LifetimeCase] = [
    .init(description: "positive: the smallest TTL", message: response(answers: ["www.example. 300 CNAME web.example.", "web.example. 20 A 192.0.2.1"]), expected: 20),
    .init(description: "positive: clamped to the maximum", message: response(answers: ["www.example. 999999 A 192.0.2.1"]), expected: 3600),
    .init(description: "positive: clamped to the minimum", message: response(answers: ["www.example. 0 A 192.0.2.1"]), expected: nil),
    .init(description: "NXDOMAIN: min(SOA TTL, MINIMUM)", message: response(.nameError, authority: [soa]), expected: 60),
    .init(description: "NODATA: min(SOA TTL, MINIMUM)", message: response(authority: ["example. 30 SOA ns.example. host.example. 1 7200 900 1209600 60"]), expected: 30),
    .init(description: "NXDOMAIN without SOA: briefly (Unbound's and CoreDNS's 5 s)", message: response(.nameError), expected: 5),
    .init(description: "NODATA without SOA: briefly", message: response(), expected: 5),
    .init(description: "NXDOMAIN with a CNAME and no SOA: briefly", message: response(.nameError, answers: ["www.example. 300 CNAME gone.example."]), expected: 5),
    .init(description: "SERVFAIL: briefly", message: response(.serverFailure), expected: 5),
    .init(description: "REFUSED: not cached", message: response(.refused), expected: nil),
    .init(description: "truncated: not cached", message: response(answers: ["www.example. 300 A 192.0.2.1"], truncated: true), expected: nil),
]

@Suite struct ResponseCacheTests {
    @Test(arguments: lifetimeCases)
    func lifetimes(_ c: LifetimeCase) {
        let cache = ResponseCache()
        let lifetime = cache.lifetime(of: c.message)
        // A zero lifetime is as good as not cached.
        #expect((lifetime == 0 ? nil : lifetime) == c.expected)
    }

    @Test func negativeTTLIsClampedToItsOwnMaximum() {
        var configuration = ResponseCache.Configuration()
        configuration.maximumNegativeTTL = 10
        configuration.minimumTTL = 2
        let cache = ResponseCache(configuration: configuration)
        #expect(cache.lifetime(of: response(.nameError, authority: [soa])) == 10)
        #expect(cache.lifetime(of: response(answers: ["www.example. 1 A 192.0.2.1"])) == 2)
        // Without an SOA: its own lifetime, under the same maximum; 0 turns it off.
        #expect(cache.lifetime(of: response(.nameError)) == 5)
        configuration.maximumNegativeTTL = 3
        #expect(ResponseCache(configuration: configuration).lifetime(of: response(.nameError)) == 3)
        configuration.bareNegativeTTL = 0
        #expect(ResponseCache(configuration: configuration).lifetime(of: response(.nameError)) == nil)
    }

    @Test func aHitIsWrittenWithTheClientsIDLettersAndAgedTTLs() throws {
        let cache = ResponseCache()
        let question = Question(name: try DomainName("www.example."), type: .a)
        let stored: UInt64 = 1_000_000_000_000
        cache.store(response(answers: ["www.example. 300 A 192.0.2.1"]), for: question,
                    key: ResponseCache.Key(question), now: stored)
        var query = Message(header: Header(id: 0xBEEF, isRecursionDesired: true),
                            questions: [Question(name: try DomainName("WwW.ExAmple."), type: .a)], edns: EDNS())
        query.header.isCheckingDisabled = false
        let bytes = query.encoded()
        var output = [UInt8](repeating: 0, count: 1232)
        let length = try bytes.withUnsafeBytes { raw -> Int in
            try withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { key -> Int in
                let view = try QueryView.parse(raw, nameBuffer: key)
                return try #require(output.withUnsafeMutableBytes { out in
                    cache.respond(to: raw, view: view, name: UnsafeRawBufferPointer(rebasing: key[0..<view.nameLength]), into: out,
                                  shape: ReplyShape(view, transport: .udp, maxUDPPayload: 1232, recursionAvailable: true), now: stored + 7_500_000_000)?.length
                })
            }
        }
        let reply = try Message(decoding: Array(output[0..<length]))
        #expect(reply.header.id == 0xBEEF && reply.header.isResponse && reply.header.isRecursionAvailable && reply.header.isRecursionDesired)
        #expect(!reply.header.isAuthoritative)
        #expect(reply.questions.map(\.name.description) == ["WwW.ExAmple."])
        #expect(reply.answers.map(\.description) == ["WwW.ExAmple. 293 IN A 192.0.2.1"])
        #expect(reply.edns != nil)
        // Expired: no fast answer.
        let expired = try bytes.withUnsafeBytes { raw -> Int? in
            try withUnsafeTemporaryAllocation(byteCount: 256, alignment: 1) { key -> Int? in
                let view = try QueryView.parse(raw, nameBuffer: key)
                return output.withUnsafeMutableBytes { out in
                    cache.respond(to: raw, view: view, name: UnsafeRawBufferPointer(rebasing: key[0..<view.nameLength]), into: out,
                                  shape: ReplyShape(view, transport: .udp, maxUDPPayload: 1232, recursionAvailable: true), now: stored + 301_000_000_000)?.length
                }
            }
        }
        #expect(expired == nil)
    }

    @Test func capacityIsABoundAndEvictionCounts() throws {
        var configuration = ResponseCache.Configuration()
        configuration.capacity = 64
        let cache = ResponseCache(configuration: configuration)
        for i in 0..<2000 {
            let question = Question(name: try DomainName("host\(i).example."), type: .a)
            var message = response(answers: ["host\(i).example. 300 A 192.0.2.1"])
            message.questions = [question]
            cache.store(message, for: question, key: ResponseCache.Key(question))
        }
        #expect(cache.count <= 64)
        #expect(cache.evictions >= 2000 - 64)
    }

    @Test func staleEntriesAnswerOnlyInsideTheWindow() throws {
        var configuration = ResponseCache.Configuration()
        configuration.staleWindow = 60
        let cache = ResponseCache(configuration: configuration)
        let question = Question(name: try DomainName("www.example."), type: .a)
        let key = ResponseCache.Key(question)
        cache.store(response(answers: ["www.example. 10 A 192.0.2.1"]), for: question, key: key, now: 0)
        #expect(cache.fresh(key, now: 5_000_000_000) != nil)
        #expect(cache.fresh(key, now: 11_000_000_000) == nil)
        let stale = try #require(cache.stale(key, now: 11_000_000_000))
        #expect(stale.aged(at: 11_000_000_000, fixed: 30).answers.map(\.ttl) == [30])
        #expect(cache.stale(key, now: 80_000_000_000) == nil)
        // Keys differ by DO and CD.
        #expect(cache.fresh(ResponseCache.Key(question, dnssecOK: true), now: 1) == nil)
    }
}
