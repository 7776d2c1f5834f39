import KubernetesAPI
import ServiceRegistry
import Testing

/// The API's answers to requests as kubectl and client-go send them, against a real registry:
/// each case is a request and the HTTP code, Status reason or object fields that must come back.
struct APIHandlerTests {
    static let admin = Fixture.admin
    static let viewer = Fixture.viewer

    func makeHandler() async throws -> APIHandler { try await Fixture.handler() }

    func send(_ handler: APIHandler, _ method: String, _ path: String, query: [String: String] = [:],
              token: String? = admin, body: String = "") async -> APIResponse {
        await Fixture.send(handler, method, path, query: query, token: token, body: body)
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var method: String
        var path: String
        var token: String?
        var body: String = ""
        var query: [String: String] = [:]
        var code: Int
        var reason: String
        var message: String
        var testDescription: String { "\(method) \(path) → \(code) \(reason)" }
    }

    static let refusals: [Refusal] = [
        Refusal(method: "GET", path: "/api/v1/services", token: nil, code: 401, reason: "Unauthorized", message: "Unauthorized"),
        Refusal(method: "GET", path: "/api/v1/services", token: "wrong", code: 401, reason: "Unauthorized", message: "Unauthorized"),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/services", token: viewer,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":1}]}}"#,
                code: 403, reason: "Forbidden",
                message: #"services is forbidden: User "bob" cannot create resource "services" in API group "" in the namespace "shop""#),
        Refusal(method: "DELETE", path: "/api/v1/nodes/node-a", token: viewer, code: 403, reason: "Forbidden",
                message: #"nodes is forbidden: User "bob" cannot delete resource "nodes" in API group "" at the cluster scope"#),
        Refusal(method: "GET", path: "/api/v1/namespaces/shop/services/nope", token: admin, code: 404, reason: "NotFound",
                message: #"services "nope" not found"#),
        Refusal(method: "GET", path: "/api/v1/deployments", token: admin, code: 404, reason: "NotFound",
                message: "the server could not find the requested resource"),
        Refusal(method: "GET", path: "/apis/apps/v1", token: admin, code: 404, reason: "NotFound",
                message: "the server could not find the requested resource"),
        Refusal(method: "GET", path: "/api/v1/namespaces/shop/nodes", token: admin, code: 404, reason: "NotFound",
                message: "the server could not find the requested resource"),
        Refusal(method: "PATCH", path: "/api/v1/namespaces/shop/services", token: admin, code: 405, reason: "MethodNotAllowed",
                message: "the server does not allow this method on the requested resource (PATCH)"),
        Refusal(method: "PUT", path: "/api/v1/namespaces/shop/services", token: admin, code: 405, reason: "MethodNotAllowed",
                message: "the server does not allow this method on the requested resource (PUT)"),
        Refusal(method: "PATCH", path: "/api/v1/namespaces/shop/services/web", token: admin, body: "{}", code: 415,
                reason: "UnsupportedMediaType",
                message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"),
        Refusal(method: "PATCH", path: "/api/v1/namespaces/shop/services/web", token: viewer, body: "{}", code: 403,
                reason: "Forbidden",
                message: #"services is forbidden: User "bob" cannot patch resource "services" in API group "" in the namespace "shop""#),
        Refusal(method: "DELETE", path: "/api/v1/namespaces/shop/services", token: viewer, code: 403, reason: "Forbidden",
                message: #"services is forbidden: User "bob" cannot deletecollection resource "services" in API group "" in the namespace "shop""#),
        Refusal(method: "GET", path: "/api/v1/namespaces/shop/endpoints/web/status", token: admin, code: 404, reason: "NotFound",
                message: "the server could not find the requested resource"),
        Refusal(method: "GET", path: "/api/v1/namespaces/shop/services/web/scale", token: admin, code: 404, reason: "NotFound",
                message: "the server could not find the requested resource"),
        Refusal(method: "GET", path: "/api/v1/services", token: admin, query: ["resourceVersion": "x"], code: 400,
                reason: "BadRequest", message: #"invalid resourceVersion "x": a resource version is a decimal number here"#),
        Refusal(method: "GET", path: "/api/v1/services", token: admin, query: ["continue": "nonsense"], code: 400,
                reason: "BadRequest", message: #"continue key is not valid: "nonsense""#),
        Refusal(method: "GET", path: "/api/v1/services", token: admin, query: ["continue": "1/shop/web"], code: 410,
                reason: "Expired", message: ""),
        Refusal(method: "GET", path: "/api/v1/services", token: admin, query: ["resourceVersion": "999999"], code: 504,
                reason: "Timeout", message: ""),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/services", token: admin,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":1}]}}"#,
                query: ["dryRun": "Some"], code: 400, reason: "BadRequest",
                message: #"unsupported dryRun value "Some": supported values: "All""#),
        Refusal(method: "POST", path: "/api/v1/services", token: admin,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":1}]}}"#,
                code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource (POST)"),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/services", token: admin,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}"#,
                code: 409, reason: "AlreadyExists", message: #"services "web" already exists"#),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/services", token: admin,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"big"},"spec":{"ports":[{"port":70000}]}}"#,
                code: 422, reason: "Invalid",
                message: #"The Service "big" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"#),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/services", token: admin,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x","namespace":"other"},"spec":{"ports":[{"port":1}]}}"#,
                code: 400, reason: "BadRequest",
                message: "the namespace of the provided object does not match the namespace sent on the request"),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/pods", token: admin,
                body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":1}]}}"#,
                code: 400, reason: "BadRequest",
                message: "the API version in the data (v1) and kind (Service) do not match the resource pods"),
        Refusal(method: "POST", path: "/api/v1/namespaces/shop/services", token: admin, body: "{\"apiVersion\": ",
                code: 400, reason: "BadRequest", message: ""),
        Refusal(method: "GET", path: "/api/v1/services", token: admin, query: ["labelSelector": "app in (web"],
                code: 400, reason: "BadRequest", message: #"unable to parse requirement: missing ")" in "app in (web""#),
        Refusal(method: "GET", path: "/api/v1/services", token: admin, query: ["fieldSelector": "spec.nodeName=a"],
                code: 400, reason: "BadRequest", message: "field label not supported: spec.nodeName"),
    ]

    @Test(arguments: refusals)
    func refusedWithAStatus(_ r: Refusal) async throws {
        let handler = try await makeHandler()
        let response = await send(handler, r.method, r.path, query: r.query, token: r.token, body: r.body)
        #expect(response.code == r.code)
        #expect(response.body["kind"] == .string("Status") && response.body["status"] == .string("Failure"))
        #expect(response.body["reason"] == .string(r.reason))
        #expect(response.body["code"] == .int(r.code))
        if !r.message.isEmpty { #expect(response.body["message"] == .string(r.message)) }
        // Nothing was written by a refused request.
        #expect(handler.registry.get(ObjectKey(.service, namespace: "shop", name: "x")) == nil)
        #expect(handler.registry.get(ObjectKey(.service, namespace: "shop", name: "big")) == nil)
    }

    @Test func discoveryIsWhatKubectlReadsFirst() async throws {
        let handler = try await makeHandler()
        #expect(await send(handler, "GET", "/api", token: Self.viewer).body["versions"] == .array([.string("v1")]))
        let core = await send(handler, "GET", "/api/v1")
        let resources = try #require(core.body["resources"]?.items)
        #expect(resources.compactMap { $0["name"] } == ["namespaces", "namespaces/status", "nodes", "nodes/status", "services",
                                                        "services/status", "pods", "pods/status", "endpoints"].map(JSONValue.string))
        #expect(resources.first { $0["name"] == .string("services/status") }?["verbs"] == .array(["get", "patch", "update"].map(JSONValue.string)))
        #expect(resources.first { $0["name"] == .string("services") }?["shortNames"] == .array([.string("svc")]))
        #expect(resources.first { $0["name"] == .string("nodes") }?["namespaced"] == .bool(false))
        let groups = await send(handler, "GET", "/apis")
        #expect(groups.body.text.contains(#""name":"discovery.k8s.io""#))
        let discovery = await send(handler, "GET", "/apis/discovery.k8s.io/v1")
        #expect(discovery.body.text.contains(#""name":"endpointslices""#) && discovery.body.text.contains(#""kind":"EndpointSlice""#))
        // Public without a token, as kube-apiserver's system:public-info-viewer.
        #expect(await send(handler, "GET", "/version", token: nil).body["gitVersion"] != nil)
        #expect(await send(handler, "GET", "/healthz", token: nil).code == 200)
        #expect(await send(handler, "GET", "/readyz", token: nil).code == 200)
    }

    @Test func createGetListDelete() async throws {
        let handler = try await makeHandler()
        let created = await send(handler, "POST", "/api/v1/namespaces/shop/services", body: """
            apiVersion: v1
            kind: Service
            metadata: {name: api, labels: {app: api, tier: back}}
            spec: {type: NodePort, selector: {app: api}, ports: [{name: http, port: 8080}]}
            """)
        #expect(created.code == 201)
        #expect(created.body["metadata"]?["namespace"] == .string("shop"), "the URL's namespace")
        guard case .string(let clusterIP)? = created.body["spec"]?["clusterIP"] else { Issue.record("no clusterIP"); return }
        #expect(clusterIP.hasPrefix("10."), "allocated on create and in the response")
        guard case .array(let ports)? = created.body["spec"]?["ports"], case .int(let nodePort)? = ports.first?["nodePort"] else {
            Issue.record("no nodePort")
            return
        }
        #expect((30000...32767).contains(nodePort))
        // The registry is the one store: the object is there, with what the response said.
        guard case .service(let stored)? = handler.registry.get(ObjectKey(.service, namespace: "shop", name: "api")) else {
            Issue.record("not stored")
            return
        }
        #expect(stored.spec.clusterIP == clusterIP)
        let fetched = await send(handler, "GET", "/api/v1/namespaces/shop/services/api", token: Self.viewer)
        #expect(fetched.code == 200 && fetched.body == created.body)
        // Lists: every namespace, one namespace, by label (all operators) and by field.
        func names(_ query: [String: String], path: String = "/api/v1/services") async -> [String] {
            let list = await send(handler, "GET", path, query: query, token: Self.viewer)
            guard case .array(let items)? = list.body["items"] else { return [] }
            return items.compactMap { item in
                if case .string(let name)? = item["metadata"]?["name"] { return name }
                return nil
            }
        }
        #expect(await names([:]).sorted() == ["api", "db", "web"])
        #expect(await names([:], path: "/api/v1/namespaces/shop/services").sorted() == ["api", "db", "web"])
        #expect(await names(["labelSelector": "tier=back"]).sorted() == ["api", "db"])
        #expect(await names(["labelSelector": "tier!=back,app"]).sorted() == ["web"])
        #expect(await names(["labelSelector": "app in (web, db)"]).sorted() == ["db", "web"])
        #expect(await names(["labelSelector": "app notin (web),tier"]).sorted() == ["api", "db"])
        #expect(await names(["labelSelector": "!tier"], path: "/api/v1/pods") == ["web-0"])
        #expect(await names(["labelSelector": "!app"]).isEmpty)
        #expect(await names(["fieldSelector": "spec.type=NodePort"]).sorted() == ["api", "db"])
        #expect(await names(["fieldSelector": "metadata.name!=web,metadata.namespace==shop"]).sorted() == ["api", "db"])
        #expect(await names(["fieldSelector": "spec.nodeName=node-a"], path: "/api/v1/pods") == ["web-0"])
        let list = await send(handler, "GET", "/api/v1/namespaces/shop/services")
        #expect(list.body["kind"] == .string("ServiceList") && list.body["apiVersion"] == .string("v1"))
        #expect(list.body["metadata"]?["resourceVersion"] == .string(String(handler.registry.resourceVersion)))
        // A dry run changes nothing.
        let dry = await send(handler, "POST", "/api/v1/namespaces/shop/services", query: ["dryRun": "All"],
                             body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"dry"},"spec":{"ports":[{"port":1}]}}"#)
        #expect(dry.code == 201)
        #expect(handler.registry.get(ObjectKey(.service, namespace: "shop", name: "dry")) == nil)
        // A body that names no kind or apiVersion (as clients generated from the schema send
        // it) is of the URL's resource; the endpoints of a grouped resource are in its group.
        let bare = await send(handler, "POST", "/api/v1/namespaces/shop/services", body: #"{"metadata":{"name":"bare"},"spec":{"ports":[{"port":1}]}}"#)
        #expect(bare.code == 201 && bare.body["kind"] == .string("Service") && bare.body["apiVersion"] == .string("v1"), "\(bare.body.text)")
        let slice = await send(handler, "POST", "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices",
                               body: #"{"metadata":{"name":"s"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.9"]}]}"#)
        #expect(slice.code == 201 && slice.body["apiVersion"] == .string("discovery.k8s.io/v1"), "\(slice.body.text)")
        // Delete: the object as it was, then gone.
        let deleted = await send(handler, "DELETE", "/api/v1/namespaces/shop/services/api")
        #expect(deleted.code == 200 && deleted.body["metadata"]?["name"] == .string("api"))
        #expect(handler.registry.get(ObjectKey(.service, namespace: "shop", name: "api")) == nil)
        #expect(await send(handler, "DELETE", "/api/v1/namespaces/shop/services/api").code == 404)
        // Cluster-scoped and grouped resources.
        #expect(await send(handler, "GET", "/api/v1/namespaces/shop").body["kind"] == .string("Namespace"))
        let slices = await send(handler, "GET", "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices")
        #expect(slices.code == 200 && slices.body["kind"] == .string("EndpointSliceList"))
    }

    @Test func anOversizedBodyIsRefusedBeforeItIsRead() async throws {
        let handler = try await makeHandler()
        let body = String(repeating: " ", count: APIHandler.maxBody + 1)
        let response = await send(handler, "POST", "/api/v1/namespaces/shop/services", body: body)
        #expect(response.code == 413 && response.body["reason"] == .string("RequestEntityTooLarge"))
    }

    struct TokenCase: Sendable, CustomTestStringConvertible {
        var text: String
        var error: String?
        var testDescription: String { text.replacingOccurrences(of: "\n", with: "⏎") }
    }

    static let tokenCases: [TokenCase] = [
        TokenCase(text: "t1,alice,1\n\n# comment\nt2,bob,2,\"a, b\"\n", error: nil),
        TokenCase(text: "t1,alice\n", error: "line 1: expected token,user,uid[,\"groups\"], got 2 field(s)"),
        TokenCase(text: "t1,alice,1\nt1,bob,2\n", error: "line 2: duplicate token"),
        TokenCase(text: ",alice,1\n", error: "line 1: empty token"),
        TokenCase(text: "t1,,1\n", error: "line 1: empty user name"),
    ]

    @Test(arguments: tokenCases)
    func tokenFilesAreReadAsKubeAPIServerReadsThem(_ c: TokenCase) {
        do {
            let table = try TokenTable(parsing: c.text)
            #expect(c.error == nil)
            #expect(table.user(authorization: "Bearer t2")?.groups == ["a", "b"])
            #expect(table.user(authorization: "Bearer t1")?.name == "alice")
            #expect(table.user(authorization: "Basic t1") == nil)
        } catch {
            #expect(error.description == c.error)
        }
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// The endpoints the registry derives from selectors are listed as the objects Kubernetes'
/// controllers would write.
struct DerivedEndpointsTests {
    @Test func selectorServicesHaveEndpointsAndSlices() async throws {
        let handler = try await Fixture.handler()
        let endpoints = await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/endpoints/web")
        #expect(endpoints.code == 200)
        let subset = try #require(endpoints.body["subsets"]?.items?.first)
        #expect(subset["addresses"]?.items?.compactMap { $0["ip"]?.stringValue } == ["10.244.0.5"])
        #expect(subset["addresses"]?.items?.first?["targetRef"]?["name"] == .string("web-0"))
        #expect(subset["ports"]?.items?.first?["port"] == .int(80))
        let slices = await Fixture.send(handler, "GET", "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices",
                                        query: ["labelSelector": "kubernetes.io/service-name=web"])
        let slice = try #require(slices.body["items"]?.items?.first)
        #expect(slices.body["items"]?.items?.count == 1)
        #expect(slice["metadata"]?["name"] == .string("web-ipv4"))
        #expect(slice["addressType"] == .string("IPv4"))
        #expect(slice["endpoints"]?.items?.first?["conditions"]?["ready"] == .bool(true))
        // A pod that stops being ready moves to notReadyAddresses.
        let patched = await Fixture.send(handler, "PATCH", "/api/v1/namespaces/shop/pods/web-0/status",
                                         contentType: "application/strategic-merge-patch+json",
                                         body: #"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#)
        #expect(patched.code == 200)
        let after = await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/endpoints")
        let web = try #require(after.body["items"]?.items?.first { $0["metadata"]?["name"] == .string("web") })
        #expect(web["subsets"]?.items?.first?["notReadyAddresses"]?.items?.count == 1)
        #expect(web["subsets"]?.items?.first?["addresses"] == nil)
        // A service without a selector has none derived.
        #expect(await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/endpoints/db").code == 404)
    }
}
