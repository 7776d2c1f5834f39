// The Kubernetes API's figures for BENCHMARKS.md, each beside the same operation through the
// Swift API in the same run:
//   - change-to-answer: from a create's response to the first DNS answer that has the service;
//   - creates per second, in memory and with --state (one durable commit each);
//   - a watch fanned out to 100 watchers: from a create's response to each watcher's event;
//   - a list of 10,000 services, as JSON and as a Table.
// It starts the daemon it is given on loopback ports of its own, talks HTTPS to it with the
// client the commands use, and asks DNS over UDP.
//
//   swift build -c release --product clusterdns            (in the project)
//   swift run -c release APIBench ../.build/release/clusterdns   (in Benchmarks/)
import Foundation
import KubernetesAPI
import KubernetesAPIClient
import ServiceRegistry

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    print("usage: APIBench PATH/TO/clusterdns [SERVICES_FOR_LATENCY (1000)] [SERVICES_FOR_LIST (10000)]")
    exit(2)
}
let daemon = arguments[1]
let latencyCount = arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000
let listCount = arguments.count > 3 ? Int(arguments[3]) ?? 10000 : 10000
let watcherCount = 100
let fanOutEvents = 200
let clock = ContinuousClock()

func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}
func summary(_ values: [Double]) -> String {
    String(format: "p50 %.3f ms, p99 %.3f ms, max %.3f ms (n=%d)", percentile(values, 0.5), percentile(values, 0.99),
           values.max() ?? .nan, values.count)
}
func serviceJSON(_ name: String, namespace: String) -> [UInt8] {
    Array(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{"selector":{"app":"\#(name)"},"ports":[{"name":"http","port":80}]}}"#.utf8)
}
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    return UInt16(bigEndian: address.sin_port)
}
func rssMB(pid: Int32) -> Double {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
    }
    return 0
}

/// User and system CPU time of a process so far, in milliseconds.
func cpuMilliseconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15 (1-based, in clock ticks).
    let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
    return ticks * 1000 / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// One UDP socket asking A questions of the daemon; answers are matched by id.
final class DNSProbe {
    let fd: Int32
    var address = sockaddr_in()
    var id: UInt16 = 0

    init(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Whether the daemon answers `name` with at least one record.
    func answers(_ name: String) -> Bool {
        id &+= 1
        var query: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") {
            query.append(UInt8(label.utf8.count))
            query.append(contentsOf: label.utf8)
        }
        query += [0, 0, 1, 0, 1]
        _ = query.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        var reply = [UInt8](repeating: 0, count: 512)
        while true {
            let count = recv(fd, &reply, reply.count, 0)
            guard count >= 12 else { return false }
            guard UInt16(reply[0]) << 8 | UInt16(reply[1]) == id else { continue }
            return reply[3] & 0x0F == 0 && (UInt16(reply[6]) << 8 | UInt16(reply[7])) > 0
        }
    }
}

/// The daemon on ports of its own, with a state directory or in memory.
struct Daemon {
    let process: Process
    let dnsPort: UInt16
    let client: APIClient
    let directory: String

