import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `clusterdns serve` started for a test on ports the kernel chooses: the test gives its
/// listeners port 0 (`--dns 127.0.0.1:0`, `--http 127.0.0.1:0`, `--api 127.0.0.1:0`) and reads the
/// ports the daemon bound back from its log, so no port is found free first and taken by
/// someone else before the daemon binds it. Its standard error goes to `log`, which tests read.
final class Daemon: @unchecked Sendable {
    let process: ChildProcess
    let log: URL
    let arguments: [String]
    /// Every DNS address bound (`--dns` may be given more than once), then HTTP's and the API's.
    private(set) var dnsAddresses: [String] = []
    private(set) var httpAddress: String?
    private(set) var apiAddress: String?
    private let ownsLog: Bool

    /// The first DNS port, 0 while the daemon has not said it listens (read from the log then).
    var dns: UInt16 {
        if dnsAddresses.isEmpty { _ = readListeners() }
        return dnsAddresses.first.map(Self.port(of:)) ?? 0
    }
    var http: UInt16 { httpAddress.map(Self.port(of:)) ?? 0 }
    var api: UInt16 { apiAddress.map(Self.port(of:)) ?? 0 }
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Starts `clusterdns serve arguments` (after `prefix`, a wrapper such as `bash -c 'ulimit …'`)
    /// and returns once every listener the arguments ask for has said where it listens. `--http`
    /// is `none` unless the arguments name it (its default, 9153, is one fixed port). The log
    /// level must let `info` through: that is where the listeners say it. With `wait` false it
    /// returns at once: `dns` is 0 until the daemon listens.
    init(_ arguments: [String], prefix: [String] = [], log: URL? = nil, environment: [String: String]? = nil,
         wait: Bool = true, seconds: Double = 60) throws {
        var arguments = arguments
        if !arguments.contains("--http") && !arguments.contains(where: { $0.hasPrefix("--config") }) {
            arguments += ["--http", "none"]
        }
        if let index = arguments.firstIndex(of: "--log-level"), index + 1 < arguments.count,
           ["notice", "warning", "error", "critical"].contains(arguments[index + 1]) {
            throw DaemonError("--log-level \(arguments[index + 1]) hides the lines that give the bound ports: use info")
        }
        self.arguments = arguments
        ownsLog = log == nil
        self.log = log ?? Scratch.url("serve", suffix: ".log")
        if log == nil || !FileManager.default.fileExists(atPath: self.log.path) {
            _ = FileManager.default.createFile(atPath: self.log.path, contents: nil)
        }
        process = ChildProcess()
        if prefix.isEmpty {
            process.executableURL = Tool.executable
            process.arguments = ["serve"] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [Tool.executable.path, "serve"] + arguments
        }
        if let environment { process.environment = environment }
        process.standardOutput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: self.log)
        handle.seekToEndOfFile()
        process.standardError = handle
        try process.run()
        try handle.close()
        guard wait else { return }
        do { try waitForListeners(seconds: seconds) } catch {
            stop(signal: SIGKILL)
            throw error
        }
    }

    /// What the arguments ask to listen on beside DNS (which always listens: `--dns` or
    /// `--config` names where, or the default), by the log line that says where each listens.
    private var expected: (http: Bool, api: Int) {
        func values(_ flag: String) -> [String] {
            arguments.indices.filter { arguments[$0] == flag && $0 + 1 < arguments.count }.map { arguments[$0 + 1] }
        }
        return (values("--http").last.map { $0 != "none" } ?? false, values("--api").count)
    }

    /// Reads where each listener listens from the log; whether every one expected has said so.
    private func readListeners() -> Bool {
        let want = expected
        let lines = logText.split(separator: "\n")
        dnsAddresses = lines.first { $0.contains("serving DNS") }.map { Self.addresses(in: $0) } ?? []
        httpAddress = lines.first { $0.contains("serving HTTP") }.flatMap { Self.addresses(in: $0).first }
        let apis = lines.filter { $0.contains("serving the Kubernetes API") }.compactMap { Self.addresses(in: $0).first }
        apiAddress = apis.first
        return !dnsAddresses.isEmpty && (httpAddress != nil || !want.http) && apis.count >= want.api
    }

    private func waitForListeners(seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if readListeners() { return }
            if !process.isRunning {
                throw DaemonError("clusterdns serve exited (\(process.terminationStatus)) before listening: \(logText)")
            }
            if Date() > deadline { throw DaemonError("clusterdns serve did not listen within \(seconds) s: \(logText)") }
            usleep(10_000)
        }
    }

    /// The `address:port` values of a log line, in the text or the JSON format
    /// (`addresses=127.0.0.1:5353 [::1]:5353`, `"address":"127.0.0.1:9153"`).
    static func addresses(in line: Substring) -> [String] {
        guard let key = line.range(of: "address") else { return [] }
        var rest = line[key.upperBound...].drop { $0 != "=" && $0 != ":" }.dropFirst()
        if rest.first == "\"" { rest = rest.dropFirst() }
        return rest.prefix { $0 != "\"" }.split(separator: " ").map(String.init).filter {
            ($0.first?.isNumber == true || $0.first == "[") && Self.port(of: $0) != 0
        }
    }

    static func port(of address: String) -> UInt16 {
        address.split(separator: ":").last.flatMap { UInt16($0) } ?? 0
    }

    /// Sends `signal` and waits for the exit.
    func stop(signal: Int32 = SIGTERM) {
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        if ownsLog { try? FileManager.default.removeItem(at: log) }
    }
}

struct DaemonError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
