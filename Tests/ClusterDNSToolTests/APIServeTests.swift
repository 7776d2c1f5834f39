import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `clusterdns serve --api`: the registry changed live over HTTP by a real client (curl), DNS
/// following; the kubeconfig written with its token, mode 0600; nothing served without it.
@Suite(.serialized) struct APIServeTests {
    @Test func servicesCreatedAndDeletedThroughTheAPIAreAnsweredAndGone() throws {
        let directory = Scratch.url("api")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let kubeconfig = directory.appendingPathComponent("kubeconfig").path
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0",
                                 "--api-kubeconfig", kubeconfig, "--state", "memory", "--zones", "none", "--resolv-conf", "none"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, api) = (daemon.process, daemon.dns, daemon.api)
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
        let directory = Scratch.url("kubectl")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let state = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0",
                                 "--state", state, "--zones", "none", "--resolv-conf", "none"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns) = (daemon.process, daemon.dns)
        let kubeconfig = state + "/kubeconfig"
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) })
        #expect(FileManager.default.fileExists(atPath: state + "/apiserver.crt"), "the certificate is kept for the next start")
        let home = directory.path  // kubectl's discovery cache goes here, not into the user's.
        func run(_ arguments: [String]) throws -> Tool.Result {
            try Tool.kubectl(kubectl, kubeconfig: kubeconfig, home: home, arguments)
        }
        let manifest = directory.appendingPathComponent("kc.yaml").path
        func write(_ ports: String, to path: String = manifest) throws {
            try """
                apiVersion: v1
                kind: Service
                metadata: {name: kc, namespace: default, labels: {app: kc}}
                spec: {selector: {app: kc}, ports: [\(ports)]}
                """.write(toFile: path, atomically: true, encoding: .utf8)
        }
        // A watch from before the first change, as an operator leaves one running.
        let watch = ChildProcess()
        watch.executableURL = URL(fileURLWithPath: kubectl)
        watch.arguments = ["--kubeconfig", kubeconfig, "get", "services", "-w", "--request-timeout", "0", "-o", "name"]
        watch.environment = ["HOME": home, "PATH": "/usr/bin:/bin"]
        let watched = Pipe()
        watch.standardOutput = watched
        watch.standardError = FileHandle.nullDevice
        try watch.run()
        defer { if watch.isRunning { watch.terminate() } }

        // kubectl's defaults: validation against /openapi/v2, three-way strategic merge patches.
        try write("{name: http, port: 80}")
        let created = try run(["apply", "-f", manifest])
        #expect(created.status == 0 && created.stdout == "service/kc created\n", "\(created.stdout) \(created.stderr)")
        let ip = try run(["get", "service", "kc", "-o", "jsonpath={.spec.clusterIP}"])
        #expect(ip.status == 0 && !ip.stdout.isEmpty, "\(ip.stderr)")
        #expect(digShort(port: dns, "kc.default.svc.cluster.local") == ip.stdout + "\n")
        #expect(try run(["apply", "-f", manifest]).stdout == "service/kc unchanged\n")
        try write("{name: http, port: 80}, {name: alt, port: 8080}")
        #expect(try run(["apply", "-f", manifest]).stdout == "service/kc configured\n")
        try write("{name: alt, port: 8080}")
        #expect(try run(["apply", "-f", manifest]).stdout == "service/kc configured\n")
        let ports = try run(["get", "service", "kc", "-o", "jsonpath={.spec.ports[*].port} {.spec.clusterIP}"])
        #expect(ports.stdout == "8080 \(ip.stdout)", "the port removed, the one kept, the address kept")
        #expect(digShort(port: dns, "_alt._tcp.kc.default.svc.cluster.local", type: "SRV").hasSuffix(" 8080 kc.default.svc.cluster.local.\n"))
        // An unknown field is refused before anything is sent, as against a cluster.
        let invalid = directory.appendingPathComponent("invalid.yaml").path
        try write("{name: alt, port: 8080, targetPrt: 1}", to: invalid)
        let refused = try run(["apply", "-f", invalid])
        #expect(refused.status != 0 && refused.stderr.contains(#"unknown field "targetPrt" in io.k8s.api.core.v1.ServicePort"#), "\(refused.stderr)")
        // A value the server refuses: its message and field, as kube-apiserver words them.
        try write("{name: alt, port: 70000}", to: invalid)
        let rejected = try run(["apply", "-f", invalid])
        #expect(rejected.stderr.contains(#"The Service "kc" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"#), "\(rejected.stderr)")
        // Tables: the columns kubectl prints against a cluster.
        let table = try run(["get", "services", "kc"])
        #expect(table.stdout.hasPrefix("NAME   TYPE        CLUSTER-IP"), "\(table.stdout)")
        #expect(table.stdout.contains("kc     ClusterIP   \(ip.stdout)"), "\(table.stdout)")
        let yaml = try run(["get", "service", "kc", "-o", "yaml"])
        #expect(yaml.stdout.contains("clusterIP: \(ip.stdout)\n") && yaml.stdout.contains("kind: Service\n"), "\(yaml.stdout)")
        let json = try run(["get", "services", "-o", "json"])
        let list = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((list?["items"] as? [[String: Any]])?.contains { ($0["metadata"] as? [String: Any])?["name"] as? String == "kc" } == true)
        let fielded = try run(["get", "svc", "--field-selector", "metadata.name=kc,spec.type=ClusterIP", "-o", "name"])
        #expect(fielded.stdout == "service/kc\n", "\(fielded.stderr)")
        let selected = try run(["get", "svc", "-l", "app=kc", "-o", "name"])
        #expect(selected.stdout == "service/kc\n", "\(selected.stderr)")
        let labelled = try run(["label", "service", "kc", "tier=front"])
        #expect(labelled.stdout == "service/kc labeled\n", "\(labelled.stderr)")
        #expect(try run(["get", "svc", "-l", "tier=front", "-o", "name"]).stdout == "service/kc\n")
        // A pod as written for a cluster: the fields the registry has no use for are kept, so
        // applying it again finds nothing to change.
        let podManifest = directory.appendingPathComponent("pod.yaml").path
        try """
            apiVersion: v1
            kind: Pod
            metadata: {name: kc-0, namespace: default, labels: {app: kc}}
            spec:
              containers:
              - name: app
                image: nginx:1.27
                env: [{name: MODE, value: prod}]
                resources: {requests: {cpu: 100m, memory: 64Mi}}
                readinessProbe: {httpGet: {path: /ready, port: 80}, periodSeconds: 5}
              volumes: [{name: cache, emptyDir: {}}]
            """.write(toFile: podManifest, atomically: true, encoding: .utf8)
        #expect(try run(["apply", "-f", podManifest]).stdout == "pod/kc-0 created\n")
        let reapplied = try run(["apply", "-f", podManifest])
        #expect(reapplied.stdout == "pod/kc-0 unchanged\n", "\(reapplied.stdout) \(reapplied.stderr)")
        #expect(try run(["get", "pod", "kc-0", "-o", "jsonpath={.spec.containers[0].resources.requests.cpu}"]).stdout == "100m")
        #expect(try run(["delete", "-f", podManifest]).status == 0)
        // Server-side apply: what the manifest leaves out the next time goes.
        let ssa = directory.appendingPathComponent("ssa.yaml").path
        func writeSSA(_ ports: String) throws {
            try """
                apiVersion: v1
                kind: Service
                metadata: {name: ssa, namespace: default}
                spec: {ports: [\(ports)]}
                """.write(toFile: ssa, atomically: true, encoding: .utf8)
        }
        try writeSSA("{name: a, port: 80}, {name: b, port: 81}")
        let applied = try run(["apply", "--server-side", "-f", ssa])
        #expect(applied.status == 0 && applied.stdout == "service/ssa serverside-applied\n", "\(applied.stdout) \(applied.stderr)")
        try writeSSA("{name: b, port: 81}")
        #expect(try run(["apply", "--server-side", "-f", ssa]).status == 0)
        #expect(try run(["get", "service", "ssa", "-o", "jsonpath={.spec.ports[*].port}"]).stdout == "81")
        #expect(try run(["delete", "-f", ssa]).status == 0)
        let namespaces = try run(["get", "namespaces", "-o", "name"])
        #expect(namespaces.stdout.contains("namespace/default"), "\(namespaces.stderr)")
        let duplicate = try run(["create", "-f", manifest])
        #expect(duplicate.status != 0 && duplicate.stderr.contains("services \"kc\" already exists"), "\(duplicate.stderr)")
        // delete waits (through a watch) until the object is gone; then DNS has forgotten it.
        let deleted = try run(["delete", "-f", manifest])
        #expect(deleted.status == 0 && deleted.stdout == "service \"kc\" deleted\n", "\(deleted.stdout) \(deleted.stderr)")
        #expect(digShort(port: dns, "kc.default.svc.cluster.local") == "")
        // The watch saw every change of the service, as they happened.
        watch.terminate()
        watch.waitUntilExit()
        let lines = String(decoding: watched.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").filter { $0 == "service/kc" }
        #expect(lines.count >= 5, "created, two changes, labelled, deleted: \(lines)")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }

    /// The official Python client (PyPI `kubernetes`), with tokens from a token file: an admin
    /// and a viewer. The script's cases are listed here, so one that stops printing fails.
    @Test func thePythonClientManagesALiveServerAcrossARestart() throws {
        let probe = try Tool.runRaw("/usr/bin/env", ["python3", "-c", "import kubernetes; print('ok')"])
        #expect(probe.stdout == "ok\n", "the Python client is not installed (pip install kubernetes; .ci/run installs it)")
        guard probe.stdout == "ok\n" else { return }
        let directory = Scratch.url("python")
        let state = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let admin = String(repeating: "a", count: 40)
        let viewer = String(repeating: "v", count: 40)
        let tokens = directory.appendingPathComponent("tokens.csv").path
        try "\(admin),alice,1,\"system:masters\"\n\(viewer),victor,2,\"clusterdns:viewers,dev\"\n"
            .write(toFile: tokens, atomically: true, encoding: .utf8)
        func serve() throws -> Daemon {
            let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0", "--api-token-file", tokens,
                                     "--state", state, "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
            #expect(eventually(20) { httpsAnswers(port: daemon.api) }, "the API listens")
            return daemon
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Clients/python_client.py").path
        let versionFile = directory.appendingPathComponent("version").path
        var daemon = try serve()
        defer { daemon.stop(signal: SIGKILL) }
        func run(_ phase: String) throws -> [String] {
            let result = try Tool.runRaw("/usr/bin/env", ["python3", script, phase, "https://127.0.0.1:\(daemon.api)", state + "/apiserver.crt",
                                                          admin, viewer, String(daemon.dns), versionFile], stderr: true)
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            return result.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try run("live") == ["discovery", "create", "dry-run", "selectors", "pages", "patch", "conflict", "watch-resumed",
                                    "endpoints", "viewer", "unauthorized", "invalid", "deletecollection", "live"].map { "ok " + $0 })
        // kubectl with the same tokens: what it prints for 403 and 401.
        let kubectl = try Tool.runRaw("/usr/bin/env", ["sh", "-c", "command -v kubectl"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!kubectl.isEmpty, "kubectl is not installed")
        func kubectlAs(_ token: String, _ arguments: [String]) throws -> Tool.Result {
            try Tool.runRaw(kubectl, ["--server", "https://127.0.0.1:\(daemon.api)", "--certificate-authority", state + "/apiserver.crt",
                                      "--token", token, "--cache-dir", directory.appendingPathComponent("cache").path,
                                      "--request-timeout", "10s"] + arguments, stderr: true)
        }
        if !kubectl.isEmpty {
            let listed = try kubectlAs(viewer, ["get", "services", "-o", "name"])
            #expect(listed.status == 0 && listed.stdout.contains("service/py\n"), "\(listed.stderr)")
            let refused = try kubectlAs(viewer, ["delete", "service", "py"])
            #expect(refused.status != 0 && refused.stderr.contains("Error from server (Forbidden)"), "\(refused.stderr)")
            #expect(refused.stderr.contains(#"User "victor" cannot delete resource "services""#), "\(refused.stderr)")
            let stranger = try kubectlAs(String(repeating: "0", count: 40), ["get", "services"])
            #expect(stranger.status != 0 && stranger.stderr.contains("(Unauthorized)"), "\(stranger.stderr)")
        }
        kill(daemon.pid, SIGTERM)
        #expect(eventually(10) { !daemon.isRunning })
        daemon = try serve()
        #expect(try run("restarted") == ["kept", "expired", "relisted"].map { "ok " + $0 })
        kill(daemon.pid, SIGTERM)
        #expect(eventually(10) { !daemon.isRunning })
    }

    /// `clusterdns apply|get|delete --kubeconfig`: the same lines as offline, against a running
    /// server; the server's Table printed as kubectl prints it; the same List as `--state` reads
    /// once the server has stopped.
    @Test func theCommandsTalkToARunningServer() throws {
        let directory = Scratch.url("remote")
        let state = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0", "--state", state,
                                 "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, api) = (daemon.process, daemon.dns, daemon.api)
        let kubeconfig = state + "/kubeconfig"
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) && httpsAnswers(port: api) })
        let manifest = directory.appendingPathComponent("shop.yaml").path
        func write(port: Int) throws {
            try """
                apiVersion: v1
                kind: Namespace
                metadata: {name: shop}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: shop}
                spec: {type: NodePort, selector: {app: web}, ports: [{name: http, port: \(port)}]}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: web-0, namespace: shop, labels: {app: web}}
                spec: {containers: [{name: app, image: app}]}
                status: {podIP: 10.244.0.5, conditions: [{type: Ready, status: "True"}]}
                ---
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web, namespace: shop}
                """.write(toFile: manifest, atomically: true, encoding: .utf8)
        }
        let remote = ["--kubeconfig", kubeconfig]
        try write(port: 80)
        let created = try Tool.run(["apply", "-f", manifest] + remote)
        #expect(created.status == 0 && created.stdout == "namespace/shop created\nservice/web created\npod/web-0 created\n", "\(created.stderr)")
        #expect(created.stderr.contains(#"no matches for kind "Deployment" in version "apps/v1": skipped"#))
        #expect(try Tool.run(["apply", "-f", manifest] + remote).stdout == "namespace/shop unchanged\nservice/web unchanged\npod/web-0 unchanged\n")
        try write(port: 8080)
        #expect(try Tool.run(["apply", "-f", manifest] + remote).stdout == "namespace/shop unchanged\nservice/web configured\npod/web-0 unchanged\n")
        #expect(digShort(port: dns, "_http._tcp.web.shop.svc.cluster.local", type: "SRV") == "0 100 8080 web.shop.svc.cluster.local.\n")

        let table = try Tool.run(["get", "services", "-n", "shop"] + remote)
        let lines = table.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.first == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], "\(table.stdout)")
        let row = try #require(lines.count == 2 ? lines[1] : nil, "\(table.stdout)")
        #expect(row.prefix(3) == ["web", "NodePort"] + [row[2]] && row[3] == "<none>" && row[4].hasPrefix("8080:3"), "\(row)")
        #expect(digShort(port: dns, "web.shop.svc.cluster.local") == row[2] + "\n")
        let endpoints = try Tool.run(["get", "ep", "-o", "wide"] + remote)
        let endpointRows = endpoints.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(endpointRows.first == ["NAMESPACE", "NAME", "ENDPOINTS", "AGE"], "\(endpoints.stdout)")
        #expect(endpointRows.contains { $0.prefix(3) == ["shop", "web", "10.244.0.5:8080"] }, "\(endpoints.stdout)")
        let listed = try Tool.run(["get", "svc", "-n", "shop", "-o", "json"] + remote).stdout

        // Refusals as kubectl prints them, exit status 1.
        let stranger = try Tool.run(["get", "svc", "--server", "https://127.0.0.1:\(api)", "--token", "nope",
                                     "--certificate-authority", state + "/apiserver.crt"])
        #expect(stranger.status == 1 && stranger.stderr == "Error from server (Unauthorized): Unauthorized\n", "\(stranger.stderr)")
        let untrusted = try Tool.run(["get", "svc", "--server", "https://127.0.0.1:\(api)", "--token", "nope"])
        #expect(untrusted.status != 0 && untrusted.stderr.contains("the server's certificate is not trusted"), "\(untrusted.stderr)")
        let both = try Tool.run(["get", "svc", "--state", state] + remote)
        #expect(both.status != 0 && both.stderr.contains("give one or the other"), "\(both.stderr)")

        let deleted = try Tool.run(["delete", "-f", manifest] + remote)
        #expect(deleted.stdout == "pod \"web-0\" deleted\nservice \"web\" deleted\nnamespace \"shop\" deleted\n", "\(deleted.stderr)")
        #expect(digShort(port: dns, "web.shop.svc.cluster.local") == "")
        let again = try Tool.run(["delete", "-f", manifest] + remote)
        #expect(again.status == 1 && again.stderr.contains(#"Error from server (NotFound): services "web" not found"#), "\(again.stderr)")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
        let unreachable = try Tool.run(["get", "svc"] + remote)
        #expect(unreachable.status != 0 && unreachable.stderr.contains("cannot reach https://127.0.0.1:\(api): connection refused"),
                "\(unreachable.stderr)")

        // The server's list and the state directory's, read with the server stopped, are one.
        try write(port: 8080)
        let offline = try Tool.run(["apply", "-f", manifest, "--state", state])
        #expect(offline.stdout == "namespace/shop created\nservice/web created\npod/web-0 created\n", "\(offline.stderr)")
        let stored = try Tool.run(["get", "svc", "-n", "shop", "-o", "json", "--state", state]).stdout
        func shape(_ text: String) throws -> [String] {
            let list = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let items = try #require(list["items"] as? [[String: Any]])
            return items.map { item in
                let spec = item["spec"] as? [String: Any] ?? [:]
                return "\(item["kind"] ?? "") \((item["metadata"] as? [String: Any])?["name"] ?? "") \(spec["type"] ?? "") \((spec["ports"] as? [[String: Any]])?.first?["port"] ?? "")"
            }
        }
        #expect(try shape(listed) == ["Service web NodePort 8080"])
        #expect(try shape(stored) == shape(listed))
    }

    /// `--api-client-ca-file`: a client certificate from that authority authenticates its CN,
    /// with its O as groups (curl, kubectl and `clusterdns get` present one); one from another
    /// authority fails the handshake; tokens keep working beside them.
    @Test func clientCertificatesAuthenticate() throws {
        let directory = Scratch.url("certs")
        let state = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let d = directory.path
        // Two authorities; alice (an admin), victor (a viewer) from the first, mallory from the other.
        let script = """
            set -e
            cd \(d)
            printf 'extendedKeyUsage=clientAuth\\n' > client.ext
            for ca in ca other; do
              openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=$ca" -keyout $ca.key -out $ca.crt 2>/dev/null
            done
            issue() { # name subject authority
              openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" -keyout $1.key -out $1.csr 2>/dev/null
              openssl x509 -req -in $1.csr -CA $3.crt -CAkey $3.key -CAcreateserial -days 1 -extfile client.ext -out $1.crt 2>/dev/null
            }
            issue alice "/O=system:masters/CN=alice" ca
            issue victor "/O=clusterdns:viewers/O=dev/CN=victor" ca
            issue mallory "/O=system:masters/CN=mallory" other
            """
        let made = try Tool.runRaw("/bin/sh", ["-c", script], stderr: true)
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0", "--state", state,
                                 "--api-client-ca-file", d + "/ca.crt", "--zones", "none", "--resolv-conf", "none",
                                 "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, api) = (daemon.process, daemon.dns, daemon.api)
        #expect(eventually(20) { FileManager.default.fileExists(atPath: state + "/kubeconfig") && httpsAnswers(port: api) })
        func curl(_ who: String?, _ method: String, _ path: String, body: String? = nil) throws -> (code: String, body: String) {
            var arguments = ["curl", "-s", "--max-time", "5", "--cacert", state + "/apiserver.crt", "-X", method, "-w", "\n%{http_code}"]
            if let who { arguments += ["--cert", "\(d)/\(who).crt", "--key", "\(d)/\(who).key"] }
            if let body { arguments += ["-H", "Content-Type: application/yaml", "--data-binary", body] }
            let result = try Tool.runRaw("/usr/bin/env", arguments + ["https://127.0.0.1:\(api)\(path)"])
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }
        let service = "apiVersion: v1\nkind: Service\nmetadata: {name: certified}\nspec: {ports: [{port: 80}]}\n"
        #expect(try curl("alice", "POST", "/api/v1/namespaces/default/services", body: service).code == "201")
        #expect(digShort(port: dns, "certified.default.svc.cluster.local").isEmpty == false)
        #expect(try curl("victor", "GET", "/api/v1/namespaces/default/services/certified").code == "200")
        let refused = try curl("victor", "DELETE", "/api/v1/namespaces/default/services/certified")
        #expect(refused.code == "403" && refused.body.contains(#"User \"victor\" cannot delete resource \"services\""#), "\(refused.body)")
        #expect(try curl("mallory", "GET", "/api/v1/services").code == "000", "another authority's certificate fails the handshake")
        #expect(try curl(nil, "GET", "/api/v1/services").code == "401")

        // kubectl and `clusterdns get` with a certificate and no token.
        let kubeconfig = d + "/alice.kubeconfig"
        try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {server: "https://127.0.0.1:\(api)", certificate-authority: state/apiserver.crt}
            users:
            - name: alice
              user: {client-certificate: alice.crt, client-key: alice.key}
            contexts:
            - name: c
              context: {cluster: c, user: alice}
            current-context: c
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let listed = try Tool.run(["get", "svc", "-n", "default", "-o", "json", "--kubeconfig", kubeconfig])
        #expect(listed.status == 0 && listed.stdout.contains(#""name":"certified""#), "\(listed.stderr)")
        let kubectl = try Tool.runRaw("/usr/bin/env", ["sh", "-c", "command -v kubectl"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if !kubectl.isEmpty {
            let result = try Tool.runRaw(kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", d + "/cache", "delete", "service", "certified"],
                                         stderr: true)
            #expect(result.status == 0 && result.stdout == "service \"certified\" deleted\n", "\(result.stderr)")
        }
        // The generated token still works beside certificates.
        let token = try Tool.run(["get", "ns", "--kubeconfig", state + "/kubeconfig"])
        #expect(token.status == 0 && token.stdout.contains("default"), "\(token.stderr)")
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }

    /// A watch whose client has gone ends at once (not at its next event or its timeout, half an
    /// hour away), and /metrics tells the open watches and the requests by method and code.
    @Test func anAbandonedWatchEndsAndTheAPIIsInTheMetrics() throws {
        let directory = Scratch.url("watch")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let kubeconfig = directory.appendingPathComponent("kubeconfig").path
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--api", "127.0.0.1:0",
                                 "--api-kubeconfig", kubeconfig, "--state", "memory", "--zones", "none", "--resolv-conf", "none",
                                 "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, http, api) = (daemon.process, daemon.http, daemon.api)
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) && httpsAnswers(port: api) })
        let token = try #require(try String(contentsOfFile: kubeconfig, encoding: .utf8).split(separator: "\n")
            .first { $0.contains("token:") }?.split(separator: " ").last.map(String.init))
        func metric(_ line: String) -> String? {
            let text = (try? Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "2", "http://127.0.0.1:\(http)/metrics"]).stdout) ?? ""
            return text.split(separator: "\n").first { $0.hasPrefix(line + " ") }.map { String($0.dropFirst(line.count + 1)) }
        }
        let watcher = ChildProcess()
        watcher.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        watcher.arguments = ["curl", "-sk", "-N", "-H", "Authorization: Bearer \(token)",
                             "https://127.0.0.1:\(api)/api/v1/namespaces/quiet/services?watch=1"]
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try watcher.run()
        defer { if watcher.isRunning { watcher.terminate() } }
        #expect(eventually(10) { metric("clusterdns_api_watches").flatMap(Double.init) == 1 }, "\(metric("clusterdns_api_watches") ?? "none")")
        kill(watcher.processIdentifier, SIGKILL)
        watcher.waitUntilExit()
        #expect(eventually(5) { metric("clusterdns_api_watches").flatMap(Double.init) == 0 }, "the watch outlived its client")
        #expect(metric(#"clusterdns_api_requests_total{method="GET",code="200"}"#).flatMap(Double.init) ?? 0 >= 1)
        kill(process.processIdentifier, SIGTERM)
        #expect(eventually(10) { !process.isRunning })
    }

    /// A manifest file and the API naming the same object: the API's change stands until the
    /// file is applied again (SIGHUP here), then the file's version is back; what only the API
    /// wrote is left alone.
    @Test func aManifestFileWinsWhenItIsAppliedAgain() throws {
        let directory = Scratch.url("wins")
        let state = directory.appendingPathComponent("state").path
        let manifests = directory.appendingPathComponent("manifests")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: manifests, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func service(_ name: String, port: Int) -> String {
            "apiVersion: v1\nkind: Service\nmetadata: {name: \(name), namespace: default}\nspec: {ports: [{name: http, port: \(port)}]}\n"
        }
        try service("filed", port: 80).write(to: manifests.appendingPathComponent("filed.yaml"), atomically: true, encoding: .utf8)
        let daemon = try Daemon(["--dns", "127.0.0.1:0", "--http", "none", "--api", "127.0.0.1:0", "--state", state,
                                 "--manifests", manifests.path, "--zones", "none", "--resolv-conf", "none", "--lameduck", "0s"])
        defer { daemon.stop(signal: SIGKILL) }
        let (process, dns, api) = (daemon.process, daemon.dns, daemon.api)
        let kubeconfig = state + "/kubeconfig"
        #expect(eventually(20) { FileManager.default.fileExists(atPath: kubeconfig) && httpsAnswers(port: api) })
        func srv(_ name: String) -> String { digShort(port: dns, "_http._tcp.\(name).default.svc.cluster.local", type: "SRV") }
        #expect(srv("filed").contains(" 80 "))
        let changes = directory.appendingPathComponent("changes.yaml").path
        try (service("filed", port: 81) + "---\n" + service("apionly", port: 90)).write(toFile: changes, atomically: true, encoding: .utf8)
        let applied = try Tool.run(["apply", "-f", changes, "--kubeconfig", kubeconfig])
        #expect(applied.stdout == "service/filed configured\nservice/apionly created\n", "\(applied.stderr)")
        #expect(srv("filed").contains(" 81 "), "the API's change stands")
        kill(process.processIdentifier, SIGHUP)
        #expect(eventually(10) { srv("filed").contains(" 80 ") }, "the file applied again wins")
        #expect(srv("apionly").contains(" 90 "), "what only the API wrote is left alone")
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

/// Whether something answers TLS on 127.0.0.1:`port` (any HTTP status, certificate unchecked).
func httpsAnswers(port: UInt16) -> Bool {
    let result = try? Tool.runRaw("/usr/bin/env", ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                                                   "https://127.0.0.1:\(port)/healthz"])
    return result.map { $0.stdout != "000" && !$0.stdout.isEmpty } ?? false
}
