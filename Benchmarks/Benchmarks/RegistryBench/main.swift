// Registry figures for BENCHMARKS.md: apply time and memory at 10k services / 100k endpoints,
// change-to-watcher latency at that size, restart time from the SQLite state.
//
//   python3 ../../shared/bench/gen.py --services 10000 --endpoints 11 --out /tmp/gen10k
//   swift run -c release RegistryBench /tmp/gen10k/manifests.yaml /tmp/registry-state
import Foundation
import ServiceRegistry

func rssMB() -> (current: Double, peak: Double) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Double {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
    return (field("VmRSS:"), field("VmHWM:"))
}

@_silgen_name("malloc_trim")
func mallocTrim(_ pad: Int) -> Int32

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: RegistryBench MANIFESTS [STATE_DIR]")
    exit(2)
}
let clock = ContinuousClock()
let manifests = arguments[1]
let stateDirectory = arguments.count > 2 ? arguments[2] : nil

if arguments.count > 3 && arguments[3] == "--restart-only", let stateDirectory {
    // A fresh process: how long a restart takes and what the loaded registry costs in memory.
    let before = rssMB().current
    let start = clock.now
    var registry: Registry? = try Registry(storage: SQLiteStorage(directory: stateDirectory))
    let elapsed = clock.now - start
    var snapshot: RegistrySnapshot? = registry!.snapshot()
    let endpoints = snapshot!.serviceEndpoints.values.reduce(0) { $0 + $1.count }
    print(String(format: "restart: %.3f s for %d objects (%d services, %d endpoints); RSS %.1f MB (%.1f MB before loading), peak %.1f MB",
                 seconds(elapsed), snapshot!.objects.count, snapshot!.count(of: .service), endpoints,
                 rssMB().current, before, rssMB().peak))
    let loaded = rssMB().current
    registry = nil
    snapshot = nil
    _ = mallocTrim(0)
    print(String(format: "registry data: %.1f MB (RSS drops to %.1f MB when it is released)", loaded - rssMB().current, rssMB().current))
    exit(0)
}

var start = clock.now
let entries = Manifest.load(path: manifests)
let objects = entries.compactMap { try? $0.result.get() }
print(String(format: "decode: %.3f s for %d objects (%d errors); RSS %.1f MB", seconds(clock.now - start), objects.count,
             entries.count - objects.count, rssMB().current))

let storage: any RegistryStorage = try stateDirectory.map { try SQLiteStorage(directory: $0) } ?? MemoryStorage()
let registry = try Registry(storage: storage)
start = clock.now
// Manifests are applied in batches of 64, one durable commit each (what `clusterdns apply` does).
var failures = 0
var index = 0
while index < objects.count {
    let batch = Array(objects[index..<min(index + 64, objects.count)])
    index += batch.count
    failures += registry.apply(contentsOf: batch).filter { if case .failure = $0 { true } else { false } }.count
}
precondition(failures == 0, "\(failures) objects failed")
let applyTime = clock.now - start
let snapshot = registry.snapshot()
let endpointCount = snapshot.serviceEndpoints.values.reduce(0) { $0 + $1.count }
print(String(format: "apply: %.3f s for %d objects (%.1f µs each) into %@; %d services, %d endpoints; RSS %.1f MB, peak %.1f MB",
             seconds(applyTime), objects.count, seconds(applyTime) * 1e6 / Double(objects.count),
             stateDirectory == nil ? "memory" : "SQLite", snapshot.count(of: .service), endpointCount,
             rssMB().current, rssMB().peak))

// Change-to-watcher latency: flip one endpoint's readiness in a slice, many times.
let slices = objects.compactMap { if case .endpointSlice(let s) = $0 { s } else { nil } }
let changes = 2000
let sent = UnsafeMutableBufferPointer<ContinuousClock.Instant>.allocate(capacity: changes)
nonisolated(unsafe) let received = UnsafeMutableBufferPointer<ContinuousClock.Instant>.allocate(capacity: changes)
let base = registry.resourceVersion
let events = registry.watch()
let watcher = Task.detached {
    var count = 0
    for try await event in events {
        received[Int(event.resourceVersion - base - 1)] = ContinuousClock.now
        count += 1
        if count == changes { break }
    }
}
for i in 0..<changes {
    var slice = slices[i % slices.count]
    slice.endpoints[0].conditions.ready = (i / slices.count) % 2 == 0 ? false : true
    sent[i] = ContinuousClock.now
    try registry.apply(.endpointSlice(slice))
}
_ = try await watcher.value
let latencies = (0..<changes).map { seconds(received[$0] - sent[$0]) * 1e3 }
print(String(format: "change to watcher (%d changes, endpoint readiness in a slice): p50 %.3f ms, p99 %.3f ms, max %.3f ms",
             changes, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.max() ?? 0))
