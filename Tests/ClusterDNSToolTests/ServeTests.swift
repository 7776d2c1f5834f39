@testable import ClusterDNSCommand
import Logging
import Foundation
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Binds `fd` to `address` port 0 and returns the port the kernel chose.
func bindAnyPort(_ fd: Int32, on address: String) -> UInt16 {
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_addr.s_addr = inet_addr(address)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
            _ = bind(fd, p, length)
            return getsockname(fd, p, &length)
        }
    }
    return UInt16(bigEndian: sin.sin_port)
}

/// An HTTP GET on loopback: the status code, or nil when nothing answers.
func httpStatus(port: UInt16, path: String) -> Int? {
    let result = try? Tool.runRaw("/usr/bin/env", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                                                   "http://127.0.0.1:\(port)\(path)"])
    return result.flatMap { Int($0.stdout) }.flatMap { $0 == 0 ? nil : $0 }
}

/// An HTTP GET on 127.0.0.1 over a socket of this process (no child process): the status code.
func httpStatusOverSocket(port: UInt16, path: String) -> Int? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard send(fd, request, request.count, 0) == request.count else { return nil }
    var reply = [UInt8](repeating: 0, count: 64)
    let count = recv(fd, &reply, reply.count, 0)
    guard count > 12 else { return nil }
    // "HTTP/1.1 200 OK": the three digits after the first space.
    let line = String(decoding: reply[0..<count], as: UTF8.self)
    return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
}

func digShort(port: UInt16, _ name: String, type: String = "A") -> String {
    (try? Tool.runRaw("/usr/bin/env", ["dig", "@127.0.0.1", "-p", String(port), "+short", "+time=1", "+tries=1", name, type]).stdout) ?? ""
}

extension Tool {
    /// Runs `executable`; its standard error is kept only when `stderr` is set (read after the
    /// output, so keep it short).
    static func runRaw(_ executable: String, _ arguments: [String], stderr: Bool = false) throws -> Result {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = stderr ? err : FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr ? err.fileHandleForReading.readDataToEndOfFile() : Data()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: data, as: UTF8.self),
                      stderr: String(decoding: errors, as: UTF8.self))
    }
}

extension Tool {
    /// kubectl as an operator runs it: the kubeconfig given, its discovery cache in `home` (not
    /// the user's), nothing else of the environment.
    static func kubectl(_ kubectl: String, kubeconfig: String, home: String, _ arguments: [String]) throws -> Result {
        let process = ChildProcess()
        process.executableURL = URL(fileURLWithPath: kubectl)
        process.arguments = ["--kubeconfig", kubeconfig, "--request-timeout", "10s"] + arguments
        process.environment = ["HOME": home, "PATH": "/usr/bin:/bin"]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Errors after the output: kubectl's are a few lines, never enough to fill their pipe.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderrData, as: UTF8.self))
    }
}

/// Polls `condition` every 20 ms for at most `seconds`.
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

@Suite(.serialized) struct ServeTests {
    @Test func servesReloadsAndShutsDownGracefully() throws {
        let directory = Scratch.url("serve")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let manifest = directory.appendingPathComponent("cluster.yaml")
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: kubernetes, namespace: default}
            spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443}]}
            """.write(to: manifest, atomically: true, encoding: .utf8)
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--manifests", directory.path, "--lameduck", "1s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, http) = (daemon.process, daemon.dns, daemon.http)

        #expect(eventually(10) { httpStatus(port: http, path: "/ready") == 200 }, "ready within 10 s")
        #expect(httpStatus(port: http, path: "/health") == 200)
        #expect(httpStatus(port: http, path: "/nope") == 404)
        #expect(digShort(port: dns, "kubernetes.default.svc.cluster.local") == "10.96.0.1\n")

        // A new manifest file is picked up and served.
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: added, namespace: default}
            spec: {clusterIP: 10.96.0.42, ports: [{port: 80}]}
            """.write(to: directory.appendingPathComponent("added.yaml"), atomically: true, encoding: .utf8)
        #expect(eventually(5) { digShort(port: dns, "added.default.svc.cluster.local") == "10.96.0.42\n" })

        // SIGTERM: /ready fails at once, DNS still answers during the lame-duck second, exit 0.
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(0.5) { httpStatus(port: http, path: "/ready") == 503 })
        #expect(digShort(port: dns, "kubernetes.default.svc.cluster.local") == "10.96.0.1\n")
        #expect(eventually(5) { !process.isRunning })
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}

