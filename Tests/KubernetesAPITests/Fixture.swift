import KubernetesAPI
import ServiceRegistry

/// A registry with a namespace, two services and a pod, served by a handler that knows an admin
/// and a viewer token.
enum Fixture {
    static let admin = "admin-token"
    static let viewer = "viewer-token"

    static func handler() async throws -> APIHandler {
        let registry = try Registry()
        for entry in Manifest.decode("""
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop, labels: {app: web, tier: front}}
            spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: db, namespace: shop, labels: {app: db, tier: back}}
            spec: {type: NodePort, ports: [{name: sql, port: 5432}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: web-0, namespace: shop, labels: {app: web}}
            spec: {nodeName: node-a, containers: [{name: app, image: nginx}]}
            status: {podIP: 10.244.0.5, conditions: [{type: Ready, status: "True"}]}
            """) { _ = try await registry.apply(try entry.result.get()) }
        let tokens = try TokenTable(parsing: """
            # token,user,uid,groups
            \(admin),alice,1,"system:masters"
            \(viewer),bob,2,"clusterdns:viewers,dev"
            """)
        return APIHandler(registry: registry, tokens: tokens)
    }

    static func send(_ handler: APIHandler, _ method: String, _ path: String, query: [String: String] = [:],
                     token: String? = admin, contentType: String? = nil, body: String = "") async -> APIResponse {
        await handler.handle(APIRequest(method: method, path: path, query: query, authorization: token.map { "Bearer \($0)" },
                                        contentType: contentType, body: Array(body.utf8)))
    }
}

extension APIResponse {
    /// `metadata.resourceVersion` of the object answered.
    var resourceVersion: String? { body["metadata"]?["resourceVersion"]?.stringValue }
}
