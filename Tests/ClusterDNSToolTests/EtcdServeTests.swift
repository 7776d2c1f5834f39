import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `clusterdns serve --etcd`: replicas that share one registry through a real etcd, written
/// through the Kubernetes API by `clusterdns apply`, read with curl and dig; etcd's leader and a
/// replica killed on the way.
@Suite(.serialized) struct EtcdServeTests {
    /// A replica: its process, ports, state directory (certificate, kubeconfig, local copy).
    final class Replica: @unchecked Sendable {
        let state: String
        let arguments: [String]
        /// The running daemon; a restart listens on new ports of the kernel's choice.
        var daemon: Daemon
        var process: ChildProcess { daemon.process }
        var dns: UInt16 { daemon.dns }
        var api: UInt16 { daemon.api }
        var http: UInt16 { daemon.http }

        init(directory: URL, index: Int, etcd: [String], extra: [String] = []) throws {
            state = directory.appendingPathComponent("replica-\(index)").path
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            arguments = ["--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--api", "127.0.0.1:0", "--state", state,
                         "--zones", "none", "--resolv-conf", "none", "--etcd-prefix", "/e2e"]
                + etcd.flatMap { ["--etcd", $0] } + extra
            daemon = try Daemon(arguments)
        }

        var kubeconfig: String { state + "/kubeconfig" }

        func restart() throws {
            daemon.stop(signal: SIGKILL)
            daemon = try Daemon(arguments)
        }

        /// A request to the API with the kubeconfig's token, verified against the kept certificate:
        /// the status code and the body.
        func request(_ method: String, _ path: String, body: String? = nil) throws -> (code: Int, body: String) {
            let text = try String(contentsOfFile: kubeconfig, encoding: .utf8)
            let token = text.split(separator: "\n").first { $0.contains("token:") }?.split(separator: " ").last.map(String.init) ?? ""
            var arguments = ["curl", "-s", "--max-time", "20", "--cacert", state + "/apiserver.crt", "-X", method,
                             "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/yaml"]
            if let body { arguments += ["--data-binary", body] }
            let result = try Tool.runRaw("/usr/bin/env", arguments + ["https://127.0.0.1:\(api)\(path)"])
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        func get(_ path: String) throws -> [String: Any] {
            let body = try request("GET", path).body
            guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
                throw EtcdClusterError("GET \(path): not a JSON object: \(body.prefix(200))")
            }
            return object
        }