@Suite(.serialized) struct ServeZonesAndMetricsTests {
    /// The README's examples against the repository's `zones/`, through dig: forward names,
    /// a CNAME to the apex, and the reverse zone's PTR (a type the cluster zone never has,
    /// answered from the zone file's pre-encoded answers).
    @Test func theExampleZonesAnswerAsTheREADMESays() throws {
        let zones = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("zones").path
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--zones", zones, "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let port = daemon.dns
        #expect(eventually(10) { digShort(port: port, "kubernetes.default.svc.cluster.local") == "10.96.0.1\n" })
        #expect(digShort(port: port, "www.example.com") == "example.com.\n192.0.2.10\n")
        let reverse = try Tool.runRaw("/usr/bin/env", ["dig", "@127.0.0.1", "-p", String(port), "+short", "+time=1", "+tries=1",
                                                       "-x", "192.0.2.25"]).stdout
        #expect(reverse == "mail.example.com.\n")
    }

    @Test func staticZonesReloadAndMetricsAreScraped() throws {
        let directory = Scratch.url("zones")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let zoneFile = directory.appendingPathComponent("test.example.zone")
        func zone(_ address: String, extra: String = "") -> String {
            "$TTL 60\n@ IN SOA ns hostmaster 1 7200 900 1209600 60\n  IN NS ns\nns IN A 192.0.2.53\nwww IN A \(address)\n" + extra
        }
        try zone("192.0.2.1").write(to: zoneFile, atomically: true, encoding: .utf8)
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--zones", directory.path,
                                 "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, http, log) = (daemon.process, daemon.dns, daemon.http, daemon.log)
        #expect(eventually(10) { httpStatus(port: http, path: "/ready") == 200 }, "ready within 10 s")

        #expect(digShort(port: dns, "www.test.example") == "192.0.2.1\n")
        // An edit is served within the watch interval.
        try zone("192.0.2.2").write(to: zoneFile, atomically: true, encoding: .utf8)
        #expect(eventually(5) { digShort(port: dns, "www.test.example") == "192.0.2.2\n" })
        // A broken edit: logged with file and line, the previous zone kept.
        try zone("192.0.2.3", extra: "oops IN A not-an-address\n").write(to: zoneFile, atomically: true, encoding: .utf8)
        #expect(eventually(5) { (try? String(contentsOf: log, encoding: .utf8))?.contains("test.example.zone:6:") == true })
        #expect(digShort(port: dns, "www.test.example") == "192.0.2.2\n")
        // SIGHUP reloads at once.
        try zone("192.0.2.4").write(to: zoneFile, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        #expect(eventually(2) { digShort(port: dns, "www.test.example") == "192.0.2.4\n" })
        #expect((try? String(contentsOf: log, encoding: .utf8))?.contains("SIGHUP: reloading") == true)

        // One NXDOMAIN, then the scrape shows it (no other query above was NXDOMAIN).
        _ = digShort(port: dns, "nope.test.example")
        let metrics = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "2", "http://127.0.0.1:\(http)/metrics"]).stdout
        #expect(metrics.contains("clusterdns_dns_responses_total{transport=\"udp\",rcode=\"NXDOMAIN\"} 1\n"), "\(metrics)")
        #expect(metrics.contains("clusterdns_dns_static_zones 1.0\n"))
        #expect(metrics.contains("# TYPE clusterdns_dns_request_duration_seconds histogram"))
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(5) { !process.isRunning })
    }
}

/// A listening TCP socket on 127.0.0.2 (a port chosen by the kernel).
func listenOnSecondLoopback() -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let port = bindAnyPort(fd, on: "127.0.0.2")
    listen(fd, 256)
    return (fd, port)
}

