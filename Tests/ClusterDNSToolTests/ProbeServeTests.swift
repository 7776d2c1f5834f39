import Foundation
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `serve --probes` with real backends on loopback addresses as pod IPs: a backend that stops
/// answering leaves its headless service's DNS answers, and comes back when it answers again.
@Suite(.serialized) struct ProbeServeTests {
    /// A listener on `address` (port 0 the first time, then the port it had) whose connections
    /// get `reply` and are closed, until `stop()`.
    final class Backend: Sendable {
        let address: String
        let reply: String
        let fd = Atomic<Int32>(-1)
        let port = Atomic<UInt16>(0)

        init(_ address: String, reply: String) {
            self.address = address
            self.reply = reply
            start()
        }

        func start() {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if port.load(ordering: .relaxed) == 0 {
                port.store(bindAnyPort(fd, on: address), ordering: .relaxed)
            } else {
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_addr.s_addr = inet_addr(address)
                sin.sin_port = port.load(ordering: .relaxed).bigEndian
                _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
            listen(fd, 64)
            self.fd.store(fd, ordering: .relaxed)
            let reply = reply
            Thread.detachNewThread {
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    // The request is read before the reply (a close with unread data would
                    // reset the connection under the reply); an HTTP probe's request is one segment.
                    var timeout = timeval(tv_sec: 1, tv_usec: 0)
                    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    if !reply.isEmpty { _ = recv(client, &buffer, buffer.count, 0) }
                    _ = reply.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    close(client)
                }
            }
        }

        /// Refuses connections from now on (the listener is closed).
        func stop() {
            let fd = fd.exchange(-1, ordering: .relaxed)
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
    }

    /// An HTTP server on `address` whose `/ready` answers 200 while `ready`, 503 otherwise, and
    /// whose every other path answers its `name`: one that fails its probe and still serves.
    final class NamedHTTPBackend: Sendable {
        let port: UInt16
        let ready = Atomic<Bool>(true)
        let fd: Int32

        init(_ address: String, name: String) {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            port = bindAnyPort(fd, on: address)
            listen(fd, 64)
            let fd = fd
            Thread.detachNewThread { [self] in
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 { return }
                    var timeout = timeval(tv_sec: 1, tv_usec: 0)
                    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    let count = recv(client, &buffer, buffer.count, 0)
                    let request = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
                    let reply: String
                    if request.hasPrefix("GET /ready ") {
                        reply = self.ready.load(ordering: .relaxed) ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                            : "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                    } else {
                        reply = "HTTP/1.1 200 OK\r\nContent-Length: \(name.utf8.count)\r\nConnection: close\r\n\r\n\(name)"
                    }
                    _ = reply.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    close(client)
                }
            }
        }

        func stop() {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
    }

