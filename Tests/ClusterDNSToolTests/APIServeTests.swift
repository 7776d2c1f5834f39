import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `clusterdns serve --api`: the registry changed live over HTTP by a real client (curl), DNS
/// following; the kubeconfig written with its token, mode 0600; nothing served without it.
@Suite(.serialized) struct APIServeTests {
    @Test func servicesCreatedAndDeletedThroughTheAPIAreAnsweredAndGone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let kubeconfig = directory.appendingPathComponent("kubeconfig").path
        let dns = freePort()
        let api = freePort()
        let process = Process()
        process.executableURL = Tool.executable
        process.arguments = ["serve", "--dns", "127.0.0.1:\(dns)", "--http", "none", "--api", "127.0.0.1:\(api)",
                             "--api-kubeconfig", kubeconfig, "--state", "memory", "--zones", "none", "--resolv-conf", "none",
                             "--log-level", "error"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) })
        var info = stat()
        #expect(stat(kubeconfig, &info) == 0 && info.st_mode & 0o777 == 0o600, "the kubeconfig holds the token: owner only")
        let text = try String(contentsOfFile: kubeconfig, encoding: .utf8)
        #expect(text.contains("server: http://127.0.0.1:\(api)"))
        let token = try #require(text.split(separator: "\n").first { $0.contains("token:") }?.split(separator: " ").last.map(String.init))
        #expect(token.count == 64)

        func curl(_ method: String, _ path: String, token: String?, body: String? = nil) throws -> (code: Int, body: String) {
            var arguments = ["curl", "-s", "--max-time", "5", "-X", method, "-w", "\n%{http_code}",
                             "-H", "Content-Type: application/yaml"]
            if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
            if let body { arguments += ["--data-binary", body] }
            let result = try Tool.runRaw("/usr/bin/env", arguments + ["http://127.0.0.1:\(api)\(path)"])
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        #expect(try curl("GET", "/api/v1/services", token: nil).code == 401)
        #expect(try curl("GET", "/api/v1/services", token: String(repeating: "0", count: 64)).code == 401)
        let created = try curl("POST", "/api/v1/namespaces/default/services", token: token, body: """
            apiVersion: v1
            kind: Service
            metadata: {name: live}
            spec: {ports: [{name: http, port: 80}]}
            """)
        #expect(created.code == 201, "\(created.body)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])
        let clusterIP = try #require((object["spec"] as? [String: Any])?["clusterIP"] as? String)
        // DNS follows once the create has returned: no waiting.
        #expect(digShort(port: dns, "live.default.svc.cluster.local") == "\(clusterIP)\n")
        let fetched = try curl("GET", "/api/v1/namespaces/default/services/live", token: token)
        #expect(fetched.code == 200 && fetched.body.contains("\"clusterIP\":\"\(clusterIP)\""))
        let deleted = try curl("DELETE", "/api/v1/namespaces/default/services/live", token: token)
        #expect(deleted.code == 200)
        let nx = try Tool.runRaw("/usr/bin/env", ["dig", "@127.0.0.1", "-p", String(dns), "+time=2", "+tries=1",
                                                  "live.default.svc.cluster.local"]).stdout
        #expect(nx.contains("status: NXDOMAIN"), "\(nx)")
        #expect(try curl("GET", "/api/v1/namespaces/default/services/live", token: token).code == 404)
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }

    @Test func anAPIAddressOffLoopbackIsRefusedAtStart() throws {
        let result = try Tool.run(["serve", "--api", "0.0.0.0:6443", "--state", "memory", "--dns", "127.0.0.1:0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--api 0.0.0.0:6443: only loopback addresses are served until TLS is configured"), "\(result.stderr)")
    }
}