/// A directory with one Service (`clusterIP:port`, port name `web`) whose one endpoint is
/// 127.0.0.2:`backendPort`.
func relayManifests(service: String, clusterIP: String, port: Int, backendPort: UInt16) throws -> URL {
    let directory = Scratch.url(service)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try """
        apiVersion: v1
        kind: Service
        metadata: {name: \(service), namespace: default}
        spec: {clusterIP: \(clusterIP), ports: [{name: web, port: \(port)}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: \(service)-1, namespace: default, labels: {kubernetes.io/service-name: \(service)}}
        addressType: IPv4
        ports: [{name: web, port: \(backendPort), protocol: TCP}]
        endpoints: [{addresses: ["127.0.0.2"]}]
        """.write(to: directory.appendingPathComponent("\(service).yaml"), atomically: true, encoding: .utf8)
    return directory
}

@Suite(.serialized) struct ServeForwarderTests {
    /// A TCP server on 127.0.0.2 that answers every connection with `hello` and closes.
    func helloServer() -> UInt16 {
        let (fd, port) = listenOnSecondLoopback()
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                _ = send(client, "hello", 5, 0)
                close(client)
            }
        }
        return port
    }

    /// Out of descriptors (EMFILE), the forwarder pauses accepting instead of crashing or
    /// spinning, and serves again once descriptors are free.
    @Test func outOfDescriptorsPausesAcceptingAndRecovers() throws {
        // A backend on 127.0.0.2 that greets every connection and holds it open.
        let (fd, backendPort) = listenOnSecondLoopback()
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                // Greet, then hold the connection until the other side closes it.
                Thread.detachNewThread {
                    _ = send(client, "hi", 2, 0)
                    var byte: UInt8 = 0
                    while recv(client, &byte, 1, 0) > 0 {}
                    close(client)
                }
            }
        }
        let directory = try relayManifests(service: "tiny", clusterIP: "127.100.0.21", port: 8081, backendPort: backendPort)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A small descriptor limit for the daemon alone.
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--manifests", directory.path,
                                 "--service-cidr", "127.100.0.0/16", "--forwarder", "--zones", "none", "--resolv-conf", "none",
                                 "--udp-sockets", "1", "--lameduck", "0s"],
                                prefix: ["/bin/bash", "-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        defer { daemon.stop(signal: SIGKILL) }
        let process = daemon.process
        func greet() -> Int32? {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var tv = timeval(tv_sec: 0, tv_usec: 300_000)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_port = UInt16(8081).bigEndian
            to.sin_addr.s_addr = inet_addr("127.100.0.21")
            let ok = withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            var reply = [UInt8](repeating: 0, count: 2)
            guard ok, recv(client, &reply, 2, Int32(MSG_WAITALL)) == 2 else {
                close(client)
                return nil
            }
            return client
        }
        #expect(eventually(10) { greet().map { close($0); return true } ?? false })
        // Hold connections until the daemon runs out of descriptors (each takes two there).
        var clients: [Int32] = []
        var refused = 0
        for _ in 0..<60 {
            if let client = greet() { clients.append(client) } else { refused += 1 }
        }
        #expect(refused > 0, "the daemon never ran out of descriptors")
        #expect(process.isRunning)
        for client in clients { close(client) }
        // Descriptors free again: it serves again.
        #expect(eventually(3) { greet().map { close($0); return true } ?? false })
        #expect(process.isRunning)
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(5) { !process.isRunning })
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    @Test func nameToClusterIPToEndpoint() throws {
        let backendPort = helloServer()
        let directory = try relayManifests(service: "hello", clusterIP: "127.100.0.20", port: 8080, backendPort: backendPort)
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--manifests", directory.path,
                                 "--service-cidr", "127.100.0.0/16", "--forwarder", "--zones", "none", "--resolv-conf", "none",
                                 "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, http) = (daemon.process, daemon.dns, daemon.http)
        #expect(eventually(10) { httpStatus(port: http, path: "/ready") == 200 })
        // The name resolves to the ClusterIP, and the ClusterIP reaches the endpoint.
        #expect(digShort(port: dns, "hello.default.svc.cluster.local") == "127.100.0.20\n")
        let reply = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "2", "telnet://127.100.0.20:8080"]).stdout
        #expect(reply == "hello", "\(reply)")
        let metrics = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "2", "http://127.0.0.1:\(http)/metrics"]).stdout
        #expect(metrics.contains("clusterdns_forwarder_connections_total{service=\"default/hello\",port=\"web\",frontend=\"127.100.0.20:8080/tcp\"} 1"), "\(metrics)")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(5) { !process.isRunning })
    }
}

