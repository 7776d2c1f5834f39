import DNSWire
import Foundation
import NetAddress
import ServiceRegistry
import Testing
import TestSupport

/// Applies a large manifest with `clusterdns apply --state`, killing the process with SIGKILL at
/// random moments, again and again; every change it acknowledged must survive, allocations stay
/// unique, nothing is duplicated, and the last run completes the set.
@Suite struct CrashSafetyTests {
    static let services = 400

    func manifest() throws -> String {
        var text = ""
        for i in 0..<Self.services {
            text += "apiVersion: v1\nkind: Service\nmetadata: {name: svc-\(i), namespace: ns-\(i % 7)}\n"
            text += "spec: {type: NodePort, ports: [{name: http, port: 80}]}\n---\n"
        }
        let path = Scratch.url("crash", suffix: ".yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func sigkillWhileApplying() throws {
        let file = try manifest()
        let state = Scratch.url("crash-state").path
        var acknowledged = Set<String>()
        var rng = SystemRandomNumberGenerator()
        for round in 0..<6 {
            let process = ChildProcess()
            process.executableURL = Tool.executable
            process.arguments = ["apply", "-f", file, "--state", state]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Read acknowledgements until a random number of new ones has arrived, then kill.
            let target = Int.random(in: 5...60, using: &rng)
            var fresh = 0
            var buffer = Data()
            let handle = out.fileHandleForReading
            while fresh < target {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    if line.hasSuffix(" created") {
                        acknowledged.insert(String(line.dropLast(" created".count)))
                        fresh += 1
                    }
                }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // Every acknowledged change is there after the crash, allocations unique.
            let registry = try Registry(storage: SQLiteStorage(directory: state))
            let services = registry.snapshot().services
            let names = Set(services.map { "service/\($0.metadata.name)" })
            #expect(acknowledged.isSubset(of: names), "round \(round): lost \(acknowledged.subtracting(names).sorted().prefix(3))")
            #expect(Set(services.map(\.spec.clusterIP)).count == services.count, "round \(round): duplicate cluster IP")
            #expect(Set(services.map { $0.spec.ports[0].nodePort }).count == services.count, "round \(round): duplicate node port")
        }
        let final = try Tool.run(["apply", "-f", file, "--state", state])
        #expect(final.status == 0)
        let registry = try Registry(storage: SQLiteStorage(directory: state))
        let services = registry.snapshot().services
        #expect(services.count == Self.services)
        #expect(Set(services.map(\.spec.clusterIP)).count == Self.services)
        #expect(Set(services.map { $0.spec.ports[0].nodePort }).count == Self.services)
    }
}

/// The state directory on a full filesystem (a 300 KB tmpfs in a private mount namespace):
/// writes are refused with a clear error, every change printed as made is stored, the
/// database still opens, and what was refused is simply not there.
@Suite(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                "needs root and unshare (a private mount namespace for the tmpfs)"))
struct FullFilesystemTests {
    @Test func aFullFilesystemRefusesWritesAndLosesNothing() throws {
        let directory = Scratch.url("full")
        let state = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var text = ""
        for i in 0..<3000 {
            text += "apiVersion: v1\nkind: Service\nmetadata: {name: s\(i), namespace: full, labels: {app: s\(i)}}\n"
            text += "spec: {selector: {app: s\(i)}, ports: [{name: http, port: 80}, {name: https, port: 443}]}\n---\n"
        }
        let manifest = directory.appendingPathComponent("many.yaml").path
        try text.write(toFile: manifest, atomically: true, encoding: .utf8)
        let d = directory.path
        let tool = Tool.executable.path
        let script = """
            mount -t tmpfs -o size=300k tmpfs \(state) || exit 90
            \(tool) apply -f \(manifest) --state \(state) > \(d)/applied.txt 2> \(d)/errors.txt
            echo $? > \(d)/apply.rc
            \(tool) get services -n full -o json --state \(state) > \(d)/listed.json 2> \(d)/get.err
            echo $? > \(d)/get.rc
            """
        let result = try Tool.runRaw("/usr/bin/unshare", ["-m", "sh", "-c", script], stderr: true)
        try #require(result.status == 0, "mount: \(result.stderr)")
        func read(_ name: String) -> String { (try? String(contentsOfFile: "\(d)/\(name)", encoding: .utf8)) ?? "" }
        #expect(read("apply.rc") == "1\n", "the refused writes make apply fail")
        let errors = read("errors.txt")
        #expect(errors.contains("error: storage error: \(state)/registry.sqlite: cannot write the change: database or disk is full"),
                "\(errors.prefix(300))")
        #expect(read("get.rc") == "0\n", "the database still opens: \(read("get.err"))")
        let applied = read("applied.txt").split(separator: "\n").map { String($0.dropFirst("service/".count).dropLast(" created".count)) }
        #expect(applied.count > 0 && applied.count < 3000, "some written, then the filesystem full: \(applied.count)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(read("listed.json").utf8)) as? [String: Any])
        let stored = (list["items"] as? [[String: Any]] ?? []).compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
        #expect(Set(stored) == Set(applied) && stored.count == applied.count, "exactly what was acknowledged is stored")
    }
}

/// The daemon with `--state`, killed with SIGKILL at a random moment 100 times while it applies
/// manifests that grow and change between its lives, and asked for the services' addresses
/// over DNS all the while: after each kill the database opens, every address the daemon had
/// served is stored for its service, an address or node port once stored never changes, and no
/// two services share one.
@Suite struct DaemonCrashSafetyTests {
    static let rounds = 100

