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
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func sigkillWhileApplying() throws {
        let file = try manifest()
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("crash-state-\(UUID().uuidString)").path
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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("full-\(UUID().uuidString)")
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