@Suite struct ServeFlagTests {
    @Test(arguments: [
        (["--log-format", "xml"], "--log-format must be text or json"),
        (["--ttl", "4000"], "--ttl must be between 0 and 3600"),
        (["--pods", "maybe"], "--pods must be disabled, insecure or verified"),
        (["--dns", "localhost"], "--dns localhost: expected ADDRESS:PORT or [IPv6]:PORT"),
        (["--lameduck", "soon"], "--lameduck soon: expected a duration such as 5s or 500ms"),
        (["--service-cidr", "10.96.0.1/12"], "host bits are set"),
        (["--upstream", "dns.example"], "--upstream dns.example: expected ADDRESS, ADDRESS:PORT or [IPv6]:PORT"),
        (["--stub-domain", "corp.example"], "--stub-domain corp.example: expected NAME=ADDR[:PORT][,ADDR[:PORT]...]"),
        (["--stub-domain", "corp.example=10.0.0.1:99999"], "10.0.0.1:99999 is not ADDR[:PORT]"),
        (["--allow-recursion", "10.0.0.0/33"], "--allow-recursion 10.0.0.0/33: expected a CIDR"),
        (["--policy", "fastest"], "--policy must be random, round_robin or sequential"),
        (["--serve-stale", "forever"], "--serve-stale forever: expected a duration"),
        (["--zones", "/nonexistent/zones"], "--zones /nonexistent/zones: not a directory"),
        (["--prefetch", "150"], "--prefetch must be a percentage, 0-100"),
        (["--forwarder-mode", "magic"], "--forwarder-mode must be bind or interface"),
        (["--node-address", "node-1"], "--node-address node-1: expected an IPv4 or IPv6 address"),
        (["--autopath", "--pods", "disabled"], "--autopath needs --pods verified"),
        (["--autopath", "--pods", "insecure"], "--autopath needs --pods verified"),
        (["--search-path", "corp.example"], "--search-path is for --autopath"),
        (["--autopath", "--pods", "verified", "--search-path", "a..example"], "--search-path a..example: not a domain name"),
    ])
    func badFlagsAreRefused(_ flags: [String], _ message: String) throws {
        let result = try Tool.run(["serve"] + flags)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    /// A DNS address another socket holds (here with SO_REUSEPORT, as a second daemon's would):
    /// the daemon says so and exits instead of sharing the port or hanging.
    @Test func anAddressInUseEndsTheDaemon() throws {
        let holder = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(holder) }
        var on: Int32 = 1
        setsockopt(holder, SOL_SOCKET, SO_REUSEPORT, &on, socklen_t(MemoryLayout<Int32>.size))
        let port = bindAnyPort(holder, on: "127.0.0.1")
        #expect(port != 0)
        let process = ChildProcess()
        process.executableURL = Tool.executable
        process.arguments = ["serve", "--dns", "127.0.0.1:\(port)", "--http", "none", "--state", "memory", "--zones", "none",
                             "--resolv-conf", "none", "--lameduck", "0s"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 where process.isRunning { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning {
            Issue.record("the daemon is still running 20 s after failing to bind")
            process.terminate()
        }
        process.waitUntilExit()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus != 0)
        #expect(log.contains("bind 127.0.0.1:\(port) (UDP; is another server on it?): Address already in use"), "\(log)")
    }

    @Test func queryLogNamesClientNameTypeAndRcode() throws {
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--log-format", "json", "--lameduck", "0s",
                                 "--zones", "none", "--resolv-conf", "none", "--log-queries"])
        defer { daemon.stop(signal: SIGKILL) }
        let port = daemon.dns
        #expect(eventually(10) { digShort(port: port, "kubernetes.default.svc.cluster.local") == "10.96.0.1\n" })
        _ = digShort(port: port, "nope.default.svc.cluster.local")
        daemon.stop()
        let lines = daemon.logText.split(separator: "\n")
        let queries = lines.filter { $0.contains("\"message\":\"query\"") }
        #expect(queries.contains { $0.contains("\"name\":\"kubernetes.default.svc.cluster.local.\"") && $0.contains("\"rcode\":\"NOERROR\"")
            && $0.contains("\"client\":\"127.0.0.1:") && $0.contains("\"type\":\"A\"") }, "\(queries)")
        #expect(queries.contains { $0.contains("\"name\":\"nope.default.svc.cluster.local.\"") && $0.contains("\"rcode\":\"NXDOMAIN\"") })
    }

    @Test func jsonLogs() throws {
        let process = ChildProcess()
        process.executableURL = Tool.executable
        // A refused manifest: its message quotes names, a tab and a newline (JSON escapes).
        let manifest = Scratch.url("json-logs", suffix: ".yaml").path
        try "apiVersion: v1\nkind: Service\nmetadata: {name: \"Bad_\\t\\nName\"}\nspec: {ports: [{port: 80}]}\n"
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        defer { unlink(manifest) }
        process.arguments = ["serve", "--dns", "127.0.0.1:0", "--http", "none", "--log-format", "json", "--lameduck", "0s",
                             "--manifests", manifest, "--state", "memory"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Read the log until the server says it serves (the pipe closes if it dies), then stop it.
        var log = Data()
        while !String(decoding: log, as: UTF8.self).contains("serving DNS") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            log.append(chunk)
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        log.append(err.fileHandleForReading.readDataToEndOfFile())
        let lines = String(decoding: log, as: UTF8.self).split(separator: "\n")
        #expect(lines.count >= 2)
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] != nil && object?["message"] != nil, "\(line)")
            if let object { objects.append(object) }
        }
        #expect(lines.contains { $0.contains("\"message\":\"serving DNS\"") })
        // RFC 3339 UTC with milliseconds.
        for object in objects {
            let time = Array(((object["time"] as? String) ?? "").utf8)
            let shape = time.map { $0 >= 48 && $0 <= 57 ? UInt8(ascii: "9") : $0 }
            #expect(String(decoding: shape, as: UTF8.self) == "9999-99-99T99:99:99.999Z")
        }
        // The refusal came through with its quotes, tab and newline intact.
        #expect(objects.contains { object in object.values.contains { "\($0)".contains("\"Bad_\t\nName\"") } }, "\(lines)")
    }
}