    /// Round `round`'s file: ten NodePort services, with a label that changes every time the
    /// file is written again (an update to apply).
    static func manifest(round: Int, generation: Int) -> String {
        (0..<10).map { i in
            """
            apiVersion: v1
            kind: Service
            metadata: {name: r\(round)-s\(i), namespace: ns-\(i % 3), labels: {generation: "\(generation)"}}
            spec: {type: NodePort, ports: [{name: http, port: 80}]}
            """
        }.joined(separator: "\n---\n")
    }

    /// One A question over UDP; the address answered, nil for anything else.
    static func ask(_ name: String, port: UInt16) -> String? {
        let query = Message(header: Header(id: UInt16.random(in: 1...65535), isRecursionDesired: false),
                            questions: [Question(name: try! DomainName(name), type: .a)]).encoded()
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0, send(fd, query, query.count, 0) == query.count else { return nil }
        var buffer = [UInt8](repeating: 0, count: 1500)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0, let reply = try? Message(decoding: Array(buffer[0..<n])), reply.rcode == .noError,
              case .a(let ip)? = reply.answers.first?.data else { return nil }
        return ip.description
    }

    @Test func sigkillAtRandomMomentsLosesNothingServed() async throws {
        // A few minutes of blocking work: on a thread of its own, not one of the two the
        // async tests share.
        try await offThePool { checks in try Self.killAgainAndAgain(checks) }
    }

    /// The daemon with its state in `state`, applying `manifests`, not yet listening: its DNS
    /// port is known once it does (the kill may come sooner, while it still applies them).
    static func serve(state: URL, manifests: URL) throws -> Daemon {
        try Daemon(["--state", state.path, "--manifests", manifests.path, "--dns", "127.0.0.1:0",
                    "--http", "none", "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"], wait: false)
    }

    static func killAgainAndAgain(_ checks: Checks) throws {
        let root = Scratch.url("daemon-crash")
        let manifests = root.appendingPathComponent("manifests"), state = root.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: manifests, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        var rng = SystemRandomNumberGenerator()
        /// Every service's cluster IP and node port, as first stored.
        var stored: [String: (clusterIP: String, nodePort: Int)] = [:]
        var servedTotal = 0
        for round in 0..<Self.rounds {
            // A new file, and now and then an old one written again with a new label.
            try manifest(round: round, generation: 0).write(to: manifests.appendingPathComponent("r\(round).yaml"),
                                                                  atomically: true, encoding: .utf8)
            if round > 0, Bool.random(using: &rng) {
                let old = Int.random(in: 0..<round, using: &rng)
                try manifest(round: old, generation: round).write(to: manifests.appendingPathComponent("r\(old).yaml"),
                                                                        atomically: true, encoding: .utf8)
            }
            let daemon = try serve(state: state, manifests: manifests)
            // Every other round the moment of the kill counts from when the daemon listens, not
            // from its start: a loaded machine may take longer than the whole wait to start it,
            // and the rounds must serve names however slow it is. The others may kill it while
            // it still applies the manifests.
            if round % 2 == 1 { _ = eventually(60) { daemon.dns != 0 } }
            // Ask for names of every round so far until the moment of the kill.
            let deadline = monotonicSeconds() + Double.random(in: 0.05...0.6, using: &rng)
            var served: [String: String] = [:]
            while monotonicSeconds() < deadline {
                let port = daemon.dns
                guard port != 0 else { usleep(1_000); continue }
                let r = Int.random(in: 0...round, using: &rng), i = Int.random(in: 0..<10, using: &rng)
                let name = "r\(r)-s\(i).ns-\(i % 3).svc.cluster.local."
                if let ip = ask(name, port: port) { served["r\(r)-s\(i)"] = ip }
            }
            daemon.stop(signal: SIGKILL)
            servedTotal += served.count

            let registry = try Registry(storage: SQLiteStorage(directory: state.path))
            let services = registry.snapshot().services
            var now: [String: (clusterIP: String, nodePort: Int)] = [:]
            for service in services {
                now[service.metadata.name] = (service.spec.clusterIP, service.spec.ports.first?.nodePort ?? 0)
            }
            checks.that(now.count == services.count, "round \(round): a name stored twice")
            for (name, ip) in served {
                checks.that(now[name]?.clusterIP == ip, "round \(round): \(name) was served as \(ip), stored as \(now[name]?.clusterIP ?? "nothing")")
            }
            for (name, first) in stored {
                checks.that(now[name]?.clusterIP == first.clusterIP && now[name]?.nodePort == first.nodePort,
                        "round \(round): \(name) was \(first), is \(String(describing: now[name]))")
            }
            checks.that(Set(now.values.map(\.clusterIP)).count == now.count, "round \(round): a cluster IP given twice")
            checks.that(Set(now.values.map(\.nodePort)).count == now.count, "round \(round): a node port given twice")
            for (name, value) in now where stored[name] == nil { stored[name] = value }
        }
        checks.that(servedTotal > Self.rounds / 2, "names served across the rounds: \(servedTotal)")
        // A last life, not cut short, serves every service with the address first stored.
        let daemon = try serve(state: state, manifests: manifests)
        defer { daemon.stop(signal: SIGKILL) }
        let last = "r\(Self.rounds - 1)-s9"
        checks.that(eventually(60) { daemon.dns != 0 && ask("\(last).ns-0.svc.cluster.local.", port: daemon.dns) != nil })
        let port = daemon.dns
        let registry = try Registry(storage: SQLiteStorage(directory: state.path))
        checks.that(registry.snapshot().services.count == Self.rounds * 10)
        for round in 0..<Self.rounds {
            for i in 0..<10 {
                let name = "r\(round)-s\(i)"
                let ip = ask("\(name).ns-\(i % 3).svc.cluster.local.", port: port)
                checks.that(ip != nil && (stored[name] == nil || stored[name]?.clusterIP == ip), "\(name): \(ip ?? "no answer")")
            }
        }
    }
}
