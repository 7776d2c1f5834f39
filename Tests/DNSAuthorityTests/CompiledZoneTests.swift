import DNSWire
import Testing
import TestSupport
@testable import DNSAuthority

/// The two-layer answer store against a plain dictionary: every name answers what was last set
/// for it, before and after the changes are folded into a new table.
@Suite struct CompiledZoneTests {
    static func answers(_ seed: UInt64, _ rng: inout SplitMix64) -> [CompiledZone.Answer] {
        let types: [UInt16] = [1, 28, 33, 16]
        return (0..<Int(seed % 3)).map { i in
            // Sizes up to 70,000 bytes: the length field is wider than 16 bits.
            let size = rng.next() % 200 == 0 ? 70_000 : Int(rng.next() % 40)
            return CompiledZone.Answer(type: types[(Int(seed % 4) + i) % types.count],
                                       counts: (UInt16(i + 1), UInt16(seed % 2), 0),
                                       bytes: (0..<size).map { UInt8(truncatingIfNeeded: UInt64($0) &+ seed) },
                                       leavesZone: seed % 5 == 0,
                                       apexLetters: seed % 7 == 0 ? [0, size / 2, 300] : [])
        }
    }

    func check(_ zone: CompiledZone, _ model: [DomainName: [CompiledZone.Answer]], _ all: [DomainName], _ context: String) {
        for name in all {
            let found = zone.find(name)
            #expect(found == model[name], "\(name) \(context)")
            // The fast path's view agrees for every type.
            for type: UInt16 in [1, 28, 33, 16, 15] {
                // (kind, bytes, counts, leaves zone, apex-letter offsets); kind 0 NXDOMAIN, 1 NODATA,
                // 2 an answer, 3 a CNAME asked for a type not compiled.
                typealias Seen = (Int, [UInt8], [UInt16], Bool, [Int])
                let fast: Seen = zone.key(of: name).withUnsafeBytes { key in
                    zone.withAnswer(key, type: type) { found -> Seen in
                        switch found {
                        case nil: (0, [], [], false, [])
                        case .noData: (1, [], [], false, [])
                        case .uncompiled: (3, [], [], false, [])
                        case .answer(let bytes, let c, let leaves, let letters): (2, Array(bytes), [c.0, c.1, c.2], leaves, letters.all)
                        }
                    }
                }
                let expected: Seen
                if let answers = model[name] {
                    if let a = answers.first(where: { $0.type == type }) {
                        expected = (2, a.bytes, [a.counts.0, a.counts.1, a.counts.2], a.leavesZone, a.apexLetters)
                    } else {
                        expected = (answers.contains { $0.type == RecordType.cname.rawValue } ? 3 : 1, [], [], false, [])
                    }
                } else {
                    expected = (0, [], [], false, [])
                }
                #expect(fast.0 == expected.0 && fast.1 == expected.1 && fast.2 == expected.2 && fast.3 == expected.3
                        && fast.4 == expected.4, "\(name) type \(type) \(context)")
            }
        }
    }

    /// Keys stored whole (0) and without `cluster.local.` (15 bytes), the apex itself included
    /// (its stored key is empty).
    @Test(arguments: [0, 15])
    func matchesADictionaryThroughChangesAndCompactions(suffixLength: Int) throws {
        var rng = SplitMix64(state: 11)
        let all = try (0..<300).map { try DomainName("Name-\($0).ns-\($0 % 7).svc.cluster.local.") }
            + [try DomainName("cluster.local."), try DomainName("svc.cluster.local.")]
        var zone = CompiledZone(suffixLength: suffixLength)
        var model: [DomainName: [CompiledZone.Answer]] = [:]
        for round in 0..<12 {
            for _ in 0..<80 {
                let name = all[Int(rng.next() % UInt64(all.count))]
                if rng.next() % 4 == 0 {
                    zone.remove(name)
                    model[name] = nil
                } else {
                    let answers = Self.answers(rng.next(), &rng)
                    zone.set(name, answers: answers)
                    model[name] = answers
                }
            }
            check(zone, model, all, "round \(round), before compaction")
            if round % 3 == 2 { zone.compact() } else { zone.compactIfNeeded() }
            check(zone, model, all, "round \(round), after compaction")
        }
        zone.compact()
        #expect(zone.tableCount == model.count)
    }

    /// A fold prepared from the changes so far and adopted after more changes (names changed
    /// again to other answers or to the same, removed, added) answers as the model does, and
    /// keeps only the changes made since it was prepared; a fold of a replaced table is refused.
    @Test func foldsAdoptedAfterMoreChangesLoseNothing() throws {
        var rng = SplitMix64(state: 23)
        let all = try (0..<400).map { try DomainName("n\($0).ns.svc.cluster.local.") }
        var zone = CompiledZone(suffixLength: 15)
        var model: [DomainName: [CompiledZone.Answer]] = [:]
        func change(_ count: Int) -> Set<DomainName> {
            var touched = Set<DomainName>()
            for _ in 0..<count {
                let name = all[Int(rng.next() % UInt64(all.count))]
                touched.insert(name)
                if rng.next() % 5 == 0 {
                    zone.remove(name)
                    model[name] = nil
                } else if rng.next() % 4 == 0, let same = model[name] {
                    zone.set(name, answers: same)  // changed again, to the same answers
                } else {
                    let answers = Self.answers(rng.next(), &rng)
                    zone.set(name, answers: answers)
                    model[name] = answers
                }
            }
            return touched
        }
        _ = change(300)
        zone.compact()
        for round in 0..<6 {
            _ = change(120)
            let fold = zone.prepareFold()
            let later = change(40)
            let folded = fold.run()
            check(zone, model, all, "round \(round), before adopting")
            let adopted = zone.adopt(folded)
            #expect(adopted)
            check(zone, model, all, "round \(round), after adopting")
            #expect(zone.pendingChanges <= later.count, "only changes made after the fold was prepared remain")
        }
        // A fold of a table that was replaced meanwhile is not adopted.
        _ = change(50)
        let stale = zone.prepareFold().run()
        zone.compact()
        _ = change(10)
        let adoptedStale = zone.adopt(stale)
        #expect(!adoptedStale)
        check(zone, model, all, "after refusing a stale fold")
    }

    @Test func lookupIgnoresNothingButTheExactKey() throws {
        var zone = CompiledZone()
        let name = try DomainName("web.default.svc.cluster.local.")
        zone.set(name, answers: [CompiledZone.Answer(type: 1, counts: (1, 0, 0), bytes: [1, 2, 3])])
        zone.compact()
        // Keys are lower-cased by the caller: another case, a prefix or a longer name do not match.
        for other in ["WEB.default.svc.cluster.local.", "eb.default.svc.cluster.local.", "xweb.default.svc.cluster.local.", "default.svc.cluster.local."] {
            let key = try DomainName(other).wireBytes
            #expect(key.withUnsafeBytes { zone.find($0) } == nil, "\(other)")
        }
        #expect(name.lookupKey.withUnsafeBytes { zone.find($0) }?.first?.bytes == [1, 2, 3])
    }
}
