import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `clusterdns` executable as a user would.
struct Tool {
    static var executable: URL {
        // The test bundle sits next to the products of the same build.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
        return directory.appendingPathComponent("clusterdns")
    }

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `clusterdns` to its end; one still running after `limit` seconds (a command that
    /// was expected to fail and serves instead) is killed, so the test fails instead of hanging.
    static func run(_ arguments: [String], limit: Double = 120) throws -> Result {
        let process = ChildProcess()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = packageRoot
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + limit) { [process] in
            if process.isRunning { kill(pid, SIGKILL) }
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite struct CheckZoneTests {
    func temporaryZone(_ name: String, _ text: String) throws -> String {
        let directory = Scratch.url("clusterdns")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func summarisesTheShippedZones() throws {
        let result = try Tool.run(["check-zone"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("zone example.com.: loaded 20 records, serial 2026112401\n"))
        #expect(result.stdout.contains("zone 2.0.192.in-addr.arpa.: loaded 8 records, serial 2026112401\n"))
    }

    @Test func takesTheOriginFromTheFlag() throws {
        let path = try temporaryZone("db.test", "$TTL 60\n@ SOA ns h 7 1 1 1 1\n NS ns\nns A 192.0.2.1\n")
        let result = try Tool.run(["check-zone", path, "--origin", "test"])
        #expect(result.status == 0)
        #expect(result.stdout == "zone test.: loaded 3 records, serial 7\n")
    }

    @Test func acceptsAnInternationalisedOrigin() throws {
        let path = try temporaryZone("db.idn", "$TTL 60\n@ SOA ns h 7 1 1 1 1\n NS ns\nns A 192.0.2.1\n")
        let result = try Tool.run(["check-zone", path, "--origin", "bücher.example"])
        #expect(result.stdout == "zone xn--bcher-kva.example.: loaded 3 records, serial 7\n")
    }

    @Test func reportsTheErrorWithFileLineAndColumn() throws {
        let path = try temporaryZone("bad.zone", "$TTL 60\n@ SOA ns h 7 1 1 1 1\n NS ns\nns A 192.0.2.300\n")
        let result = try Tool.run(["check-zone", path])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "zone bad.: \(path):4:6: expected an IPv4 address (at \"192.0.2.300\")\n")
    }

    @Test func refusesAFileNameWithoutAZoneName() throws {
        let path = try temporaryZone("db.test", "")
        let result = try Tool.run(["check-zone", path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("name it NAME.zone or pass --origin"))
    }

    @Test func printsCanonicalForm() throws {
        let path = try temporaryZone("p.zone", "$TTL 60\n@ SOA ns h 7 1 1 1 1\n NS ns\nns A 192.0.2.1\n")
        let result = try Tool.run(["check-zone", "--print", path])
        #expect(result.stdout == """
            zone p.: loaded 3 records, serial 7
            $ORIGIN p.
            p. 60 IN SOA ns.p. h.p. 7 1 1 1 1
            p. 60 IN NS ns.p.
            ns.p. 60 IN A 192.0.2.1

            """)
    }
}
