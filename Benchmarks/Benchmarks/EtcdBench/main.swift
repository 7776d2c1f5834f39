// Figures of the registry shared through etcd, for BENCHMARKS.md ("The registry in etcd").
//
//   EtcdBench creates URL COUNT           creates through etcd (one transaction each): in
//                                          batches (32 in flight) and one at a time
//   EtcdBench creates-sqlite DIR COUNT    the same into a SQLite state directory
//   EtcdBench latency URL COUNT           a change on one replica to the other replica's DNS
//                                          zone serving it (and a DNS query answering it)
//   EtcdBench load URL MANIFESTS          the manifests into etcd (through a registry)
//   EtcdBench start URL                   a fresh replica: the first list and resident memory
//   EtcdBench start-sqlite DIR            the same from a SQLite state directory
//   EtcdBench decode FILE                 stored values (one JSON a line) decoded by
//                                          JSONDecoder and by the tape, on one core
//
// URL is an etcd client URL; each mode uses its own prefix, so one etcd serves them all.
import ClusterDNS
import EtcdClient
import EtcdStore
import Foundation

import Logging
import DispatchSockets
import ServiceRegistry

func rssMB() -> (current: Double, peak: Double) {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    func field(_ name: String) -> Double {
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
        }
        return 0
    }
    return (field("VmRSS:"), field("VmHWM:"))
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func service(_ name: String) -> RegistryObject {
    try! Manifest.decode("""
        apiVersion: v1
        kind: Service
        metadata: {name: \(name), namespace: bench}
        spec: {selector: {app: \(name)}, ports: [{name: http, port: 80}]}
        """).first!.result.get()
}

/// A registry following etcd at `url` under `prefix`, with its client running.
func replica(_ url: String, prefix: String, storage: any RegistryStorage = MemoryStorage()) async throws -> (Registry, EtcdClient, Task<Void, Never>) {
    let client = try EtcdClient(configuration: EtcdConfiguration(urls: [url]))
    let registry = try Registry(storage: storage, shared: EtcdRegistryStore(client: client, prefix: prefix))
    let task = Task {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await client.run() }
            group.addTask { await registry.followSharedStore { print("store: \($0)") } }
        }
    }
    while registry.sharedRevision == nil { try await Task.sleep(for: .milliseconds(1)) }
    return (registry, client, task)
}

/// The async form (top-level code would pick the synchronous one, which a shared registry refuses).
func applyAll(_ registry: Registry, _ objects: [RegistryObject]) async -> [Result<ApplyOutcome, RegistryError>] {
    await registry.apply(contentsOf: objects)
}

func writeOne(_ registry: Registry, _ object: RegistryObject) async throws -> RegistryObject {
    try await registry.write(object).stored
}

func applyOne(_ registry: Registry, _ object: RegistryObject) async throws {
    try await registry.apply(object)
}

/// `count` creates as one batch, then `count` one at a time: the rate of each.
func measureCreates(_ registry: Registry, _ label: String, batch: String) async throws {
    var start = clock.now
    let results = await applyAll(registry, (0..<count).map { service("batch-\($0)") })
    let failed = results.compactMap { if case .failure(let error) = $0 { error } else { nil } }
    guard failed.isEmpty else { fatalError("\(failed.count) creates failed, the first: \(failed[0])") }
    let batched = clock.now - start
    start = clock.now
    for i in 0..<count { try await applyOne(registry, service("single-\(i)")) }
    let single = clock.now - start
    print(String(format: "%@: %d %@ %.2f s, %.0f/s; one at a time %.2f s, %.0f/s (%.2f ms each)",
                 label, count, batch, seconds(batched), Double(count) / seconds(batched), seconds(single),
                 Double(count) / seconds(single), seconds(single) * 1e3 / Double(count)))
}

let arguments = CommandLine.arguments
let clock = ContinuousClock()
guard arguments.count >= 3 else {
    print("usage: EtcdBench creates|creates-sqlite|latency|load|start|start-sqlite URL|DIR [COUNT|MANIFESTS]")
    exit(2)
}
let mode = arguments[1]
let count = arguments.count > 3 ? Int(arguments[3]) ?? 1000 : 1000
let run = "\(getpid())"

