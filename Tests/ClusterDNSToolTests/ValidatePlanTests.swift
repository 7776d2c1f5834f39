import Foundation
import Testing
import TestSupport

@Suite struct ValidateCommandTests {
    func write(_ files: [String: String]) throws -> String {
        let directory = Scratch.url("clusterdns")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return directory.path
    }

    @Test func reportsEveryErrorWithFileAndDocument() throws {
        let dir = try write([
            "a.yaml": """
                apiVersion: v1
                kind: Service
                metadata: {name: web}
                spec:
                  ports: [{port: 70000}]
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: ok, namespace: shop}
                spec:
                  clusterIP: 10.96.0.10
                  ports: [{port: 80}]
                """,
            "b.json": #"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dup"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}"#,
            "ignored.txt": "not a manifest",
        ])
        let result = try Tool.run(["validate", "-f", dir])
        #expect(result.status == 1)
        #expect(result.stderr == """
            error: \(dir)/a.yaml:5:18: document 1: The Service "web" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive
            error: \(dir)/b.json:1:1: document 1: The Service "dup" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.10"]: failed to allocate IP 10.96.0.10: provided IP is already allocated

            """)
        #expect(result.stdout == "service/ok valid (namespace shop)\n1 valid, 2 invalid\n")
    }

    @Test func cleanManifestsExitZero() throws {
        let dir = try write(["ok.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"])
        let result = try Tool.run(["validate", "-f", "\(dir)/ok.yaml"])
        #expect(result.status == 0)
        #expect(result.stdout == "namespace/shop valid\n1 valid, 0 invalid\n")
    }

    /// A manifest written for a real cluster holds kinds this registry does not serve: each is
    /// skipped with one notice, and what is served still validates and applies.
    @Test func unservedKindsAreSkippedWithANotice() throws {
        let dir = try write(["app.yaml": """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec: {replicas: 2}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec: {ports: [{name: http, port: 80}]}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings}
            data: {a: b}
            """])
        let validated = try Tool.run(["validate", "-f", dir])
        #expect(validated.status == 0)
        #expect(validated.stdout == "service/web valid (namespace default)\n1 valid, 0 invalid, 2 skipped\n")
        #expect(validated.stderr == """
            notice: \(dir)/app.yaml:1:1: document 1: no matches for kind "Deployment" in version "apps/v1": skipped (not served by this registry)
            notice: \(dir)/app.yaml:11:1: document 3: no matches for kind "ConfigMap" in version "v1": skipped (not served by this registry)

            """)
        let applied = try Tool.run(["apply", "-f", dir, "--state", dir + "/state"])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout == "service/web created\n")
        #expect(applied.stderr.split(separator: "\n").count == 2)
        let deleted = try Tool.run(["delete", "-f", dir + "/app.yaml", "--state", dir + "/state"])
        #expect(deleted.status == 0 && deleted.stdout == "service \"web\" deleted\n", "\(deleted.stderr)")
    }

    @Test func missingFile() throws {
        let result = try Tool.run(["validate", "-f", "/nonexistent.yaml"])
        #expect(result.status == 1)
        #expect(result.stderr == "error: /nonexistent.yaml:0:0: document 0: no such file or directory\n")
    }
}

@Suite struct PlanCommandTests {
    @Test func kubenetText() throws {
        let result = try Tool.run(["plan", "--network", "kubenet", "--subnet", "10.240.0.0/24", "--nodes", "3"])
        #expect(result.status == 0)
        #expect(result.stdout == """
            network: kubenet, 3 nodes, max 110 pods per node
            subnet 10.240.0.0/24: 256 addresses - 5 reserved by Azure = 251 available
            nodes: 3 + 1 for upgrades = 4 subnet addresses needed (pods do not use the subnet)
            pods: pod CIDR 10.244.0.0/16 gives 256 per-node /24 ranges of 110 pods each; 4 needed
            largest node count: min(251 subnet addresses, 256 pod ranges, 400 routes + 1) - 1 for upgrades = 250
            fits: yes

            """)
    }

    @Test func azureCNIJSONThatDoesNotFit() throws {
        let result = try Tool.run(["plan", "--network", "azure-cni", "--subnet", "10.240.0.0/24", "--nodes", "10",
                                   "--max-pods", "30", "--output", "json"])
        #expect(result.status == 1)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["neededAddresses"] as? Int == 341)
        #expect(json?["maxNodes"] as? Int == 7)
        #expect(json?["fits"] as? Bool == false)
        #expect(json?["subnet"] as? String == "10.240.0.0/24")
    }

    @Test func badFlags() throws {
        let result = try Tool.run(["plan", "--network", "calico", "--subnet", "10.240.0.0/24", "--nodes", "3"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--network must be kubenet or azure-cni, not \"calico\""))
    }
}

/// `clusterdns get -o json`: what `apply` stored, as kube-apiserver writes it (a v1 List), with
/// the allocations the registry made.
@Suite struct GetOutputTests {
    @Test func getWritesAKubernetesListOfWhatApplyStored() throws {
        let directory = Scratch.url("get")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("web.yaml").path
        try """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {type: NodePort, selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let state = directory.appendingPathComponent("state").path
        #expect(try Tool.run(["apply", "-f", file, "--state", state]).status == 0)
        let result = try Tool.run(["get", "services", "-n", "shop", "-o", "json", "--state", state])
        #expect(result.status == 0, "\(result.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(list["kind"] as? String == "List" && list["apiVersion"] as? String == "v1")
        let items = try #require(list["items"] as? [[String: Any]])
        #expect(items.count == 1)
        let metadata = try #require(items.first?["metadata"] as? [String: Any])
        #expect(metadata["name"] as? String == "web" && metadata["namespace"] as? String == "shop")
        #expect((metadata["resourceVersion"] as? String).flatMap { Int($0) } ?? 0 > 0)
        #expect((metadata["uid"] as? String)?.count == 36)
        let spec = try #require(items.first?["spec"] as? [String: Any])
        let port = try #require((spec["ports"] as? [[String: Any]])?.first)
        #expect((30000...32767).contains(port["nodePort"] as? Int ?? 0), "allocated: \(port)")
        #expect((spec["clusterIP"] as? String)?.hasPrefix("10.96.") == true)
        #expect(try Tool.run(["get", "services", "-o", "yaml", "--state", state]).status != 0, "an unknown format is refused")
    }
}