        /// The value of a metric on /metrics (the first sample of that name).
        func metric(_ name: String) throws -> Double? {
            let result = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "5", "http://127.0.0.1:\(http)/metrics"])
            return result.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
                .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
        }

        /// Every service as (namespace/name, clusterIP, nodePorts, resourceVersion), sorted.
        func services() throws -> [String] {
            let items = try get("/api/v1/services")["items"] as? [[String: Any]] ?? []
            return items.map { item in
                let meta = item["metadata"] as? [String: Any] ?? [:]
                let spec = item["spec"] as? [String: Any] ?? [:]
                let ports = (spec["ports"] as? [[String: Any]] ?? []).map { "\($0["nodePort"] ?? 0)" }.joined(separator: ",")
                return "\(meta["namespace"] ?? "")/\(meta["name"] ?? "") \(spec["clusterIP"] ?? "") \(ports) \(meta["resourceVersion"] ?? "")"
            }.sorted()
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    /// An etcd of `members` and a new temporary directory named after `name`; the caller
    /// stops the one and removes the other.
    static func scratch(members: Int, _ name: String) throws -> (EtcdCluster, URL) {
        let directory = Scratch.url(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do { return (try EtcdCluster(size: members), directory) } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// A directory of `count` NodePort services named `prefix-N`.
    static func manifests(_ directory: URL, prefix: String, count: Int) throws -> String {
        let path = directory.appendingPathComponent(prefix)
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        let text = (0..<count).map { """
            apiVersion: v1
            kind: Service
            metadata: {name: \(prefix)-\($0), namespace: default}
            spec: {type: NodePort, selector: {app: \(prefix)-\($0)}, ports: [{name: http, port: 80}]}
            """ }.joined(separator: "\n---\n")
        try text.write(to: path.appendingPathComponent("services.yaml"), atomically: true, encoding: .utf8)
        return path.path
    }

    /// `clusterdns apply -f` through a replica's API, started (not waited for).
    static func apply(_ manifests: String, through replica: Replica) throws -> ChildProcess {
        let process = ChildProcess()
        process.executableURL = Tool.executable
        process.arguments = ["apply", "-f", manifests, "--kubeconfig", replica.kubeconfig]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// A JSON request to etcd's gateway (/v3/...), as etcdctl would make it.
    static func etcd(_ url: String, _ path: String, _ body: String) throws -> [String: Any] {
        let result = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "5", "-X", "POST", "-d", body, url + path])
        return (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    /// How many keys etcd holds under `prefix`.
    static func count(_ url: String, prefix: String) throws -> Int {
        var end = Array(prefix.utf8)
        end[end.count - 1] += 1
        let body = #"{"key":"\#(Data(prefix.utf8).base64EncodedString())","range_end":"\#(Data(end).base64EncodedString())","count_only":true}"#
        let answer = try etcd(url, "/v3/kv/range", body)
        return Int(answer["count"] as? String ?? "0") ?? 0
    }

    /// The member that leads, by asking each for its status.
    static func leader(_ cluster: EtcdCluster) throws -> String? {
        for member in cluster.members {
            let status = try etcd(member.clientURL, "/v3/maintenance/status", "{}")
            let id = (status["header"] as? [String: Any])?["member_id"] as? String
            if let id, id == status["leader"] as? String { return member.name }
        }
        return nil
    }

    @Test func replicasServeOneRegistryThroughFailures() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 3, "etcd-serve")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let replicas = try (0..<3).map { try Replica(directory: directory, index: $0, etcd: cluster.clientURLs) }
            defer { for replica in replicas { replica.stop() } }
            for replica in replicas {
                checks.that(eventually(60) { FileManager.default.fileExists(atPath: replica.kubeconfig) && httpsAnswers(port: replica.api) })
            }

            // Three replicas creating 200 services each at the same moment, and the member holding
            // leadership killed while they do: every create goes through (a write that meets the
            // election is tried again).
            let perReplica = 200
            let leader = try checks.require(try Self.leader(cluster))
            let writers = try replicas.enumerated().map { index, replica in
                try Self.apply(try Self.manifests(directory, prefix: "r\(index)", count: perReplica), through: replica)
            }
            // Killed once the writes are under way (some stored, the rest still coming).
            let leaderURL = try checks.require(cluster.members.first { $0.name == leader }?.clientURL)
            checks.that(eventually(60) { ((try? Self.count(leaderURL, prefix: "/e2e/registry/services/default/r")) ?? 0) >= 30 },
                        "the writes did not start")
            cluster.kill(leader)
            for writer in writers { writer.waitUntilExit() }
            checks.that(writers.allSatisfy { $0.terminationStatus == 0 })
            let total = perReplica * replicas.count
            // Every replica serves the same objects at the same versions, with distinct addresses.
            checks.that(eventually(30) { replicas.allSatisfy { ((try? $0.services()) ?? []).count == total } })
            let listed = try replicas[0].services()
            for replica in replicas.dropFirst() { checks.that(try replica.services() == listed) }
            checks.that(Set(listed.map { $0.split(separator: " ")[1] }).count == total, "distinct ClusterIPs")
            checks.that(Set(listed.map { $0.split(separator: " ")[2] }).count == total, "distinct node ports")
            let survivor = cluster.clientURLs[cluster.members.firstIndex { $0.name != leader }!]
            checks.that(try Self.count(survivor, prefix: "/e2e/ranges/serviceips/") == total)
            checks.that(try Self.count(survivor, prefix: "/e2e/ranges/servicenodeports/") == total)
            // And DNS on every replica answers for a service created through any of them.
            for name in ["r0-0", "r1-199", "r2-77"] {
                let address = try checks.require(listed.first { $0.hasPrefix("default/\(name) ") }?.split(separator: " ")[1])
                for replica in replicas {
                    checks.that(digShort(port: replica.dns, "\(name).default.svc.cluster.local") == "\(address)\n")
                }
            }

            // After the election: writes and answers go on.
            let after = try Self.apply(try Self.manifests(directory, prefix: "after", count: 1), through: replicas[0])
            after.waitUntilExit()
            checks.that(after.terminationStatus == 0)
            checks.that(eventually(30) { digShort(port: replicas[2].dns, "after-0.default.svc.cluster.local") != "" })

            // A replica killed (SIGKILL) in the middle of applying: nothing half-written (every
            // service has its claims, every claim its service), and it comes back to the same state.
            let busy = try Self.apply(try Self.manifests(directory, prefix: "busy", count: 100), through: replicas[1])
            checks.that(eventually(60) { ((try? Self.count(survivor, prefix: "/e2e/registry/services/default/busy-")) ?? 0) >= 5 },
                        "the applies did not start")
            kill(replicas[1].process.processIdentifier, SIGKILL)
            busy.waitUntilExit()
            try replicas[1].restart()
            checks.that(eventually(60) { httpsAnswers(port: replicas[1].api) })
            let services = try Self.count(survivor, prefix: "/e2e/registry/services/")
            checks.that(try Self.count(survivor, prefix: "/e2e/ranges/serviceips/") == services)
            checks.that(try Self.count(survivor, prefix: "/e2e/ranges/servicenodeports/") == services)
            checks.that(eventually(30) {
                let states = replicas.map { (try? $0.services()) ?? [] }
                return states[0].count == services && states.allSatisfy { $0 == states[0] }
            })
        }
    }

    /// Quorum lost under a running server: DNS keeps answering what it had, writes through the
    /// API are a 503 Status naming etcd, the metrics say so, and it all resumes by itself.
    @Test func quorumLossIsA503AndResumes() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 3, "etcd-quorum")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let replica = try Replica(directory: directory, index: 0, etcd: cluster.clientURLs)
            defer { replica.stop() }
            checks.that(eventually(60) { FileManager.default.fileExists(atPath: replica.kubeconfig) && httpsAnswers(port: replica.api) })
            func create(_ name: String) throws -> (code: Int, body: String) {
                try replica.request("POST", "/api/v1/namespaces/default/services", body: """
                    apiVersion: v1
                    kind: Service
                    metadata: {name: \(name)}
                    spec: {ports: [{port: 80}]}
                    """)
            }
            checks.that(try create("before").code == 201)
            let address = digShort(port: replica.dns, "before.default.svc.cluster.local")
            checks.that(!address.isEmpty)
            checks.that(try replica.metric("clusterdns_registry_store_available") == 1)
            cluster.kill("m1")
            cluster.kill("m2")
            var refused: (code: Int, body: String) = (0, "")
            checks.that(eventually(30) {
                refused = (try? create("during")) ?? (0, "")
                return refused.code == 503
            })
            checks.that(refused.body.contains("\"reason\":\"ServiceUnavailable\"") && refused.body.contains("etcd"), "\(refused.body)")
            checks.that(digShort(port: replica.dns, "before.default.svc.cluster.local") == address, "DNS serves the last state")
            checks.that(try replica.metric("clusterdns_registry_store_available") == 0)
            checks.that((try replica.metric("clusterdns_registry_store_refused_writes_total") ?? 0) >= 1)
            try cluster.start("m1")
            checks.that(eventually(60) { (try? create("after"))?.code == 201 })
            checks.that(digShort(port: replica.dns, "after.default.svc.cluster.local") != "")
            checks.that(try replica.metric("clusterdns_registry_store_available") == 1)
        }
    }

    /// Each replica's manifests are its own: replicas with different directories serve the
    /// union; a document or file that goes away takes what that replica's files applied, not
    /// what another replica's files or the API wrote; a file that does not parse takes nothing;
    /// a replica that restarts lets go of what its files stopped naming while it was down.
    @Test func manifestsBelongToTheReplicaThatHasThem() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 1, "etcd-manifests")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            func services(_ names: [String]) -> String {
                names.map { """
                    apiVersion: v1
                    kind: Service
                    metadata: {name: \($0), namespace: default}
                    spec: {ports: [{port: 80}]}
                    """ }.joined(separator: "\n---\n")
            }
            let dirA = directory.appendingPathComponent("manifests-a"), dirB = directory.appendingPathComponent("manifests-b")
            for dir in [dirA, dirB] { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
            let fileA = dirA.appendingPathComponent("a.yaml").path, fileB = dirB.appendingPathComponent("b.yaml").path
            try services(["a1", "a2", "shared"]).write(toFile: fileA, atomically: true, encoding: .utf8)
            try services(["b1", "shared"]).write(toFile: fileB, atomically: true, encoding: .utf8)
            let a = try Replica(directory: directory, index: 0, etcd: cluster.clientURLs, extra: ["--manifests", dirA.path, "--node-name", "node-a"])
            let b = try Replica(directory: directory, index: 1, etcd: cluster.clientURLs, extra: ["--manifests", dirB.path, "--node-name", "node-b"])
            defer { a.stop(); b.stop() }
            func names(_ replica: Replica) -> [String] {
                ((try? replica.services()) ?? []).map { String($0.split(separator: " ")[0].dropFirst("default/".count)) }
            }
            for replica in [a, b] {
                checks.that(eventually(60) { FileManager.default.fileExists(atPath: replica.kubeconfig) && httpsAnswers(port: replica.api) })
            }
            checks.that(eventually(30) { names(a) == ["a1", "a2", "b1", "shared"] && names(b) == names(a) }, "the union: \(names(a))")
            let created = try a.request("POST", "/api/v1/namespaces/default/services", body: services(["api"]))
            checks.that(created.code == 201, "\(created.body)")
            // A's file lets go of a2 and shared: a2 goes; shared stays, B's file names it.
            try services(["a1"]).write(toFile: fileA, atomically: true, encoding: .utf8)
            checks.that(eventually(30) { names(b) == ["a1", "api", "b1", "shared"] }, "\(names(b))")
            let shared = try b.get("/api/v1/namespaces/default/services/shared")
            let annotations = (shared["metadata"] as? [String: Any])?["annotations"] as? [String: String] ?? [:]
            checks.that(annotations.filter { $0.key.hasPrefix("manifest.clusterdns.io/") } == ["manifest.clusterdns.io/node-b": fileB],
                    "only B names it now: \(annotations)")
            // A file that does not parse lets go of nothing. (A marker written after it shows that
            // the watcher has been through it: it reads the files that changed in name order.)
            try "apiVersion: v1\nkind: Service\nmetadata: {name: [\n".write(toFile: fileA, atomically: true, encoding: .utf8)
            let marker = dirA.appendingPathComponent("z-marker.yaml").path
            try services(["marker"]).write(toFile: marker, atomically: true, encoding: .utf8)
            checks.that(eventually(30) { names(b).contains("marker") })
            checks.that(names(b) == ["a1", "api", "b1", "marker", "shared"])
            try FileManager.default.removeItem(atPath: marker)
            checks.that(eventually(30) { names(b) == ["a1", "api", "b1", "shared"] }, "\(names(b))")
            // The file gone: what only it named goes.
            try FileManager.default.removeItem(atPath: fileA)
            checks.that(eventually(30) { names(b) == ["api", "b1", "shared"] }, "\(names(b))")
            // B down; its file drops b1 meanwhile; B back: b1 goes, shared (still named) stays.
            b.stop()
            b.process.waitUntilExit()
            try services(["shared"]).write(toFile: fileB, atomically: true, encoding: .utf8)
            try b.restart()
            checks.that(eventually(60) { httpsAnswers(port: b.api) })
            checks.that(eventually(30) { names(a) == ["api", "shared"] }, "\(names(a))")
        }
    }

    /// A replica whose manifests seed an empty store is not ready before they are served: at
    /// the first 200 from `/ready`, a transfer of the zone holds every service they name (the
    /// store was listed empty well before the last of them was written).
    @Test func readyWaitsForTheManifestsThatSeedTheStore() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 1, "etcd-seed")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let count = 400
            let manifests = try Self.manifests(directory, prefix: "seed", count: count)
            let replica = try Replica(directory: directory, index: 0, etcd: cluster.clientURLs,
                                      extra: ["--manifests", manifests, "--allow-transfer", "127.0.0.1/32"])
            defer { replica.stop() }
            checks.that(eventually(60) { httpStatus(port: replica.http, path: "/ready") == 200 })
            let transfer = try Tool.runRaw("/usr/bin/env", ["dig", "+noall", "+answer", "-p", "\(replica.dns)", "@127.0.0.1",
                                                            "cluster.local", "AXFR"]).stdout
            let served = transfer.split(separator: "\n").filter { line in
                let fields = line.split(whereSeparator: \.isWhitespace)
                return fields.count == 5 && fields[0].hasPrefix("seed-") && fields[3] == "A"
            }
            checks.that(served.count == count, "\(served.count) of \(count) served when ready")
            checks.that(try Self.count(cluster.clientURLs[0], prefix: "/e2e/registry/services/default/seed-") == count)
            // Restarted with etcd gone and every service's port changed in its manifests, it
            // serves its local copy and is ready: manifests it cannot write do not hold it back
            // (writing them would be tried for 2 s each, 32 at a time: 26 s).
            cluster.kill(cluster.members[0].name)
            let file = manifests + "/services.yaml"
            try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "port: 80", with: "port: 81")
                .write(toFile: file, atomically: true, encoding: .utf8)
            try replica.restart()
            checks.that(eventually(15) { httpStatus(port: replica.http, path: "/ready") == 200 })
            checks.that(digShort(port: replica.dns, "seed-399.default.svc.cluster.local") != "")
        }
    }

    /// Replicas share versions as well as objects: a watch opened on one replica from the
    /// resourceVersion another replica's write returned sends exactly what came after it, and
    /// an update with that version is a 409 once the object has moved on, on either replica.
    @Test func resourceVersionsMeanTheSameOnEveryReplica() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 1, "etcd-versions")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let a = try Replica(directory: directory, index: 0, etcd: cluster.clientURLs)
            let b = try Replica(directory: directory, index: 1, etcd: cluster.clientURLs)
            defer { a.stop(); b.stop() }
            for replica in [a, b] {
                checks.that(eventually(60) { FileManager.default.fileExists(atPath: replica.kubeconfig) && httpsAnswers(port: replica.api) })
            }
            func create(_ name: String, on replica: Replica) throws -> String {
                let created = try replica.request("POST", "/api/v1/namespaces/default/services", body: """
                    apiVersion: v1
                    kind: Service
                    metadata: {name: \(name)}
                    spec: {ports: [{port: 80}]}
                    """)
                checks.that(created.code == 201, "\(created.body)")
                let object = try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any]
                return try checks.require((object?["metadata"] as? [String: Any])?["resourceVersion"] as? String)
            }
            let first = try create("first", on: a)
            _ = try create("second", on: a)
            let watched = try b.request("GET", "/api/v1/namespaces/default/services?watch=1&resourceVersion=\(first)&timeoutSeconds=2")
            let events = watched.body.split(separator: "\n").compactMap { line -> String? in
                guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let type = event["type"] as? String, type != "BOOKMARK",
                      let name = ((event["object"] as? [String: Any])?["metadata"] as? [String: Any])?["name"] as? String else { return nil }
                return "\(type) \(name)"
            }
            checks.that(events == ["ADDED second"], "the watch on B from A's version: \(events)")
            // A stale update through B, with the version A's create returned.
            let stale = try b.request("PUT", "/api/v1/namespaces/default/services/first", body: """
                apiVersion: v1
                kind: Service
                metadata: {name: first, resourceVersion: "\(first)", labels: {v: "2"}}
                spec: {ports: [{port: 80}]}
                """)
            checks.that(stale.code == 200, "first has not moved on: \(stale.body)")
            let again = try a.request("PUT", "/api/v1/namespaces/default/services/first", body: """
                apiVersion: v1
                kind: Service
                metadata: {name: first, resourceVersion: "\(first)", labels: {v: "3"}}
                spec: {ports: [{port: 80}]}
                """)
            checks.that(again.code == 409, "an update from the old version on A after B's: \(again.code) \(again.body)")
        }
    }

    /// What the etcd flags refuse, before anything is started: each with the flag and why.
    /// Replicas that probe share the pods that name no node, each pod probed by one of them: a
    /// replica stopped hands its pods to the others at once (its lease revoked), one killed when
    /// its lease lapses, and one that returns takes its share back.
    @Test func probesAreSharedAmongReplicas() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 1, "etcd-probes")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let manifests = directory.appendingPathComponent("manifests")
            try FileManager.default.createDirectory(at: manifests, withIntermediateDirectories: true)
            // Eight pods whose probes fail (nothing listens on their addresses; port 9, discard,
            // is not served here): only who probes them matters here. Their owners among node-a
            // and node-b are pinned in ProbeAssignmentTests: four each.
            let port = 9
            try (0..<8).map { """
                apiVersion: v1
                kind: Pod
                metadata: {name: w\($0), namespace: default}
                spec: {containers: [{name: app, readinessProbe: {tcpSocket: {port: \(port)}, periodSeconds: 1}}]}
                status: {podIP: 127.0.1.\($0), phase: Running}
                """ }.joined(separator: "\n---\n").write(to: manifests.appendingPathComponent("pods.yaml"), atomically: true, encoding: .utf8)
            let probing = ["--probes", "--node-lease-duration", "4s"]
            let a = try Replica(directory: directory, index: 0, etcd: cluster.clientURLs,
                                extra: probing + ["--manifests", manifests.path, "--node-name", "node-a"])
            let b = try Replica(directory: directory, index: 1, etcd: cluster.clientURLs, extra: probing + ["--node-name", "node-b"])
            defer { a.stop(); b.stop() }
            func pods(_ replica: Replica) -> Int { ((try? replica.metric("clusterdns_probe_pods")) ?? nil).map { Int($0) } ?? -1 }
            checks.that(eventually(60) { pods(a) == 4 && pods(b) == 4 }, "node-a \(pods(a)), node-b \(pods(b))")
            // Stopped: its lease is revoked on the way out.
            kill(b.process.processIdentifier, SIGTERM)
            b.process.waitUntilExit()
            checks.that(eventually(10) { pods(a) == 8 }, "node-a \(pods(a))")
            try b.restart()
            checks.that(eventually(60) { pods(a) == 4 && pods(b) == 4 }, "node-a \(pods(a)), node-b \(pods(b))")
            // Killed: its pods move when its lease (4 s) lapses.
            b.stop()
            b.process.waitUntilExit()
            checks.that(eventually(20) { pods(a) == 8 }, "node-a \(pods(a))")
        }
    }

    /// A paged list begun on one replica goes on on another (replicas behind one address): both
    /// serve etcd's revision as their version, so the token's version is the other's too while
    /// nothing is written; after a write, the other reads etcd at the token's revision; once
    /// etcd has compacted past it, the token is too old (410).
    @Test func aPagedListContinuesOnAnotherReplica() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 1, "etcd-pages")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let replicas = try (0..<2).map { try Replica(directory: directory, index: $0, etcd: cluster.clientURLs) }
            defer { for replica in replicas { replica.stop() } }
            for replica in replicas {
                checks.that(eventually(60) { FileManager.default.fileExists(atPath: replica.kubeconfig) && httpsAnswers(port: replica.api) })
            }
            for name in ["a", "b", "c"] {
                let body = "apiVersion: v1\nkind: Service\nmetadata: {name: \(name), namespace: default}\nspec: {ports: [{port: 80}]}\n"
                checks.that(try replicas[0].request("POST", "/api/v1/namespaces/default/services", body: body).code == 201)
            }
            func names(_ object: [String: Any]) -> [String] {
                (object["items"] as? [[String: Any]] ?? []).compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
            }
            let first = try replicas[0].get("/api/v1/namespaces/default/services?limit=2")
            let token = try #require((first["metadata"] as? [String: Any])?["continue"] as? String)
            let version = (first["metadata"] as? [String: Any])?["resourceVersion"] as? String
            checks.that(eventually(30) { ((try? replicas[1].get("/api/v1/namespaces/default/services"))?["metadata"] as? [String: Any])?["resourceVersion"] as? String == version })
            let encoded = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token
            let rest = try replicas[1].get("/api/v1/namespaces/default/services?limit=2&continue=\(encoded)")
            checks.that(names(first) + names(rest) == ["a", "b", "c"], "\(names(first)) then \(rest)")
            // After a write (on either replica), the list goes on as of its first page: read back
            // from etcd at that revision, as kube-apiserver does.
            checks.that(try replicas[1].request("DELETE", "/api/v1/namespaces/default/services/a").code == 200)
            let later = try replicas[1].get("/api/v1/namespaces/default/services")
            checks.that(names(later) == ["b", "c"], "\(later)")
            for replica in replicas {
                let page = try replica.get("/api/v1/namespaces/default/services?limit=2&continue=\(encoded)")
                checks.that(names(page) == ["c"] && (page["metadata"] as? [String: Any])?["resourceVersion"] as? String == version, "\(page)")
            }
            let exact = try replicas[1].get("/api/v1/namespaces/default/services?resourceVersion=\(version ?? "")&resourceVersionMatch=Exact")
            checks.that(names(exact) == ["a", "b", "c"], "\(exact)")
            // A version etcd has not reached: a token no server gave, an exact version too new.
            checks.that(try replicas[1].request("GET", "/api/v1/namespaces/default/services?limit=2&continue=999999%2Fdefault%2Fa").code == 400)
            checks.that(try replicas[1].request("GET", "/api/v1/namespaces/default/services?resourceVersion=999999&resourceVersionMatch=Exact").code == 504)
            // A list begun after that, then a write, then etcd compacted past the list's
            // revision: the other replica has nothing to continue it from (410).
            let second = try replicas[0].get("/api/v1/namespaces/default/services?limit=1")
            let secondToken = try #require((second["metadata"] as? [String: Any])?["continue"] as? String)
            let body = "apiVersion: v1\nkind: Service\nmetadata: {name: d, namespace: default}\nspec: {ports: [{port: 80}]}\n"
            checks.that(try replicas[0].request("POST", "/api/v1/namespaces/default/services", body: body).code == 201)
            func listVersion(_ replica: Replica) -> String? {
                ((try? replica.get("/api/v1/namespaces/default/services"))?["metadata"] as? [String: Any])?["resourceVersion"] as? String
            }
            let current = try #require(listVersion(replicas[0]))
            checks.that(eventually(30) { listVersion(replicas[1]) == current })
            let compacted = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "10", "-X", "POST", "-d", #"{"revision":"\#(current)"}"#,
                                                             "\(cluster.clientURLs[0])/v3/kv/compaction"])
            checks.that(compacted.status == 0 && compacted.stdout.contains("header"), "etcd's gateway: \(compacted.stdout)")
            let expired = try replicas[1].request("GET", "/api/v1/namespaces/default/services?limit=2&continue="
                                                  + (secondToken.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? secondToken))
            checks.that(expired.code == 410, "\(expired)")
        }
    }

    /// A service deleted in etcd directly (through etcd's own HTTP gateway, as etcdctl would)
    /// leaves its ClusterIP claimed; the replica's periodic repair releases it, says so in its
    /// log and its metrics, and the address can be given again.
    @Test func aClaimLeftInEtcdIsReleasedByTheRepair() async throws {
        try await offThePool { checks in
            let (cluster, directory) = try Self.scratch(members: 1, "etcd-repair")
            defer { cluster.stop(); try? FileManager.default.removeItem(at: directory) }
            let replica = try Replica(directory: directory, index: 0, etcd: cluster.clientURLs,
                                      extra: ["--etcd-claim-repair-interval", "1s"])
            defer { replica.stop() }
            checks.that(eventually(60) { FileManager.default.fileExists(atPath: replica.kubeconfig) && httpsAnswers(port: replica.api) })
            let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {clusterIP: 10.96.7.7, ports: [{port: 80}]}\n"
            checks.that(try replica.request("POST", "/api/v1/namespaces/default/services", body: service).code == 201)
            // etcd's gateway takes keys in base64.
            let key = Data("/e2e/registry/services/default/web".utf8).base64EncodedString()
            let deleted = try Tool.runRaw("/usr/bin/env", ["curl", "-s", "--max-time", "10", "-X", "POST", "-d", #"{"key":"\#(key)"}"#,
                                                           "\(cluster.clientURLs[0])/v3/kv/deleterange"])
            checks.that(deleted.stdout.contains(#""deleted":"1""#), "etcd's gateway: \(deleted.stdout)")
            func released() -> Double? { (try? replica.metric(#"clusterdns_registry_claim_repairs_total{action="released"}"#)) ?? nil }
            checks.that(eventually(30) { released() == 1 }, "released: \(String(describing: released()))")
            checks.that(replica.daemon.logText.contains("released an allocation nothing holds")
                        && replica.daemon.logText.contains("ClusterIP 10.96.7.7"), replica.daemon.logText)
            checks.that(try replica.request("POST", "/api/v1/namespaces/default/services", body: service.replacingOccurrences(of: "name: web", with: "name: again")).code == 201,
                        "the address is given again")
        }
    }

    @Test(arguments: [
        (["--etcd", "ftp://127.0.0.1:2379"], "expected http://HOST:PORT or https://HOST:PORT"),
        (["--etcd", "http://127.0.0.1:99999"], "the port is not a number from 1 to 65535"),
        (["--etcd", "http://127.0.0.1:2379", "--etcd", "https://127.0.0.1:2380"], "use one scheme for all"),
        (["--etcd", "https://127.0.0.1:2379", "--etcd-certfile", "/x.crt"], "--etcd-certfile and --etcd-keyfile go together"),
        (["--etcd-cafile", "/ca.crt"], "need --etcd"),
        (["--etcd", "http://127.0.0.1:2379", "--etcd-prefix", "clusterdns"], "--etcd-prefix clusterdns: expected a key prefix"),
        (["--etcd", "http://127.0.0.1:2379", "--node-lease-duration", "1s"], "--node-lease-duration 1s"),
        (["--etcd", "http://127.0.0.1:2379", "--etcd-claim-repair-interval", "often"], "--etcd-claim-repair-interval often: expected a duration"),
    ])
    func badEtcdFlagsAreRefused(_ flags: [String], _ message: String) throws {
        let result = try Tool.run(["serve", "--dns", "127.0.0.1:0", "--http", "none", "--zones", "none", "--resolv-conf", "none"] + flags)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }
}