switch mode {
case "creates":
    let (registry, _, _) = try await replica(arguments[2], prefix: "/bench-creates-\(run)")
    try await measureCreates(registry, "etcd creates", batch: "in batches (32 in flight)")
case "creates-sqlite":
    try await measureCreates(try Registry(storage: try SQLiteStorage(directory: arguments[2])), "SQLite creates", batch: "in one batch")
case "latency":
    // Replica A writes; replica B is a whole ClusterDNSService (zone updater, DNS on loopback).
    let prefix = "/bench-latency-\(run)"
    let (writer, _, _) = try await replica(arguments[2], prefix: prefix)
    let client = try EtcdClient(configuration: EtcdConfiguration(urls: [arguments[2]]))
    var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:25353")!], udpSockets: 1)
    configuration.sharedStore = EtcdRegistryStore(client: client, prefix: prefix)
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let other = try ClusterDNSService(configuration: configuration, logger: logger)
    Task { try? await client.run() }
    Task { try? await other.run() }
    while !other.isServing { try await Task.sleep(for: .milliseconds(1)) }
    var written: [Double] = []
    var served: [Double] = []
    for i in 0..<count {
        let start = clock.now
        let stored = try await writeOne(writer, service("change-\(i)"))
        let committed = clock.now
        guard await other.waitUntilServed(stored.metadata.resourceVersion, timeout: .seconds(5)) else {
            fatalError("change \(i) not served by the other replica within 5 s")
        }
        let answered = clock.now
        written.append(seconds(committed - start) * 1e3)
        served.append(seconds(answered - start) * 1e3)
    }
    // The other replica's DNS answers the last one (a real query, as a check).
    let dig = Process()
    dig.executableURL = URL(fileURLWithPath: "/usr/bin/dig")
    dig.arguments = ["@127.0.0.1", "-p", "25353", "+short", "change-\(count - 1).bench.svc.cluster.local"]
    let pipe = Pipe()
    dig.standardOutput = pipe
    try dig.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    dig.waitUntilExit()
    let answer = !text.isEmpty
    print(String(format: "change on one replica to the other's DNS zone (%d creates): p50 %.2f ms, p99 %.2f ms, max %.2f ms; the write itself (etcd, then the writer's registry seeing it back): p50 %.2f ms, p99 %.2f ms; zone holds the last: %@",
                 count, percentile(served, 0.5), percentile(served, 0.99), served.max() ?? 0,
                 percentile(written, 0.5), percentile(written, 0.99), answer ? "yes" : "no"))
case "load":
    let (registry, _, _) = try await replica(arguments[2], prefix: "/bench-load")
    var start = clock.now
    let entries = Manifest.load(path: arguments[3])
    let objects = entries.compactMap { try? $0.result.get() }
    print(String(format: "decode: %.2f s for %d objects", seconds(clock.now - start), objects.count))
    start = clock.now
    let results = await applyAll(registry, objects)
    let failed = results.filter { if case .failure = $0 { true } else { false } }
    print(String(format: "load into etcd: %.2f s for %d objects (%.0f/s), %d failed", seconds(clock.now - start), objects.count,
                 Double(objects.count) / seconds(clock.now - start), failed.count))
case "decode":
    // The stored values of a registry, one JSON text a line (`sqlite3 registry.sqlite "select
    // cast(body as text) from objects"`), decoded on one core by JSONDecoder and by the tape.
    let lines = try String(contentsOfFile: arguments[2], encoding: .utf8).split(separator: "\n").map { Array($0.utf8) }
    let bytes = lines.reduce(0) { $0 + $1.count }
    for round in 0..<3 {
        var start = clock.now
        let decoder = JSONDecoder()
        let foundation = try lines.map { try decoder.decode(RegistryObject.self, from: Data($0)) }
        let foundationTime = seconds(clock.now - start)
        start = clock.now
        let tape = try lines.map { try RegistryObject(storedJSON: $0) }
        let tapeTime = seconds(clock.now - start)
        let differing = zip(foundation, tape).filter { $0 != $1 }.count
        print(String(format: "round %d: %d values, %.1f MB: JSONDecoder %.3f s (%.0f MB/s), tape %.3f s (%.0f MB/s), %.1fx; %d differ",
                     round, lines.count, Double(bytes) / 1e6, foundationTime, Double(bytes) / 1e6 / foundationTime,
                     tapeTime, Double(bytes) / 1e6 / tapeTime, foundationTime / tapeTime, differing))
    }
case "start", "start-sqlite":
    // Both starts in this one binary, so the code it maps (Foundation, gRPC, NIO) is the same.
    let before = rssMB().current
    let start = clock.now
    let registry = mode == "start"
        ? try await replica(arguments[2], prefix: "/bench-load").0
        : try Registry(storage: SQLiteStorage(directory: arguments[2]))
    let elapsed = clock.now - start
    // Either registry hands its load's temporary memory back just after it is installed.
    try await Task.sleep(for: .milliseconds(200))
    let snapshot = registry.snapshot()
    let endpoints = snapshot.serviceEndpoints.values.reduce(0) { $0 + $1.count }
    print(String(format: "start from %@ (list, decode, install, endpoints): %.3f s for %d objects (%d services, %d endpoints); RSS %.1f MB (%.1f MB before), peak %.1f MB",
                 mode == "start" ? "etcd" : "SQLite", seconds(elapsed), snapshot.objects.count,
                 snapshot.count(of: .service), endpoints, rssMB().current, before, rssMB().peak))
default:
    print("unknown mode \(mode)")
    exit(2)
}
exit(0)