    /// The forwarder follows the probes: a backend whose readiness probe fails (while its port
    /// still serves, so nothing but the probe can tell) gets no new connection through the
    /// service's ClusterIP, and gets them again once its probe passes. The service's port is
    /// named, and resolved per pod from its container's port of that name.
    @Test func aBackendFailingItsProbeLeavesTheForwardersChoices() throws {
        let a = NamedHTTPBackend("127.0.0.41", name: "a"), b = NamedHTTPBackend("127.0.0.42", name: "b")
        defer { a.stop(); b.stop() }
        let directory = Scratch.url("probes-forwarder")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func pod(_ name: String, _ address: String, _ port: UInt16) -> String {
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name), namespace: default, labels: {app: named}}
            spec:
              containers:
              - name: app
                ports: [{name: http, containerPort: \(port)}]
                readinessProbe: {httpGet: {path: /ready, port: http}, periodSeconds: 1, failureThreshold: 1}
            status: {podIP: \(address), phase: Running}
            """
        }
        try ["""
            apiVersion: v1
            kind: Service
            metadata: {name: named, namespace: default}
            spec: {clusterIP: 127.100.0.44, selector: {app: named}, ports: [{name: web, port: 8044, targetPort: http}]}
            """, pod("named-a", "127.0.0.41", a.port), pod("named-b", "127.0.0.42", b.port)]
            .joined(separator: "\n---\n").write(to: directory.appendingPathComponent("named.yaml"), atomically: true, encoding: .utf8)
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--manifests", directory.path,
                                 "--service-cidr", "127.100.0.0/16", "--forwarder", "--probes", "--node-name", "node-a",
                                 "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let process = daemon.process
        /// The backends that answer ten requests through the ClusterIP.
        func chosen() -> Set<String> {
            Set((0..<10).map { _ in
                (try? Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "2", "http://127.100.0.44:8044/"]).stdout) ?? ""
            })
        }
        #expect(eventually(30) { chosen() == ["a", "b"] }, "\(chosen())")
        a.ready.store(false, ordering: .relaxed)
        #expect(eventually(30) { chosen() == ["b"] }, "\(chosen())")
        #expect(chosen() == ["b"])
        a.ready.store(true, ordering: .relaxed)
        #expect(eventually(30) { chosen() == ["a", "b"] }, "\(chosen())")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }

    @Test func aBackendThatStopsAnsweringLeavesDNSAndComesBack() throws {
        let httpBackend = Backend("127.0.0.21", reply: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        let tcp = Backend("127.0.0.22", reply: "")
        defer { httpBackend.stop(); tcp.stop() }
        let directory = Scratch.url("probes")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: default}
            spec: {clusterIP: None, selector: {app: web}, ports: [{name: http, port: 80}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web-http, namespace: default, labels: {app: web}}
            spec:
              containers:
              - name: app
                ports: [{name: health, containerPort: \(httpBackend.port.load(ordering: .relaxed))}]
                readinessProbe: {httpGet: {path: /ready, port: health}, periodSeconds: 1, failureThreshold: 1}
            status: {podIP: 127.0.0.21, phase: Running}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web-tcp, namespace: default, labels: {app: web}}
            spec:
              containers:
              - name: app
                readinessProbe: {tcpSocket: {port: \(tcp.port.load(ordering: .relaxed))}, periodSeconds: 1, failureThreshold: 2}
            status: {podIP: 127.0.0.22, phase: Running}
            """.write(to: directory.appendingPathComponent("web.yaml"), atomically: true, encoding: .utf8)
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--manifests", directory.path, "--probes",
                                 "--node-name", "node-a", "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, http) = (daemon.process, daemon.dns, daemon.http)
        func answers() -> [String] {
            digShort(port: dns, "web.default.svc.cluster.local").split(separator: "\n").map(String.init).sorted()
        }
        func probeMetrics() -> [String] {
            let metrics = (try? Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "2", "http://127.0.0.1:\(http)/metrics"]).stdout) ?? ""
            return metrics.split(separator: "\n").filter { $0.hasPrefix("clusterdns_probe_") }.map(String.init)
        }
        #expect(eventually(30) { answers() == ["127.0.0.21", "127.0.0.22"] })
        // A pod's stored readiness stands until its first verdict, so both are answered before
        // they are probed: the first verdicts are written before a backend stops.
        func statusWrites(_ lines: [String]) -> Int? {
            lines.first { $0.hasPrefix("clusterdns_probe_status_writes_total ") }.flatMap { Int($0.split(separator: " ")[1]) }
        }
        var firstVerdicts = 0
        #expect(eventually(30) { firstVerdicts = statusWrites(probeMetrics()) ?? 0; return firstVerdicts >= 2 })

        // Each backend in turn stops answering, leaves the answers, answers again and returns.
        tcp.stop()
        #expect(eventually(30) { answers() == ["127.0.0.21"] })
        tcp.start()
        #expect(eventually(30) { answers() == ["127.0.0.21", "127.0.0.22"] })
        httpBackend.stop()
        #expect(eventually(30) { answers() == ["127.0.0.22"] })
        httpBackend.start()
        #expect(eventually(30) { answers() == ["127.0.0.21", "127.0.0.22"] })
        // Results by outcome (both seen), the status writes (two out and two back after the
        // first verdicts), the pods probed.
        // The count follows the write's return, a moment after DNS has the change: read until it does.
        var lines: [String] = []
        #expect(eventually(10) {
            lines = probeMetrics()
            return statusWrites(lines) == firstVerdicts + 4
        })
        #expect(lines.contains { $0.hasPrefix("clusterdns_probe_results_total{result=\"failure\"} ") && !$0.hasSuffix(" 0") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("clusterdns_probe_results_total{result=\"success\"} ") && !$0.hasSuffix(" 0") }, "\(lines)")
        #expect(statusWrites(lines) == firstVerdicts + 4, "\(lines)")
        #expect(lines.contains { $0 == "clusterdns_probe_pods 2" || $0 == "clusterdns_probe_pods 2.0" }, "\(lines)")
        // Each attempt's duration, by outcome, in a histogram.
        #expect(lines.contains { $0.hasPrefix("clusterdns_probe_duration_seconds_count{result=\"failure\"} ") && !$0.hasSuffix(" 0") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("clusterdns_probe_duration_seconds_bucket{result=\"success\",le=\"0.001\"}") }, "\(lines)")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(5) { !process.isRunning })
    }

    /// A heartbeat pod renewed with `kubectl patch --subresource=status`, as a workload
    /// reporting its own health would: answered while renewed, gone from DNS when it stops
    /// within its TTL, back on the next renewal.
    @Test func aHeartbeatPodRenewedThroughKubectlLeavesDNSWhenItStops() throws {
        let kubectl = try Tool.runRaw("/usr/bin/env", ["sh", "-c", "command -v kubectl"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!kubectl.isEmpty, "kubectl is not installed (Debian: kubernetes-client; .ci/run installs it)")
        guard !kubectl.isEmpty else { return }
        let directory = Scratch.url("heartbeat")
        let state = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0", "--state", state,
                                 "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns) = (daemon.process, daemon.dns)
        let kubeconfig = state + "/kubeconfig"
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) })
        func run(_ arguments: [String]) throws -> Tool.Result {
            try Tool.kubectl(kubectl, kubeconfig: kubeconfig, home: directory.path, arguments)
        }
        let manifest = directory.appendingPathComponent("worker.yaml").path
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: jobs, namespace: default}
            spec: {clusterIP: None, selector: {app: worker}, ports: [{port: 9000}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: worker, namespace: default, labels: {app: worker}, annotations: {clusterdns.io/ready-ttl: 3s}}
            spec: {containers: [{name: app}]}
            status: {podIP: 127.0.0.23, phase: Running, conditions: [{type: Ready, status: "False"}]}
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let applied = try run(["apply", "-f", manifest])
        #expect(applied.status == 0, "\(applied.stderr)")
        func renew() throws {
            let now = ISO8601DateFormatter().string(from: Date())
            let patch = #"{"status":{"conditions":[{"type":"Ready","status":"True","lastProbeTime":"\#(now)"}]}}"#
            let result = try run(["patch", "pod", "worker", "--subresource=status", "--type=merge", "-p", patch])
            #expect(result.status == 0, "\(result.stderr)")
        }
        func answers() -> String { digShort(port: dns, "jobs.default.svc.cluster.local") }
        #expect(answers() == "")
        try renew()
        #expect(answers() == "127.0.0.23\n")
        #expect(eventually(20) { answers() == "" }, "not renewed: gone within its TTL")
        let shown = try run(["get", "pod", "worker", "-o", "jsonpath={.status.conditions[0].status} {.status.conditions[0].lastProbeTime}"])
        #expect(shown.stdout.hasPrefix("False 20"), "\(shown.stdout) \(shown.stderr)")
        try renew()
        #expect(answers() == "127.0.0.23\n")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }
}
