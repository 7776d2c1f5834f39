// Cluster-zone figures for BENCHMARKS.md (issue 4): memory of the compiled zone and
// change-to-answer latency at 10k services / 100k endpoints.
//
//   python3 ../../shared/bench/gen.py --services 10000 --endpoints 11 --out /tmp/gen10k
//   swift run -c release RegistryBench /tmp/gen10k/manifests.yaml /tmp/registry-state
//   swift run -c release ZoneBench /tmp/registry-state
import CHeap
import DNSAuthority
import DNSWire
import Foundation
import ServiceRegistry

func rssMB() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
    }
    return 0
}

/// The heap in use, which unlike RSS does not depend on how freed memory lies.
func heapMB() -> Double { Double(cheap_in_use()) / 1_048_576 }

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

guard CommandLine.arguments.count == 2 else {
    print("usage: ZoneBench STATE_DIR (a registry state written by RegistryBench)")
    exit(2)
}
let clock = ContinuousClock()
let before = (rss: rssMB(), heap: heapMB())
let registry = try Registry(storage: SQLiteStorage(directory: CommandLine.arguments[1]))
_ = cheap_trim()
let withRegistry = (rss: rssMB(), heap: heapMB())
let start = clock.now
let authority = ClusterAuthority(configuration: ClusterConfiguration(), snapshot: registry.snapshot())
let compileTime = clock.now - start
_ = cheap_trim()
let withZone = (rss: rssMB(), heap: heapMB())
print(String(format: "RSS: process %.1f MB before loading; registry %.1f MB; zone %.1f MB (compiled in %.2f s); total %.1f MB",
             before.rss, withRegistry.rss - before.rss, withZone.rss - withRegistry.rss, seconds(compileTime), withZone.rss))
print(String(format: "heap in use: %.1f MB before loading; registry %.1f MB; zone %.1f MB",
             before.heap, withRegistry.heap - before.heap, withZone.heap - withRegistry.heap))

// Change to servable answer: flip one endpoint's readiness in a slice, apply it to the registry
// (SQLite, fsync), take its watch event and apply it to the zone.
func flips(_ changes: Int, _ registry: Registry, _ authority: ClusterAuthority,
           _ slices: [EndpointSlice]) async throws -> [Double] {
    let clock = ContinuousClock()
    var latencies: [Double] = []
    var iterator = registry.watch().makeAsyncIterator()
    for i in 0..<changes {
        // Every flip is a real change: the first endpoint's readiness inverted, then restored.
        let original = slices[i % slices.count]
        var slice = original
        let flipped = !(original.endpoints[0].conditions.ready ?? true)
        slice.endpoints[0].conditions.ready = (i / slices.count) % 2 == 0 ? flipped : original.endpoints[0].conditions.ready
        let start = clock.now
        try await registry.apply(.endpointSlice(slice))
        guard let event = try await iterator.next() else { break }
        authority.apply([event], snapshot: registry.snapshot())
        latencies.append(seconds(clock.now - start) * 1e3)
    }
    return latencies
}
let slices = registry.snapshot().list(.endpointSlice).compactMap { if case .endpointSlice(let s) = $0 { s } else { nil } }
let latencies = try await flips(1000, registry, authority, slices)
_ = cheap_trim()
print(String(format: "change to servable answer (%d changes): p50 %.3f ms, p99 %.3f ms, max %.3f ms; RSS after %.1f MB",
             latencies.count, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.max() ?? 0, rssMB()))
