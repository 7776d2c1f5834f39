import Benchmark
import DNSWire
import ZoneFile

/// A query as dig 9.18 sends it: `Web.Default.svc.cluster.local AAAA`, RD+AD, EDNS 1232, a cookie.
let digQuery: [UInt8] = hex(
    "53ab01200001000000000001035765620744656661756c740373766307636c7573746572056c6f63616c00001c0001"
        + "00002904d000000000000c000a00081c132378b8453804")

/// A typical 5-record response (dnspython's encoding): 2 A answers, 2 NS in authority, 1 glue A, and OPT.
let typicalResponse: [UInt8] = hex(
    "beef85000001000200020002" + "076578616d706c6503636f6d0000010001"
        + "c00c000100010000012c0004c0000202" + "c00c000100010000012c0004c0000201"
        + "c00c0002000100000e100006036e7331c00c" + "c00c0002000100000e100006036e7332c00c"
        + "c0490001000100000e100004c0000235" + "0000292000000000000000")

func hex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        out.append(UInt8(text[index..<next], radix: 16) ?? 0)
        index = next
    }
    return out
}

/// A zone of `count` records shaped like a cluster's: A, SRV, TXT and CNAME records.
func largeZone(records count: Int) -> [UInt8] {
    var text = "$ORIGIN cluster.local.\n$TTL 5\n@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n@ IN NS ns.dns\nns.dns IN A 10.96.0.10\n"
    var i = 0
    while i < count - 3 {
        let ns = "ns-\(i % 97)"
        switch i % 4 {
        case 0: text += "svc-\(i).\(ns).svc IN A 10.\(96 + i >> 16 & 15).\(i >> 8 & 255).\(i & 255)\n"
        case 1: text += "_http._tcp.svc-\(i).\(ns).svc 5 IN SRV 0 100 80 svc-\(i).\(ns).svc.cluster.local.\n"
        case 2: text += "svc-\(i).\(ns).svc IN TXT \"version=\(i)\" \"owner=team-\(i % 13)\"\n"
        default: text += "ext-\(i).\(ns).svc IN CNAME ext-\(i).example.com.\n"
        }
        i += 1
    }
    return Array(text.utf8)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.metrics = [.wallClock, .cpuTotal, .mallocCountTotal, .throughput]
    Benchmark.defaultConfiguration.maxDuration = .seconds(3)

    Benchmark("QueryView.parse (dig query)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var key = [UInt8](repeating: 0, count: 255)
        digQuery.withUnsafeBytes { packet in
            key.withUnsafeMutableBytes { buffer in
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    blackHole(try? QueryView.parse(packet, nameBuffer: buffer))
                }
                benchmark.stopMeasurement()
            }
        }
    }

    Benchmark("Message decode (5-record response)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? Message(decoding: typicalResponse))
        }
    }

    Benchmark("Message encode (5-record response)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let message = try Message(decoding: typicalResponse)
        var writer = WireWriter(capacity: 1232)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            message.encode(into: &writer, maxSize: 1232)
            blackHole(writer.count)
        }
    }

    Benchmark("Message decode+encode (5-record response)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var writer = WireWriter(capacity: 1232)
        for _ in benchmark.scaledIterations {
            if let message = try? Message(decoding: typicalResponse) {
                message.encode(into: &writer, maxSize: 1232)
            }
            blackHole(writer.count)
        }
    }

    Benchmark("Zone load (100,000 records)",
              configuration: .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .peakMemoryResident],
                                   maxDuration: .seconds(20), maxIterations: 5)) { benchmark in
        let text = largeZone(records: 100_000)
        let origin = try DomainName("cluster.local.")
        benchmark.startMeasurement()
        let zone = try ZoneParser().parse(text, file: "large.zone", origin: origin)
        benchmark.stopMeasurement()
        precondition(zone.records.count == 100_000, "expected 100000 records, got \(zone.records.count)")
        blackHole(zone)
    }
}
