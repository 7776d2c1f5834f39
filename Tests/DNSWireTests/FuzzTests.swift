import DNSWire
import Testing
import TestSupport

/// Many thousands of random and mutated messages: the decoders must return a value or an error,
/// never trap; whatever decodes must survive an encode/decode round trip unchanged.
@Suite struct FuzzTests {
    static let seeds: [[UInt8]] = goldenVectors.map { hexBytes($0.hex) }

    /// Whatever decodes survives a round trip; whatever both decoders accept, they read alike:
    /// the fast path's view and the full decoder agree on the header, the question (the view's
    /// name is the question's, lower-cased) and the OPT record.
    /// Returns whether both decoders accepted the bytes (and were compared).
    @discardableResult
    func check(_ bytes: [UInt8]) -> Bool {
        let message: Message?
        do {
            message = try Message(decoding: bytes)
        } catch {
            message = nil
        }
        if let message {
            let again = try? Message(decoding: message.encoded())
            #expect(again == message, "round trip of \(hexString(bytes))")
        }
        var name = [UInt8](repeating: 0, count: 255)
        let view = bytes.withUnsafeBytes { packet in
            name.withUnsafeMutableBytes { buffer -> QueryView? in
                do { return try QueryView.parse(packet, nameBuffer: buffer) } catch { return nil }
            }
        }
        guard let view, let message, let question = message.questions.first else { return false }
        let context = hexString(bytes)
        #expect(view.header == message.header, "\(context)")
        #expect(view.type == question.type && view.recordClass == question.recordClass, "\(context)")
        #expect(Array(name[0..<view.nameLength]) == question.name.lookupKey, "\(context)")
        #expect(view.edns?.udpPayloadSize == message.edns?.udpPayloadSize && view.edns?.isDNSSECOK == message.edns?.isDNSSECOK,
                "\(context)")
        return true
    }

    @Test func randomBytes() {
        var rng = SplitMix64(state: 1)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<128, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Keep the counts small half the time so that the body gets parsed.
            if bytes.count >= 12 && Bool.random(using: &rng) {
                for i in stride(from: 4, to: 12, by: 2) {
                    bytes[i] = 0
                    bytes[i + 1] = UInt8.random(in: 0...2, using: &rng)
                }
            }
            check(bytes)
        }
    }

    @Test func mutatedGoldenVectors() {
        var rng = SplitMix64(state: 2)
        var compared = 0
        for _ in 0..<30_000 {
            var bytes = Self.seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !bytes.isEmpty:
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 1 where !bytes.isEmpty:
                    bytes.removeLast(Int.random(in: 1...min(8, bytes.count), using: &rng))
                case 2:
                    bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
                case 3 where bytes.count > 2:
                    // A random compression pointer somewhere.
                    let at = Int.random(in: 0..<(bytes.count - 1), using: &rng)
                    bytes[at] = 0xC0 | UInt8.random(in: 0...1, using: &rng)
                    bytes[at + 1] = UInt8.random(in: 0...255, using: &rng)
                case 4 where bytes.count > 12:
                    bytes[Int.random(in: 4..<12, using: &rng)] ^= 1
                default:
                    break
                }
            }
            if check(bytes) { compared += 1 }
        }
        #expect(compared > 1_000, "both decoders accepted \(compared) of the mutations")
    }
}

/// Random messages built from a few short labels in mixed case, so that names share suffixes
/// in every way: whatever compression does, decoding must give back the same message.
@Suite struct EncoderFuzzTests {
    static let labels = ["a", "A", "b", "ab", "aB", "ba", "a.b", String(repeating: "x", count: 63), "_tcp", "\u{0}"]

    func randomName(_ rng: inout SplitMix64) -> DomainName {
        var chosen: [[UInt8]] = []
        var length = 1
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            let label = Array(Self.labels.randomElement(using: &rng)!.utf8)
            guard length + label.count + 1 <= 255 else { break }
            length += label.count + 1
            chosen.append(label)
        }
        return try! DomainName(labels: chosen)
    }

    func randomData(_ rng: inout SplitMix64) -> RecordData {
        switch Int.random(in: 0..<7, using: &rng) {
        case 0: .cname(randomName(&rng))
        case 1: .ns(randomName(&rng))
        case 2: .mx(MX(preference: 1, exchange: randomName(&rng)))
        case 3: .srv(SRV(priority: 1, weight: 2, port: 3, target: randomName(&rng)))
        case 4: .soa(SOA(mname: randomName(&rng), rname: randomName(&rng), serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5))
        case 5: .ptr(randomName(&rng))
        default: .unknown(type: RecordType(65280), data: randomName(&rng).wireBytes)
        }
    }

    @Test func randomMessagesRoundTrip() throws {
        var rng = SplitMix64(state: 3)
        for _ in 0..<5_000 {
            var m = Message(header: Header(id: UInt16.random(in: 0...0xFFFF, using: &rng), isResponse: true))
            m.questions = [Question(name: randomName(&rng), type: .any)]
            for _ in 0..<Int.random(in: 0...8, using: &rng) {
                m.answers.append(ResourceRecord(name: randomName(&rng), ttl: 1, data: randomData(&rng)))
            }
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                m.additionals.append(ResourceRecord(name: randomName(&rng), ttl: 1, data: randomData(&rng)))
            }
            let bytes = m.encoded()
            #expect(try Message(decoding: bytes) == m)
        }
    }
}
