import DNSAuthority
import KubernetesDNS
import DNSWire
import Testing
import TestSupport
import ZoneFile

/// Random questions over the fixtures, answered by the fast path and by the general path: every
/// reply the fast path gives must equal the general path's byte for byte. The questions cover
/// every name and type the zones hold, names in random letter case, with and without EDNS, the
/// DO and CD bits set and clear, payload sizes down to below 512, UDP and TCP. The generator is
/// seeded, so a failure names the case that reproduces it.
@Suite struct DifferentialTests {
    static let types: [RecordType] = [.a, .aaaa, .srv, .txt, .cname, .soa, .ns, .mx, .ptr, .any, .caa, .hinfo, RecordType(65280)]

    /// Every owner name of both fixtures, every name they point at, names that exist nowhere,
    /// pod names and reverse names (in and outside the service range).
    static func names(_ responder: Responder) throws -> [DomainName] {
        var names = Set<DomainName>()
        let cluster = try #require(responder.catalog.authority(zone: try DomainName("cluster.local.")) as? ClusterAuthority)
        let zone = cluster.zone
        let statics = try ZoneParser().parse(staticZoneText, origin: try DomainName("example.com."))
        for record in zone.allRecords + statics.records {
            names.insert(record.name)
            switch record.data {
            case .cname(let target), .ptr(let target), .ns(let target): names.insert(target)
            case .srv(let srv): names.insert(srv.target)
            case .mx(let mx): names.insert(mx.exchange)
            default: break
            }
        }
        for extra in ["nope.shop.svc.cluster.local.", "x.web.shop.svc.cluster.local.", "10-244-1-5.shop.pod.cluster.local.",
                      "10-9-9-9.shop.pod.cluster.local.", "shop.pod.cluster.local.", "10.0.96.10.in-addr.arpa.",
                      "5.1.244.10.in-addr.arpa.", "99.0.96.10.in-addr.arpa.", "1.3.244.10.in-addr.arpa.",
                      "deeper.x.wild.example.com.", "y.wild.example.com.", "deep.lab.example.com.", "cluster.local.",
                      "evilcluster.local.", "dns.cluster.local."] {
            names.insert(try DomainName(extra))
        }
        return names.sorted()
    }

    static func responder() throws -> Responder {
        let responder = try makeResponder()
        responder.catalog.add(StaticAuthority(zone: try ZoneParser().parse(staticZoneText, origin: try DomainName("example.com."))))
        return responder
    }

    static func randomCase(_ name: DomainName, _ generator: inout SplitMix64) -> DomainName {
        let text = String(name.description.map { generator.next() & 1 == 0 ? Character($0.uppercased()) : $0 })
        return (try? DomainName(text)) ?? name
    }

    struct Sample: CustomStringConvertible {
        var query: Message
        var transport: Responder.Transport
        var description: String {
            let q = query.questions[0]
            let edns = query.edns.map { "edns(\($0.udpPayloadSize), do=\($0.isDNSSECOK))" } ?? "no edns"
            return "\(q.name) \(q.type) \(edns) cd=\(query.header.isCheckingDisabled) \(transport)"
        }
    }

    static func sample(_ names: [DomainName], _ generator: inout SplitMix64) -> Sample {
        let name = randomCase(names[Int(generator.next() % UInt64(names.count))], &generator)
        let type = types[Int(generator.next() % UInt64(types.count))]
        var header = Header(id: UInt16(truncatingIfNeeded: generator.next()), isRecursionDesired: generator.next() & 1 == 0,
                            isCheckingDisabled: generator.next() & 3 == 0)
        header.opcode = .query
        var query = Message(header: header, questions: [Question(name: name, type: type)])
        if generator.next() % 4 != 0 {
            let sizes: [UInt16] = [100, 512, 600, 700, 1232, 1400, 4096, 65535]
            query.edns = EDNS(udpPayloadSize: sizes[Int(generator.next() % UInt64(sizes.count))], isDNSSECOK: generator.next() & 1 == 0)
        }
        return Sample(query: query, transport: generator.next() % 5 == 0 ? .tcp : .udp)
    }

    static func fast(_ responder: Responder, _ query: [UInt8], _ transport: Responder.Transport) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65535)
        let length = query.withUnsafeBytes { q in
            buffer.withUnsafeMutableBytes { responder.fastRespond(to: q, into: $0, transport: transport) }
        }
        return length.map { Array(buffer[0..<$0]) }
    }

    @Test func fastPathBytesEqualTheGeneralPaths() throws {
        let responder = try Self.responder()
        let names = try Self.names(responder)
        var generator = SplitMix64(state: 0x5EED_0013)
        var compared = 0
        var withDO = 0
        var mismatches = 0
        var staticCompared = 0
        let samples = 4000
        for _ in 0..<samples {
            let sample = Self.sample(names, &generator)
            let bytes = sample.query.encoded()
            let general = try #require(responder.respond(to: bytes, transport: sample.transport), "\(sample)")
            guard let fast = Self.fast(responder, bytes, sample.transport) else { continue }
            compared += 1
            if sample.query.questions[0].name.isSubdomain(of: try DomainName("example.com.")) { staticCompared += 1 }
            if sample.query.edns?.isDNSSECOK == true { withDO += 1 }
            if fast != general {
                mismatches += 1
                // The first few, decoded: enough to see the pattern without flooding the log.
                if mismatches <= 5 {
                    let decodedFast = (try? Message(decoding: fast)).map { "\($0)" } ?? "\(fast)"
                    let decodedGeneral = (try? Message(decoding: general)).map { "\($0)" } ?? "\(general)"
                    Issue.record("\(sample)\nfast:    \(decodedFast)\ngeneral: \(decodedGeneral)")
                }
            }
        }
        // The fast path must have answered a real share of the samples, DO set in some of them:
        // a comparison that never runs proves nothing.
        #expect(mismatches == 0, "\(mismatches) of \(compared) replies differ")
        #expect(compared > samples / 4, "the fast path answered \(compared) of \(samples)")
        #expect(withDO > samples / 16, "\(withDO) of them with DO set")
        #expect(staticCompared > samples / 20, "\(staticCompared) of them in the static zone")
    }

    /// The bits a reply copies from its query, whichever path wrote it: ID, RD, CD, and the DO
    /// bit of the OPT record (RFC 3225); no OPT record in the reply to a query without one.
    @Test func everyPathCopiesTheQuerysBits() throws {
        let responder = try Self.responder()
        let names = try Self.names(responder)
        var generator = SplitMix64(state: 0xD0_B17)
        for _ in 0..<1000 {
            let sample = Self.sample(names, &generator)
            let bytes = sample.query.encoded()
            var replies = [try #require(responder.respond(to: bytes, transport: sample.transport))]
            if let fast = Self.fast(responder, bytes, sample.transport) { replies.append(fast) }
            for reply in replies {
                let decoded = try Message(decoding: reply)
                #expect(decoded.header.id == sample.query.header.id, "\(sample)")
                #expect(decoded.header.isRecursionDesired == sample.query.header.isRecursionDesired, "\(sample)")
                #expect(decoded.header.isCheckingDisabled == sample.query.header.isCheckingDisabled, "\(sample)")
                #expect((decoded.edns == nil) == (sample.query.edns == nil), "\(sample)")
                #expect(decoded.edns?.isDNSSECOK == sample.query.edns?.isDNSSECOK, "\(sample)")
                if sample.transport == .udp {
                    let limit = max(512, min(1232, Int(sample.query.edns?.udpPayloadSize ?? 512)))
                    #expect(reply.count <= limit, "\(sample)")
                }
            }
        }
    }
}
