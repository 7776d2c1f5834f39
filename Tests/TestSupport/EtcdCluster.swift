import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// etcd members (Debian's etcd-server) on loopback ports of their own, each with a data
/// directory in a temporary directory removed by `stop()`. Members are started and killed one
/// by one, so tests can take a member (the leader) away and bring it back.
public final class EtcdCluster: @unchecked Sendable {
    public struct Member {
        public let name: String
        public let clientPort: UInt16
        public let peerPort: UInt16
        public var clientURL: String { "http://127.0.0.1:\(clientPort)" }
    }

    public private(set) var members: [Member] = []
    let directory: URL
    var processes: [String: ChildProcess] = [:]
    let lock = NSLock()

    /// The executable, or nil when etcd is not installed (`.ci/run` installs etcd-server).
    public static var executable: String? {
        ["/usr/bin/etcd", "/usr/local/bin/etcd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public var clientURLs: [String] { members.map(\.clientURL) }

    /// Starts `size` members and waits until every one answers on its client port. Their ports
    /// are named in every member's flags, so they are found free first: when another socket
    /// takes one in between, that member exits saying the address is in use, and the cluster is
    /// started again on new ports.
    /// `ports` hands out the ports (a test of this retry hands out a taken one first).
    public init(size: Int = 1, ports: () -> UInt16 = { TestSupport.freePort() }) throws {
        guard Self.executable != nil else { throw EtcdClusterError("etcd is not installed (Debian: etcd-server)") }
        // In memory where there is a tmpfs: etcd syncs its log on every write, and these tests
        // are about what etcd answers, not about the disk under it.
        let base = FileManager.default.isWritableFile(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm")
            : FileManager.default.temporaryDirectory
        directory = base.appendingPathComponent("etcd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var attempt = 0
        while true {
            attempt += 1
            members = (0..<size).map { Member(name: "m\($0)", clientPort: ports(), peerPort: ports()) }
            for member in members { try start(member.name) }
            // Answering on the port is not enough: whoever took it may be listening there.
            if members.allSatisfy({ waitForPort(of: $0, seconds: 60) }) && waitUntilHealthy(seconds: 60) { break }
            let said = members.map { "\($0.name): \(log(of: $0.name))" }.joined(separator: "; ")
            let inUse = members.contains { log(of: $0.name).contains("address already in use") }
            for name in lock.withLock({ Array(processes.keys) }) { kill(name) }
            if inUse && attempt < 5 {
                try? FileManager.default.removeItem(at: directory)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                continue
            }
            stop()
            throw EtcdClusterError("etcd did not start with a leader: \(said)")
        }
    }

    /// Whether every running member says it is healthy (it has a leader and answers a read),
    /// asked through etcd's /health endpoint; polled until `seconds` have passed.
    public func waitUntilHealthy(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        let running = lock.withLock { Set(processes.keys) }
        while Date() < deadline {
            // A member that has exited will not become healthy.
            if lock.withLock({ running.contains { processes[$0]?.isRunning == false } }) { return false }
            let healthy = members.filter { running.contains($0.name) }.allSatisfy { member in
                let process = ChildProcess()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["curl", "-s", "--max-time", "1", "\(member.clientURL)/health"]
                let out = Pipe()
                process.standardOutput = out
                process.standardError = FileHandle.nullDevice
                guard (try? process.run()) != nil else { return false }
                let data = out.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return String(decoding: data, as: UTF8.self).contains(#""health":"true""#)
            }
            if healthy { return true }
            usleep(50_000)
        }
        return false
    }

    /// Starts (or restarts, with its data) the member `name`.
    public func start(_ name: String) throws {
        guard let member = members.first(where: { $0.name == name }) else { throw EtcdClusterError("no member \(name)") }
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: Self.executable!)
        process.arguments = [
            "--name", member.name, "--data-dir", directory.appendingPathComponent(member.name).path,
            "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
            "--listen-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", directory.lastPathComponent,
            "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "error",
        ]
        process.environment = ["ETCD_UNSUPPORTED_ARCH": "", "PATH": "/usr/bin:/bin"]
        let log = directory.appendingPathComponent("\(member.name).log")
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = handle
        try process.run()
        lock.withLock { processes[name] = process }
    }

    /// Kills the member `name` at once (SIGKILL): no goodbye to its peers.
    public func kill(_ name: String) {
        guard let process = lock.withLock({ processes.removeValue(forKey: name) }) else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    public func stop() {
        for name in lock.withLock({ Array(processes.keys) }) { kill(name) }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    /// What member `name` has written on its standard error (errors only: `--log-level error`).
    func log(of name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
    }

    /// Whether `member` answers on its client port within `seconds`; false at once when it has exited.
    func waitForPort(of member: Member, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if Self.waitForPort(member.clientPort, seconds: 0.2) { return true }
            if lock.withLock({ processes[member.name].map { !$0.isRunning } ?? true }) { return false }
        }
        return false
    }

    static func waitForPort(_ port: UInt16, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(fd)
            if connected { return true }
            usleep(20_000)
        }
        return false
    }
}

public struct EtcdClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
