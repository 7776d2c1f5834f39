import KubernetesAPI
import NetAddress
import ServiceRegistry
import Testing

/// kubectl's server-side printing: the Table kube-apiserver answers when `Accept` asks for one.
struct APITableTests {
    static let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

    /// A registry whose objects were all created at 1,000,000 s, shown at `now`.
    func handler(now: Int64) async throws -> APIHandler {
        let registry = try Registry(configuration: RegistryConfiguration(loadBalancerPool: [try IPPrefix(parsing: "192.0.2.0/30")]),
                                    wallClock: { 1_000_000 })
        for entry in Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec: {selector: {app: web, tier: front}, ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lb, namespace: shop}
            spec: {type: LoadBalancer, ports: [{name: https, port: 443, nodePort: 30443}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: ext, namespace: shop}
            spec: {type: ExternalName, externalName: db.example.com}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: none, namespace: shop}
            spec: {clusterIP: None, ports: [{name: p, port: 1}]}
            ---
            apiVersion: v1
            kind: Endpoints
            metadata: {name: manual, namespace: shop}
            subsets: [{addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}], ports: [{name: a, port: 80}, {name: b, port: 81}]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web-0, namespace: shop}
            spec: {nodeName: node-a, containers: [{name: a}, {name: b}]}
            status: {podIP: 10.244.0.5, phase: Running}
            """) { try await registry.apply(try entry.result.get()) }
        var handler = APIHandler(registry: registry, tokens: TokenTable(["t": APIUser(name: "admin")]))
        handler.wallClock = { now }
        return handler
    }

    func rows(_ handler: APIHandler, _ path: String, query: [String: String] = [:]) async -> [[String]] {
        let response = await handler.handle(APIRequest(method: "GET", path: path, query: query, authorization: "Bearer t", accept: Self.accept))
        #expect(response.code == 200)
        #expect(response.body["kind"] == .string("Table") && response.body["apiVersion"] == .string("meta.k8s.io/v1"))
        return (response.body["rows"]?.items ?? []).map { row in
            (row["cells"]?.items ?? []).map { $0.stringValue ?? $0.text }
        }
    }

    @Test func servicesAsKubectlPrintsThem() async throws {
        let handler = try await handler(now: 1_000_000 + 3 * 3600 + 25 * 60)
        let services = await rows(handler, "/api/v1/namespaces/shop/services")
        #expect(services == [
            ["ext", "ExternalName", "<none>", "db.example.com", "<none>", "3h25m", "<none>"],
            ["lb", "LoadBalancer", "10.96.0.2", "192.0.2.1", "443:30443/TCP", "3h25m", "<none>"],
            ["none", "ClusterIP", "None", "<none>", "1/TCP", "3h25m", "<none>"],
            ["web", "ClusterIP", "10.96.0.1", "<none>", "80/TCP,53/UDP", "3h25m", "app=web,tier=front"],
        ])
        // A service that selects no pod yet has an Endpoints without addresses, as the controller keeps one.
        #expect(await rows(handler, "/api/v1/namespaces/shop/endpoints") == [
            ["manual", "10.0.0.1:80,10.0.0.1:81,10.0.0.2:80 + 1 more...", "3h25m"], ["web", "<none>", "3h25m"],
        ])
        #expect(await rows(handler, "/api/v1/namespaces/shop/pods") == [
            ["web-0", "2/2", "Running", "0", "3h25m", "10.244.0.5", "node-a", "<none>", "<none>"],
        ])
        // One object: a Table of one row; its object is the metadata unless asked otherwise.
        let one = await handler.handle(APIRequest(method: "GET", path: "/api/v1/namespaces/shop/services/web",
                                                  authorization: "Bearer t", accept: Self.accept))
        let row = try #require(one.body["rows"]?.items?.first)
        #expect(row["object"]?["kind"] == .string("PartialObjectMetadata"))
        #expect(row["object"]?["metadata"]?["creationTimestamp"] == .string("1970-01-12T13:46:40Z"))
        #expect(one.body["columnDefinitions"]?.items?.compactMap { $0["name"]?.stringValue }
                == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"])
        // Not a Table when it is not asked for, and 406 when nothing asked for is served.
        let plain = await handler.handle(APIRequest(method: "GET", path: "/api/v1/namespaces/shop/services/web", authorization: "Bearer t"))
        #expect(plain.body["kind"] == .string("Service"))
        let refused = await handler.handle(APIRequest(method: "GET", path: "/api/v1/services", authorization: "Bearer t",
                                                      accept: "application/vnd.kubernetes.protobuf"))
        #expect(refused.code == 406)
    }

    static let ages: [(Int64, String)] = [
        (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (599, "9m59s"), (600, "10m"),
        (10799, "179m"), (10800, "3h"), (3 * 3600 + 59 * 60, "3h59m"), (8 * 3600, "8h"), (47 * 3600 + 3599, "47h"),
        (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (729 * 86400, "729d"), (730 * 86400, "2y"),
        (731 * 86400, "2y1d"), (8 * 365 * 86400, "8y"), (20 * 365 * 86400, "20y"),
    ]

    @Test(arguments: ages)
    func agesAsKubectlWritesThem(_ seconds: Int64, _ text: String) async throws {
        let handler = try await handler(now: 1_000_000 + seconds)
        #expect(await rows(handler, "/api/v1/namespaces/shop/services").first?[5] == text)
    }

    static let timestamps: [(Int64, String)] = [
        (0, "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"), (1_796_441_067, "2026-12-05T03:24:27Z"),
        (-1, "1969-12-31T23:59:59Z"), (253_402_300_799, "9999-12-31T23:59:59Z"),
    ]

    @Test(arguments: timestamps)
    func timestampsAreRFC3339(_ seconds: Int64, _ text: String) {
        #expect(Timestamp.rfc3339(seconds) == text)
    }
}

