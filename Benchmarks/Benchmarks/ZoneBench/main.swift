// Cluster-zone figures for BENCHMARKS.md (issue 4): memory of the compiled zone and
// change-to-answer latency at 10k services / 100k endpoints.
//
//   python3 ../../shared/bench/gen.py --services 10000 --endpoints 11 --out /tmp/gen10k
//   swift run -c release RegistryBench /tmp/gen10k/manifests.yaml /tmp/registry-state
//   swift run -c release ZoneBench /tmp/registry-state
import CHeap
import DNSAuthority
import KubernetesDNS
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
// A copy of the state: the flips below write to the registry, and the state given may be
// another benchmark's input.
let state = FileManager.default.temporaryDirectory.appendingPathComponent("zonebench-\(getpid())")
try FileManager.default.copyItem(atPath: CommandLine.arguments[1], toPath: state.path)
let registry = try Registry(storage: SQLiteStorage(directory: state.path))
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

// The general path on large headless services (two of 1,000 endpoints each, in a registry of
// their own): the zone compiled, a reverse lookup and an ANY query derived the first time, then
// answered from the derived services kept (DerivedFragments).
do {
    let big = try Registry()
    /// A headless service `name` whose 1,000 endpoints are 10.<octet>.0.1 to 10.<octet>.3.250.
    func headless(_ name: String, octet: Int) -> String {
        var text = "apiVersion: v1\nkind: Service\nmetadata: {name: \(name), namespace: default}\n"
            + "spec: {clusterIP: None, ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\n"
            + "kind: EndpointSlice\nmetadata: {name: \(name)-1, namespace: default, labels: {kubernetes.io/service-name: \(name)}}\n"
            + "addressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n"
        for i in 0..<1000 { text += "  - addresses: [\"10.\(octet).\(i / 250).\(i % 250 + 1)\"]\n" }
        return text
    }
    let services = [("big", 244), ("big2", 245)]
    for (name, octet) in services {
        for entry in Manifest.decode(headless(name, octet: octet)) { try big.apply(try entry.result.get()) }
    }
    big.markLoaded()
    let clock = ContinuousClock()
    var start = clock.now
    let zone = ClusterAuthority(configuration: ClusterConfiguration(), snapshot: big.snapshot())
    print(String(format: "two headless services of 1,000 endpoints: compiled in %.1f ms", seconds(clock.now - start) * 1e3))
    for (index, (name, octet)) in services.enumerated() {
        let which = index == 0 ? "" : " of the second service"
        start = clock.now
        _ = zone.reverseLookup(Question(name: try DomainName("1.0.\(octet).10.in-addr.arpa."), type: .ptr))
        print(String(format: "  first PTR%@ %.0f us", which, seconds(clock.now - start) * 1e6))
        start = clock.now
        _ = zone.lookup(Question(name: try DomainName("\(name).default.svc.cluster.local."), type: .any))
        print(String(format: "  first ANY%@ %.0f us", which, seconds(clock.now - start) * 1e6))
    }
    start = clock.now
    for i in 0..<1000 {
        _ = zone.reverseLookup(Question(name: try DomainName("\(i % 250 + 1).\(i / 250).244.10.in-addr.arpa."), type: .ptr))
    }
    print(String(format: "  PTR after that %.1f us per lookup (1,000 addresses)", seconds(clock.now - start) * 1e3))
    start = clock.now
    for _ in 0..<100 { _ = zone.lookup(Question(name: try DomainName("big.default.svc.cluster.local."), type: .any)) }
    print(String(format: "  ANY after that %.1f us per lookup", seconds(clock.now - start) * 1e4))
}
try? FileManager.default.removeItem(at: state)