@Suite(.serialized) struct ConfigFileTests {
    func write(_ text: String) throws -> String {
        let path = Scratch.url("config", suffix: ".yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Starts serve with `arguments` (`serve` left out), asks one question, stops it; returns
    /// dig's answer line.
    func answer(_ arguments: [String]) throws -> String {
        let daemon = try Daemon(arguments)
        defer { daemon.stop(signal: SIGKILL) }
        let port = daemon.dns
        var line = ""
        _ = eventually(10) {
            line = (try? Tool.runRaw("/usr/bin/env", ["dig", "@127.0.0.1", "-p", String(port), "+noall", "+answer", "+time=1", "+tries=1",
                                                     "kubernetes.default.svc.cluster.local"]).stdout) ?? ""
            return line.contains("IN") && line.contains("10.96.0.1")
        }
        return line
    }

    @Test func settingsComeFromTheFileAndTheCommandLineWins() throws {
        let config = try write("dns: [\"127.0.0.1:0\"]\nttl: 30\nhttp: none\nlameduck: 0s\n")
        // The answer line's second field is its TTL; an empty answer fails without a crash.
        let ttl = { (line: String) in line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.map(String.init) }
        #expect(ttl(try answer(["--config", config])) == "30")
        #expect(ttl(try answer(["--config", config, "--ttl", "7"])) == "7")
    }

    @Test func everyForwardingAndCacheSettingIsAccepted() throws {
        let config = try write("""
            dns: ["127.0.0.1:0"]
            http: none
            lameduck: 0s
            zones: none
            upstream: ["127.0.0.1:9"]
            stub-domain: ["corp.example=127.0.0.1:9,127.0.0.2"]
            allow-recursion: ["127.0.0.0/8"]
            policy: round_robin
            max-fails: 3
            max-concurrent: 50
            upstream-timeout: 500ms
            forward-deadline: 1s
            cache-size: 100
            cache-min-ttl: 1
            cache-max-ttl: 60
            cache-negative-ttl: 30
            cache-servfail-ttl: 0
            cache-no-soa-ttl: 2
            serve-stale: 1h
            prefetch: 10
            log-queries: true
            log-queries-sample: 1
            """)
        #expect(try answer(["--config", config]).contains("10.96.0.1"))
        // Each setting where it takes effect (the file read as `serve` reads it).
        let serve = try Serve.parse(try ConfigFile.arguments(from: config))
        try serve.validate()
        let forwarding = try #require(try serve.forwarding(listening: [], logger: Logger(label: "test")))
        #expect(forwarding.groups.map(\.domain.description) == [".", "corp.example."])
        #expect(forwarding.groups.map { $0.servers.map(\.description) } == [["127.0.0.1:9"], ["127.0.0.1:9", "127.0.0.2:53"]])
        #expect(serve.allowRecursion == ["127.0.0.0/8"])
        #expect(forwarding.policy == .roundRobin && forwarding.maxFails == 3 && forwarding.maxConcurrent == 50)
        #expect(forwarding.readTimeout == .milliseconds(500) && forwarding.deadline == .seconds(1))
        #expect(forwarding.cache.capacity == 100 && forwarding.cache.minimumTTL == 1 && forwarding.cache.maximumTTL == 60)
        #expect(forwarding.cache.maximumNegativeTTL == 30 && forwarding.cache.serverFailureTTL == 0 && forwarding.cache.bareNegativeTTL == 2)
        #expect(forwarding.cache.staleWindow == 3600 && forwarding.cache.prefetchFraction == 0.1)
        #expect(serve.logQueries && serve.logQueriesSample == 1)
        let bad = try write("log-queries: maybe\n")
        let result = try Tool.run(["serve", "--config", bad])
        #expect(result.status != 0)
        #expect(result.stderr.contains("log-queries must be true or false"), "\(result.stderr)")
    }

    @Test func sighupAppliesAChangedConfigAndRefusesABrokenOne() throws {
        let base = "dns: [\"127.0.0.1:0\"]\nhttp: none\nlameduck: 0s\nzones: none\n"
        let config = try write(base + "resolv-conf: none\n")
        let daemon = try Daemon(["--config", config])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, port, log) = (daemon.process, daemon.dns, daemon.log)
        func status(_ name: String) -> String {
            let out = (try? Tool.runRaw("/usr/bin/env", ["dig", "@127.0.0.1", "-p", String(port), "+time=2", "+tries=1", name]).stdout) ?? ""
            return out.components(separatedBy: "status: ").dropFirst().first?.components(separatedBy: ",").first ?? "none"
        }
        #expect(eventually(10) { digShort(port: port, "kubernetes.default.svc.cluster.local") == "10.96.0.1\n" })
        // No forwarding: a name outside our zones is REFUSED.
        #expect(status("www.example.org") == "REFUSED")
        // An upstream that never answers, with a short deadline: now SERVFAIL.
        try (base + "upstream: [\"127.0.0.1:9\"]\nforward-deadline: 300ms\nttl: 9\n").write(toFile: config, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        #expect(eventually(3) { status("www.example.org") == "SERVFAIL" })
        let text = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        #expect(eventually(2) { text().contains("forwarding reconfigured") })
        #expect(text().contains("take effect on restart") && text().contains("ttl"), "\(text())")
        // A broken file is refused and the running settings stay.
        try (base + "ttl: 99999\n").write(toFile: config, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        #expect(eventually(3) { text().contains("refused on reload") })
        #expect(status("www.example.org") == "SERVFAIL")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(5) { !process.isRunning })
    }

    @Test func unknownSettingsAreRefusedWithTheirLine() throws {
        let config = try write("ttl: 30\nbogus: 1\n")
        let result = try Tool.run(["serve", "--config", config])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--config \(config):2: unknown setting \"bogus\""))
    }
}

/// Thousands of idle connections held through the daemon's forwarder while the other service
/// keeps answering. Ten thousand where the descriptor limit allows; a relayed connection takes
/// two descriptors in the daemon (client and endpoint) and two in this process (client and
/// held backend end), and this process's table is shared with every test running beside this
/// one, which keeps 5,000 of it: 7,500 where the hard limit is 20,000 and cannot be raised (no
/// CAP_SYS_RESOURCE).
@Suite(.serialized) struct ForwarderIdleConnectionsTests {
    @Test func thousandsOfIdleConnectionsThroughTheDaemon() async throws {
        try await Exclusive.descriptors.run { try thousandsOfIdleConnections() }
    }

