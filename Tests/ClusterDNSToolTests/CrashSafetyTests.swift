import Foundation
import NetAddress
import ServiceRegistry
import Testing

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
            let process = Process()
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
