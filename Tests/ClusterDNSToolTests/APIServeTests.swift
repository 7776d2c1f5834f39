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
        #expect(text.contains("server: https://127.0.0.1:\(api)"))
        func field(_ name: String) -> String? {
            text.split(separator: "\n").first { $0.contains("\(name):") }?.split(separator: " ").last.map(String.init)
        }
        let token = try #require(field("token"))
        #expect(token.count == 64)
        // The self-signed certificate the kubeconfig trusts: curl verifies the server with it.
        let authorityText = try #require(field("certificate-authority-data"))
        let authority = try #require(Data(base64Encoded: authorityText))
        let caFile = directory.appendingPathComponent("ca.crt").path
        try authority.write(to: URL(fileURLWithPath: caFile))

        func curl(_ method: String, _ path: String, token: String?, body: String? = nil) throws -> (code: Int, body: String) {
            var arguments = ["curl", "-s", "--max-time", "5", "--cacert", caFile, "-X", method, "-w", "\n%{http_code}",
                             "-H", "Content-Type: application/yaml"]
            if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
            if let body { arguments += ["--data-binary", body] }
            let result = try Tool.runRaw("/usr/bin/env", arguments + ["https://127.0.0.1:\(api)\(path)"])
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        // Plain HTTP is not spoken: nothing answers it with a page.
        let plain = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                                                     "http://127.0.0.1:\(api)/api/v1/services"])
        #expect(plain.stdout == "000")
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

    /// kubectl itself, as an operator runs it: the kubeconfig as written, nothing else.
    @Test func kubectlCreatesListsAndDeletes() throws {
        let kubectl = try Tool.runRaw("/usr/bin/env", ["sh", "-c", "command -v kubectl"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!kubectl.isEmpty, "kubectl is not installed (Debian: kubernetes-client; .ci/run installs it)")
        guard !kubectl.isEmpty else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kubectl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let dns = freePort()
        let api = freePort()
        let state = directory.appendingPathComponent("state").path
        let process = Process()
        process.executableURL = Tool.executable
        process.arguments = ["serve", "--dns", "127.0.0.1:\(dns)", "--http", "none", "--api", "127.0.0.1:\(api)",
                             "--state", state, "--zones", "none", "--resolv-conf", "none", "--log-level", "error"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let kubeconfig = state + "/kubeconfig"
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) })
        #expect(FileManager.default.fileExists(atPath: state + "/apiserver.crt"), "the certificate is kept for the next start")
        let home = directory.path  // kubectl's discovery cache goes here, not into the user's.
        func run(_ arguments: [String]) throws -> Tool.Result {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: kubectl)
            process.arguments = ["--kubeconfig", kubeconfig, "--request-timeout", "10s"] + arguments
            process.environment = ["HOME": home, "PATH": "/usr/bin:/bin"]
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Tool.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                               stderr: String(decoding: stderr, as: UTF8.self))
        }
        let manifest = directory.appendingPathComponent("kc.yaml").path
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: kc, namespace: default, labels: {app: kc}}
            spec: {ports: [{name: http, port: 80}]}
            """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let created = try run(["create", "--validate=false", "-f", manifest])
        #expect(created.status == 0 && created.stdout == "service/kc created\n", "\(created.stdout) \(created.stderr)")
        let ip = try run(["get", "service", "kc", "-o", "jsonpath={.spec.clusterIP}"])
        #expect(ip.status == 0 && !ip.stdout.isEmpty, "\(ip.stderr)")
        #expect(digShort(port: dns, "kc.default.svc.cluster.local") == ip.stdout + "\n")
        let selected = try run(["get", "svc", "-l", "app=kc", "-o", "name"])
        #expect(selected.stdout == "service/kc\n", "\(selected.stderr)")
        let namespaces = try run(["get", "namespaces", "-o", "name"])
        #expect(namespaces.stdout.contains("namespace/default"), "\(namespaces.stderr)")
        let duplicate = try run(["create", "--validate=false", "-f", manifest])
        #expect(duplicate.status != 0 && duplicate.stderr.contains("services \"kc\" already exists"), "\(duplicate.stderr)")
        let deleted = try run(["delete", "service", "kc", "--wait=false"])
        #expect(deleted.status == 0 && deleted.stdout == "service \"kc\" deleted\n", "\(deleted.stdout) \(deleted.stderr)")
        #expect(digShort(port: dns, "kc.default.svc.cluster.local") == "")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }

    @Test func aCertificateWithoutItsKeyIsRefusedAtStart() throws {
        let result = try Tool.run(["serve", "--api", "127.0.0.1:0", "--api-tls-cert", "/nonexistent.crt", "--state", "memory",
                                   "--dns", "127.0.0.1:0"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--api-tls-cert and --api-tls-key go together"), "\(result.stderr)")
    }
}