    func thousandsOfIdleConnections() throws {
        let count = min(10_000, (descriptorLimit - 5_000) / 2)
        #expect(count >= 5_000, "the descriptor limit (\(descriptorLimit)) leaves room for only \(count)")
        // The held backend: accepts and keeps every connection, on a thread of its own.
        let (holder, holderPort) = listenOnSecondLoopback()
        listen(holder, 4096)
        let held = Mutex<[Int32]>([])
        Thread.detachNewThread {
            while true {
                let fd = accept(holder, nil, nil)
                if fd < 0 { return }
                held.withLock { $0.append(fd) }
            }
        }
        defer {
            shutdown(holder, Int32(SHUT_RDWR))
            close(holder)
            held.withLock { fds in for fd in fds { close(fd) } }
        }
        let helloPort = ServeForwarderTests().helloServer()
        let idle = try relayManifests(service: "idle", clusterIP: "127.100.0.31", port: 8090, backendPort: holderPort)
        let busy = try relayManifests(service: "busy", clusterIP: "127.100.0.32", port: 8091, backendPort: helloPort)
        defer { try? FileManager.default.removeItem(at: idle); try? FileManager.default.removeItem(at: busy) }
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--manifests", idle.path,
                                 "--manifests", busy.path, "--service-cidr", "127.100.0.0/16", "--forwarder", "--state", "memory",
                                 "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, http) = (daemon.process, daemon.http)
        #expect(eventually(20) { httpStatus(port: http, path: "/ready") == 200 })

        func connect(_ ip: String, _ port: UInt16) -> Int32? {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_port = port.bigEndian
            to.sin_addr.s_addr = inet_addr(ip)
            let rc = withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc == 0 { return fd }
            close(fd)
            return nil
        }
        var clients: [Int32] = []
        defer { for fd in clients { close(fd) } }
        for _ in 0..<count {
            guard let fd = connect("127.100.0.31", 8090) else { break }
            clients.append(fd)
        }
        #expect(clients.count == count)
        // Every one relayed: the held backend has them all.
        #expect(eventually(60) { held.withLock { $0.count } == count }, "held \(held.withLock { $0.count }) of \(count)")
        // The other service is served meanwhile.
        for _ in 0..<3 {
            guard let fd = connect("127.100.0.32", 8091) else { Issue.record("no connection to the busy service"); continue }
            var buffer = [UInt8](repeating: 0, count: 16)
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let n = recv(fd, &buffer, buffer.count, 0)
            close(fd)
            #expect(n == 5 && Array(buffer[0..<5]) == Array("hello".utf8))
        }
        // Asked from this process, while it holds thousands of descriptors.
        #expect(httpStatusOverSocket(port: http, path: "/health") == 200)
        // Released: the daemon closes its ends too, and exits cleanly.
        for fd in clients { close(fd) }
        clients = []
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}