    static func start(state: Bool) throws -> Daemon {
        let directory = NSTemporaryDirectory() + "apibench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let dns = freePort()
        let api = freePort()
        let kubeconfig = directory + "/kubeconfig"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: daemon)
        process.arguments = ["serve", "--dns", "127.0.0.1:\(dns)", "--http", "none", "--api", "127.0.0.1:\(api)",
                             "--api-kubeconfig", kubeconfig, "--state", state ? directory : "memory", "--zones", "none",
                             "--resolv-conf", "none", "--log-level", "error", "--lameduck", "0s"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var waited = 0
        while !FileManager.default.fileExists(atPath: kubeconfig) {
            usleep(20_000)
            waited += 1
            if waited > 1000 { fatalError("the daemon wrote no kubeconfig") }
        }
        usleep(100_000)
        let client = try APIClient(configuration: try KubeconfigFile.load(path: kubeconfig).configuration)
        return Daemon(process: process, dnsPort: dns, client: client, directory: directory)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Creates `count` services named `prefix-N` in `namespace` on one connection; returns each
/// create's round trip, and runs `after` once each response is in.
func create(_ count: Int, prefix: String, namespace: String, on connection: APIConnection,
            after: (Int, ContinuousClock.Instant) async throws -> Void = { _, _ in }) async throws -> [Double] {
    var latencies: [Double] = []
    latencies.reserveCapacity(count)
    for i in 0..<count {
        let start = clock.now
        let response = try await connection.send("POST", "/api/v1/namespaces/\(namespace)/services",
                                                  body: serviceJSON("\(prefix)-\(i)", namespace: namespace))
        let done = clock.now
        guard response.status == 201 else { fatalError("create: \(response.status) \(String(decoding: response.body, as: UTF8.self))") }
        latencies.append(ms(done - start))
        try await after(i, done)
    }
    return latencies
}

final class Arrivals: @unchecked Sendable {
    let lock = NSLock()
    var times: [String: [ContinuousClock.Instant]] = [:]
    func record(_ name: String, _ at: ContinuousClock.Instant) {
        lock.lock()
        times[name, default: []].append(at)
        lock.unlock()
    }
}
func throughput(_ daemon: Daemon, _ count: Int, connections: Int, namespace: String) async throws -> Double {
    let start = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for c in 0..<connections {
            group.addTask {
                _ = try await daemon.client.withConnection { connection in
                    try await create(count / connections, prefix: "t\(c)", namespace: namespace, on: connection)
                }
            }
        }
        try await group.waitForAll()
    }
    return Double(count) / (ms(clock.now - start) / 1e3)
}
func timedList(_ daemon: Daemon, accept: String) async throws -> (ms: Double, bytes: Int, items: Int) {
    var best = Double.infinity
    var bytes = 0
    for _ in 0..<5 {
        let start = clock.now
        let response = try await daemon.client.withConnection { connection in
            try await connection.send("GET", "/api/v1/services", accept: accept)
        }
        best = min(best, ms(clock.now - start))
        bytes = response.body.count
    }
    return (best, bytes, 0)
}
func objects(_ count: Int, prefix: String, namespace: String) -> [RegistryObject] {
    (0..<count).map { i in
        try! Manifest.decode(String(decoding: serviceJSON("\(prefix)-\(i)", namespace: namespace), as: UTF8.self))[0].result.get()
    }
}
/// `"metadata":{"name":"…"` in a watch event's line: the object's name (the registry writes
/// metadata's name first).
func objectName(_ line: [UInt8]) -> String? {
    let key = Array(#""metadata":{"name":""#.utf8)
    guard line.count > key.count else { return nil }
    for start in 0...(line.count - key.count) where line[start] == key[0] && Array(line[start..<start + key.count]) == key {
        let from = start + key.count
        guard let end = line[from...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return String(decoding: line[from..<end], as: UTF8.self)
    }
    return nil
}

/// Every figure, in order; nonisolated, as the client's connections are used where they are made.
func benchmark() async throws {
    print("APIBench: \(daemon), \(latencyCount) services for latency, \(listCount) for lists, \(watcherCount) watchers")

    // MARK: - Through the API, in memory

    let memory = try Daemon.start(state: false)
    let probe = DNSProbe(port: memory.dnsPort)
    var changeToAnswer: [Double] = []
    var queriesNeeded: [Int] = []
    let createLatencies = try await memory.client.withConnection { connection in
        try await create(latencyCount, prefix: "lat", namespace: "bench", on: connection) { i, created in
            var queries = 0
            repeat { queries += 1 } while !probe.answers("lat-\(i).bench.svc.cluster.local") && queries < 1000
            changeToAnswer.append(ms(clock.now - created))
            queriesNeeded.append(queries)
        }
    }
    print("API create round trip (memory): \(summary(createLatencies))")
    print("change-to-answer (create response -> first DNS answer with it): \(summary(changeToAnswer)); queries needed: max \(queriesNeeded.max() ?? 0)")

    // Throughput: one connection, then four.
    let memoryOne = try await throughput(memory, 2000, connections: 1, namespace: "tput1")
    let memoryFour = try await throughput(memory, 2000, connections: 4, namespace: "tput4")
    print(String(format: "API creates/s (memory): %.0f on 1 connection, %.0f on 4", memoryOne, memoryFour))

    // Watch fan-out: 100 watchers of one namespace, then creates there.
    let arrivals = Arrivals()
    let ready = Arrivals()
    let watchers = Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<watcherCount {
                group.addTask {
                    var seen = 0
                    _ = try await memory.client.withConnection { connection in
                        try await connection.stream("/api/v1/namespaces/fan/services",
                                                    query: [("watch", "1"), ("allowWatchBookmarks", "true"), ("resourceVersion", "0")]) { line in
                            let now = clock.now
                            // The object's name, found without parsing the event: a hundred watchers in
                            // this process must not be what is measured.
                            guard let name = objectName(line) else { return true }
                            if name == "ready" {
                                ready.record("w\(w)", now)
                                return true
                            }
                            arrivals.record(name, now)
                            seen += 1
                            return seen < fanOutEvents
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
    // Every watcher is known to be attached once it has seen the marker object.
    try await Task.sleep(for: .milliseconds(500))
    _ = try await memory.client.withConnection { connection in
        try await connection.send("POST", "/api/v1/namespaces/fan/services", body: serviceJSON("ready", namespace: "fan"))
    }
    while ready.times.count < watcherCount { try await Task.sleep(for: .milliseconds(10)) }
    var createdAt: [String: ContinuousClock.Instant] = [:]
    let fanCPU = cpuMilliseconds(pid: memory.process.processIdentifier)
    let fanStart = clock.now
    let fanCreates = try await memory.client.withConnection { connection in
        try await create(fanOutEvents, prefix: "fan", namespace: "fan", on: connection) { i, done in createdAt["fan-\(i)"] = done }
    }
    try await watchers.value
    // Until the last watcher had the last event (closing a watch's TLS connection is not part of it).
    let fanElapsed = arrivals.times.values.flatMap { $0 }.max()! - fanStart
    let fanServerCPU = cpuMilliseconds(pid: memory.process.processIdentifier) - fanCPU
    var perWatcher: [Double] = []
    var lastWatcher: [Double] = []
    for (name, created) in createdAt {
        let times = arrivals.times[name] ?? []
        precondition(times.count == watcherCount, "\(name): \(times.count) watchers saw it")
        perWatcher += times.map { ms($0 - created) }
        lastWatcher.append(ms(times.max()! - created))
    }
    print("API create round trip with \(watcherCount) watchers of its namespace: \(summary(fanCreates))")
    print("API watch fan-out to \(watcherCount): every watcher's event after the create's response: \(summary(perWatcher))")
    print("  the last of the \(watcherCount) watchers: \(summary(lastWatcher)); \(fanOutEvents) creates delivered \(fanOutEvents * watcherCount) events in \(String(format: "%.0f ms, the daemon's CPU %.0f ms", ms(fanElapsed), fanServerCPU))")

    // Lists: fill up to listCount services, then list them whole.
    let existing = latencyCount + 4000 + fanOutEvents + 1
    if listCount > existing {
        _ = try await throughput(memory, listCount - existing, connections: 4, namespace: "fill")
    }
    let listJSON = try await timedList(memory, accept: "application/json")
    let listTable = try await timedList(memory, accept: "application/json;as=Table;v=v1;g=meta.k8s.io")
    let servicesNow = try await memory.client.withConnection { connection in
        try await connection.send("GET", "/api/v1/services", query: [("limit", "1")])
    }
    let remaining = (try? JSONValue(parsing: servicesNow.body))?["metadata"]?["remainingItemCount"]?.intValue ?? -1
    print(String(format: "API list of %d services: JSON %.1f ms (%.1f MB), Table %.1f ms (%.1f MB); daemon RSS %.1f MB",
                 remaining + 1, listJSON.ms, Double(listJSON.bytes) / 1e6, listTable.ms, Double(listTable.bytes) / 1e6,
                 rssMB(pid: memory.process.processIdentifier)))
    memory.stop()

    // MARK: - Through the API, with --state

    let durable = try Daemon.start(state: true)
    let durableOne = try await throughput(durable, 1000, connections: 1, namespace: "tput1")
    let durableFour = try await throughput(durable, 1000, connections: 4, namespace: "tput4")
    print(String(format: "API creates/s (--state, one durable commit each): %.0f on 1 connection, %.0f on 4", durableOne, durableFour))
    durable.stop()

    // MARK: - The Swift API, in this process

    let direct = try Registry()
    let batch = objects(2000, prefix: "d", namespace: "direct")
    var start = clock.now
    for object in batch { _ = try await direct.write(object, preconditions: WritePreconditions(mustNotExist: true)) }
    print(String(format: "Swift API creates/s (memory): %.0f", 2000 / (ms(clock.now - start) / 1e3)))
    let stateDirectory = NSTemporaryDirectory() + "apibench-swift-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
    let stored = try Registry(storage: SQLiteStorage(directory: stateDirectory))
    let storedBatch = objects(1000, prefix: "s", namespace: "direct")
    start = clock.now
    for object in storedBatch { _ = try await stored.write(object, preconditions: WritePreconditions(mustNotExist: true)) }
    print(String(format: "Swift API creates/s (SQLite, one durable commit each): %.0f", 1000 / (ms(clock.now - start) / 1e3)))
    try? FileManager.default.removeItem(atPath: stateDirectory)

    // The in-process handler without HTTP: what HTTP and TLS add.
    let handler = APIHandler(registry: try Registry(), tokens: TokenTable(["t": APIUser(name: "a", groups: ["system:masters"])]))
    start = clock.now
    for i in 0..<2000 {
        let response = await handler.handle(APIRequest(method: "POST", path: "/api/v1/namespaces/h/services", authorization: "Bearer t",
                                                       contentType: "application/json", body: serviceJSON("h-\(i)", namespace: "h")))
        precondition(response.code == 201)
    }
    print(String(format: "APIHandler creates/s in process (no HTTP): %.0f", 2000 / (ms(clock.now - start) / 1e3)))

    // Watch fan-out through the registry itself.
    let fanRegistry = try Registry()
    let directArrivals = Arrivals()
    var streams: [Task<Void, any Error>] = []
    for _ in 0..<watcherCount {
        let stream = fanRegistry.watch()
        streams.append(Task {
            var seen = 0
            for try await event in stream {
                directArrivals.record(event.object.metadata.name, clock.now)
                seen += 1
                if seen == fanOutEvents { return }
            }
        })
    }
    var directCreated: [String: ContinuousClock.Instant] = [:]
    for object in objects(fanOutEvents, prefix: "f", namespace: "fan") {
        // From the write's call: its return may come after a watcher has the event.
        let before = clock.now
        _ = try await fanRegistry.write(object)
        directCreated[object.metadata.name] = before
    }
    for task in streams { try await task.value }
    var directPerWatcher: [Double] = []
    for (name, created) in directCreated { directPerWatcher += (directArrivals.times[name] ?? []).map { ms($0 - created) } }
    print("Swift API watch fan-out to \(watcherCount) (from the write's call): \(summary(directPerWatcher))")

    // Lists through the Swift API: a snapshot's services encoded as the API encodes them.
    let listed = try Registry()
    for chunk in stride(from: 0, to: listCount, by: 500) {
        _ = await listed.apply(contentsOf: objects(min(500, listCount - chunk), prefix: "l\(chunk)", namespace: "list"))
    }
    var jsonBest = Double.infinity, tableBest = Double.infinity
    for _ in 0..<5 {
        start = clock.now
        let snapshot = listed.snapshot()
        let bytes = JSONValue.array(snapshot.list(.service).map(\.kubernetesJSON)).bytes
        jsonBest = min(jsonBest, ms(clock.now - start))
        precondition(!bytes.isEmpty)
        start = clock.now
        let table = Tables.document(snapshot.list(.service), kind: .service, now: Int64(Date().timeIntervalSince1970)).bytes
        tableBest = min(tableBest, ms(clock.now - start))
        precondition(!table.isEmpty)
    }
    print(String(format: "Swift API list of %d services (snapshot + encoding): JSON %.1f ms, Table %.1f ms", listCount, jsonBest, tableBest))
}

try await benchmark()

extension JSONValue {
    var intValue: Int? {
        if case .int(let value) = self { return value }
        return nil
    }
}
