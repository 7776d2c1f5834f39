@testable import KubernetesAPI
import ServiceRegistry
import Synchronization
import Testing

/// Updates, patches and deletes as kubectl and client-go send them: optimistic concurrency
/// (409 on a stale resourceVersion), status subresources, preconditions, collections.
struct APIWriteTests {
    let web = "/api/v1/namespaces/shop/services/web"

    @Test func updateNeedsTheCurrentVersion() async throws {
        let handler = try await Fixture.handler()
        let current = await Fixture.send(handler, "GET", web)
        let version = try #require(current.resourceVersion)
        let clusterIP = try #require(current.body["spec"]?["clusterIP"])
        // A PUT of the object read, with a port added: written, a new version, the IP kept.
        let changed = current.body.setting("spec", to: current.body["spec"]!.setting("ports", to: .array([
            .object([("name", .string("http")), ("port", .int(80))]), .object([("name", .string("alt")), ("port", .int(8080))]),
        ])))
        let updated = await Fixture.send(handler, "PUT", web, body: changed.text)
        #expect(updated.code == 200)
        #expect(updated.resourceVersion != version)
        #expect(updated.body["spec"]?["clusterIP"] == clusterIP)
        #expect(updated.body["spec"]?["ports"]?.arrayCount == 2)
        // The same body again names a version that is no longer current: 409, nothing written.
        let stale = await Fixture.send(handler, "PUT", web, body: changed.setting("spec", to: current.body["spec"]!).text)
        #expect(stale.code == 409)
        #expect(stale.body["reason"] == .string("Conflict"))
        #expect(stale.body["message"] == .string(#"Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again"#))
        #expect(await Fixture.send(handler, "GET", web).body["spec"]?["ports"]?.arrayCount == 2)
        // Without a version, an update is unconditional (as kube-apiserver allows for services).
        let metadata = updated.body["metadata"]!.setting("resourceVersion", to: nil)
        let unconditional = await Fixture.send(handler, "PUT", web, body: updated.body.setting("metadata", to: metadata).text)
        #expect(unconditional.code == 200 && unconditional.resourceVersion == updated.resourceVersion, "unchanged: same version")
        // A uid that is not the object's: 409 with kube-apiserver's precondition message.
        let otherUID = metadata.setting("uid", to: .string("00000000-0000-4000-8000-000000000000"))
        let wrongUID = await Fixture.send(handler, "PUT", web, body: updated.body.setting("metadata", to: otherUID).text)
        #expect(wrongUID.code == 409)
        // The name in the body must be the URL's; the object must exist.
        let renamed = await Fixture.send(handler, "PUT", "/api/v1/namespaces/shop/services/other", body: updated.body.text)
        #expect(renamed.code == 400 && renamed.body["message"] == .string("the name of the object (web) does not match the name on the URL (other)"))
        #expect(await Fixture.send(handler, "PUT", "/api/v1/namespaces/shop/services/nope",
                                   body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"nope"},"spec":{"ports":[{"port":1}]}}"#).code == 404)
        // An invalid update: 422 with the cause's field, nothing written.
        let invalid = await Fixture.send(handler, "PUT", web, body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":70000}]}}"#)
        #expect(invalid.code == 422)
        #expect(invalid.body["details"]?["causes"] == .array([.object([
            ("reason", .string("FieldValueInvalid")), ("message", .string("Invalid value: 70000: must be between 1 and 65535, inclusive")),
            ("field", .string("spec.ports[0].port")),
        ])]))
        #expect(await Fixture.send(handler, "GET", web).resourceVersion == updated.resourceVersion)
    }

    /// Every write that changed something is settled (the server makes DNS serve its version)
    /// before its response; reads, dry runs and refusals are not.
    @Test func writesAreSettledBeforeTheyAnswer() async throws {
        var handler = try await Fixture.handler()
        let settled = Mutex<[UInt64]>([])
        handler.settle = { version in settled.withLock { $0.append(version) } }
        let body = #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":1}]}}"#
        let services = "/api/v1/namespaces/shop/services"
        _ = await Fixture.send(handler, "GET", web)
        _ = await Fixture.send(handler, "POST", services, query: ["dryRun": "All"], body: body)
        _ = await Fixture.send(handler, "POST", services, body: #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":70000}]}}"#)
        #expect(settled.withLock { $0 }.isEmpty)
        let created = await Fixture.send(handler, "POST", services, body: body)
        let version = try #require(created.resourceVersion.flatMap { UInt64($0) })
        #expect(settled.withLock { $0 } == [version])
        _ = await Fixture.send(handler, "DELETE", services + "/s")
        #expect(settled.withLock { $0 } == [version, handler.registry.resourceVersion])
    }

    /// What the registry derives is read-only: each write says what to change instead; a
    /// service without a selector has its Endpoints written by whoever manages them.
    @Test func derivedObjectsAreNotWritten() async throws {
        let handler = try await Fixture.handler()
        let endpoints = "/api/v1/namespaces/shop/endpoints"
        let slices = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
        let current = await Fixture.send(handler, "GET", endpoints + "/web")
        #expect(current.code == 200)
        let message = #"endpoints "web" is derived by the registry from the selector of service "web" and its pods: change those instead"#
        for (method, type, body) in [("PUT", "application/json", current.body.text),
                                     ("PATCH", "application/merge-patch+json", #"{"metadata":{"labels":{"x":"y"}}}"#),
                                     ("DELETE", "application/json", "")] {
            let refused = await Fixture.send(handler, method, endpoints + "/web", contentType: type, body: body)
            #expect(refused.code == 405 && refused.body["message"] == .string(message), "\(method): \(refused.body.text)")
        }
        let created = await Fixture.send(handler, "POST", endpoints, body: #"{"metadata":{"name":"web"},"subsets":[]}"#)
        #expect(created.code == 409 && created.body["reason"] == .string("AlreadyExists") && created.body["message"] == .string(message))
        let slice = await Fixture.send(handler, "DELETE", slices + "/web-ipv4")
        #expect(slice.code == 405 && slice.body["message"]?.stringValue?.hasPrefix(#"endpointslices "web-ipv4" is derived"#) == true)
        #expect(await Fixture.send(handler, "GET", endpoints + "/web").body == current.body, "nothing changed")
        // db has no selector: its Endpoints are the writer's.
        let manual = await Fixture.send(handler, "POST", endpoints,
                                        body: #"{"metadata":{"name":"db"},"subsets":[{"addresses":[{"ip":"10.0.0.9"}],"ports":[{"port":5432}]}]}"#)
        #expect(manual.code == 201, "\(manual.body.text)")
        #expect(await Fixture.send(handler, "DELETE", endpoints + "/db").code == 200)
    }

    @Test func statusIsItsOwnSubresource() async throws {
        let handler = try await Fixture.handler()
        let pod = "/api/v1/namespaces/shop/pods/web-0"
        let before = await Fixture.send(handler, "GET", pod)
        // A PUT without status keeps the pod's status (its address); spec and labels change.
        var body = before.body.setting("status", to: nil)
        body = body.setting("metadata", to: body["metadata"]!.setting("labels", to: .object([("app", .string("web")), ("v", .string("2"))])))
        let updated = await Fixture.send(handler, "PUT", pod, body: body.text)
        #expect(updated.code == 200)
        #expect(updated.body["status"]?["podIP"] == .string("10.244.0.5"))
        #expect(updated.body["metadata"]?["labels"]?["v"] == .string("2"))
        // /status changes the status only: the labels in its body are ignored.
        let status = updated.body.setting("metadata", to: updated.body["metadata"]!.setting("labels", to: .object([])))
            .setting("status", to: .object([("podIP", .string("10.244.0.9")), ("phase", .string("Running"))]))
        let written = await Fixture.send(handler, "PUT", pod + "/status", body: status.text)
        #expect(written.code == 200)
        #expect(written.body["status"]?["podIP"] == .string("10.244.0.9"))
        #expect(written.body["metadata"]?["labels"]?["v"] == .string("2"))
        // A merge patch of /status.
        let patched = await Fixture.send(handler, "PATCH", pod + "/status", contentType: "application/merge-patch+json",
                                         body: #"{"status":{"podIP":"10.244.0.10"},"metadata":{"labels":null}}"#)
        #expect(patched.code == 200)
        #expect(patched.body["status"]?["podIP"] == .string("10.244.0.10"))
        #expect(patched.body["metadata"]?["labels"]?["app"] == .string("web"))
    }

    struct PatchRequest: Sendable, CustomTestStringConvertible {
        var type: String
        var body: String
        var code: Int
        /// The ports after it (`port/targetPort`), or the Status message.
        var expected: String
        var testDescription: String { "\(type): \(body)" }
    }

    static let patches: [PatchRequest] = [
        PatchRequest(type: "application/strategic-merge-patch+json", body: #"{"spec":{"ports":[{"port":81,"name":"alt"}]}}"#,
                     code: 200, expected: "80/80 81/81"),
        PatchRequest(type: "application/merge-patch+json", body: #"{"spec":{"ports":[{"port":81,"name":"alt"}]}}"#,
                     code: 200, expected: "81/81"),
        PatchRequest(type: "application/json-patch+json", body: #"[{"op":"replace","path":"/spec/ports/0/targetPort","value":8080}]"#,
                     code: 200, expected: "80/8080"),
        PatchRequest(type: "application/json-patch+json", body: #"[{"op":"test","path":"/spec/type","value":"NodePort"}]"#,
                     code: 422, expected: "the patch cannot be applied: testing value /spec/type failed"),
        PatchRequest(type: "application/json-patch+json", body: #"{"op":"add"}"#,
                     code: 400, expected: "a JSON patch must be an array of operations"),
        PatchRequest(type: "application/merge-patch+json", body: #"{"metadata":{"resourceVersion":"1"}}"#,
                     code: 409, expected: #"Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again"#),
        PatchRequest(type: "application/merge-patch+json", body: #"{"metadata":{"name":"other"}}"#,
                     code: 400, expected: "the name of the object (other) does not match the name on the URL (web)"),
        PatchRequest(type: "application/merge-patch+json", body: #"{"spec":{"ports":[{"port":0}]}}"#,
                     code: 422, expected: #"The Service "web" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"#),
        PatchRequest(type: "application/merge-patch+json", body: #"{"spec":"#, code: 400, expected: ""),
        // Becoming an ExternalName service needs the cluster IP given up, as kube-apiserver says.
        PatchRequest(type: "application/strategic-merge-patch+json", body: #"{"spec":{"ports":[{"$patch":"delete","port":80}],"type":"ExternalName","externalName":"example.com"}}"#,
                     code: 422, expected: #"The Service "web" is invalid: spec.clusterIP: Forbidden: may not be set for ExternalName services"#),
        PatchRequest(type: "application/strategic-merge-patch+json", body: #"{"spec":{"ports":[{"$patch":"delete","port":80}],"type":"ExternalName","externalName":"example.com","clusterIP":null,"clusterIPs":null,"ipFamilies":null,"ipFamilyPolicy":null}}"#,
                     code: 200, expected: ""),
    ]

    @Test(arguments: patches)
    func patchTypes(_ p: PatchRequest) async throws {
        let handler = try await Fixture.handler()
        let before = await Fixture.send(handler, "GET", web)
        let response = await Fixture.send(handler, "PATCH", web, contentType: p.type, body: p.body)
        #expect(response.code == p.code, "\(response.body.text)")
        if p.code == 200 {
            let ports = (response.body["spec"]?["ports"]?.items ?? []).map { port in
                "\(port["port"]?.intValue ?? 0)/\(port["targetPort"]?.intValue ?? 0)"
            }
            #expect(ports.joined(separator: " ") == p.expected)
            #expect(response.resourceVersion != before.resourceVersion)
            #expect(response.body["spec"]?["clusterIP"] == before.body["spec"]?["clusterIP"] || p.expected.isEmpty)
        } else {
            if !p.expected.isEmpty { #expect(response.body["message"] == .string(p.expected)) }
            #expect(await Fixture.send(handler, "GET", web).resourceVersion == before.resourceVersion, "nothing written")
        }
    }

    /// Server-side apply: a manager's intent creates the object, then replaces what that manager
    /// applied before (a port and a label it leaves out go), while what others set stays.
    @Test func serverSideApplyReplacesWhatTheManagerAppliedBefore() async throws {
        let handler = try await Fixture.handler()
        let path = "/api/v1/namespaces/shop/services/api"
        func apply(_ manager: String?, ports: [Int], labels: String) async -> APIResponse {
            await Fixture.send(handler, "PATCH", path, query: manager.map { ["fieldManager": $0] } ?? [:],
                               contentType: "application/apply-patch+yaml", body: """
                apiVersion: v1
                kind: Service
                metadata: {name: api, labels: \(labels)}
                spec: {selector: {app: api}, ports: [\(ports.map { "{name: p\($0), port: \($0)}" }.joined(separator: ", "))]}
                """)
        }
        func state(_ response: APIResponse) -> String {
            let ports = (response.body["spec"]?["ports"]?.items ?? []).compactMap { $0["port"]?.intValue }.map(String.init)
            let labels = (response.body["metadata"]?["labels"]?.members ?? []).map { "\($0.0)=\($0.1.stringValue ?? "")" }.sorted()
            return "ports \(ports.joined(separator: ",")); labels \(labels.joined(separator: ","))"
        }
        let missing = await apply(nil, ports: [80], labels: "{app: api}")
        #expect(missing.code == 422 && missing.body["message"] == .string(#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#))
        let created = await apply("kubectl", ports: [80, 8080], labels: "{app: api, tier: back}")
        #expect(created.code == 201 && state(created) == "ports 80,8080; labels app=api,tier=back", "\(created.body.text)")
        #expect(created.body["metadata"]?["annotations"]?["applied.clusterdns.io/kubectl"] != nil)
        // Someone else adds a port and a label; another manager applies a label of its own.
        let patched = await Fixture.send(handler, "PATCH", path, contentType: "application/strategic-merge-patch+json",
                                         body: #"{"metadata":{"labels":{"team":"a"}},"spec":{"ports":[{"name":"x","port":9090}]}}"#)
        #expect(state(patched) == "ports 80,8080,9090; labels app=api,team=a,tier=back")
        #expect(state(await apply("ops", ports: [80], labels: "{owner: ops}")) == "ports 80,8080,9090; labels app=api,owner=ops,team=a,tier=back")
        // kubectl applies again without 80 and tier: those go; the others' stay; the address stays.
        let again = await apply("kubectl", ports: [8080], labels: "{app: api}")
        #expect(again.code == 200 && state(again) == "ports 8080,9090; labels app=api,owner=ops,team=a", "\(again.body.text)")
        #expect(again.body["spec"]?["clusterIP"] == created.body["spec"]?["clusterIP"])
        // The same intent again changes nothing.
        #expect(await apply("kubectl", ports: [8080], labels: "{app: api}").resourceVersion == again.resourceVersion)
        #expect(ServerSideApply.annotation(for: "kubectl client/1.20 (linux)") == "applied.clusterdns.io/kubectl-client-1.20--linux")
    }

    @Test func deletePreconditionsAndCollections() async throws {
        let handler = try await Fixture.handler()
        let current = await Fixture.send(handler, "GET", web)
        // A precondition on a version the object no longer has: 409, still there.
        let stale = await Fixture.send(handler, "DELETE", web, body: #"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"resourceVersion":"1"}}"#)
        #expect(stale.code == 409)
        #expect(await Fixture.send(handler, "GET", web).code == 200)
        let dry = await Fixture.send(handler, "DELETE", web, body: #"{"dryRun":["All"]}"#)
        #expect(dry.code == 200 && handler.registry.get(ObjectKey(.service, namespace: "shop", name: "web")) != nil)
        let uid = try #require(current.body["metadata"]?["uid"]?.stringValue)
        let deleted = await Fixture.send(handler, "DELETE", web, body: #"{"preconditions":{"uid":"\#(uid)","resourceVersion":"\#(current.resourceVersion!)"}}"#)
        #expect(deleted.code == 200)
        #expect(await Fixture.send(handler, "GET", web).code == 404)
        // deletecollection by label: only what the selector names.
        _ = await Fixture.send(handler, "POST", "/api/v1/namespaces/shop/services",
                               body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"cache","labels":{"tier":"back"}},"spec":{"ports":[{"port":6379}]}}"#)
        let gone = await Fixture.send(handler, "DELETE", "/api/v1/namespaces/shop/services", query: ["labelSelector": "tier=back"])
        #expect(gone.code == 200)
        #expect((gone.body["items"]?.items ?? []).compactMap { $0["metadata"]?["name"]?.stringValue }.sorted() == ["cache", "db"])
        #expect(handler.registry.list(.service).isEmpty)
        #expect(handler.registry.list(.pod).count == 1)
    }

    /// A token given by one server continues on another server of the same registry (replicas
    /// behind a load balancer) while nothing has been written since; after a write, that server
    /// holds no page at the token's version and says so (410), while the first goes on.
    @Test func aListContinuesOnAnotherServerOfTheRegistry() async throws {
        let first = try await Fixture.handler()
        let second = APIHandler(registry: first.registry, tokens: first.tokens)
        let page = await Fixture.send(first, "GET", "/api/v1/services", query: ["limit": "1"])
        let token = try #require(page.body["metadata"]?["continue"]?.stringValue)
        let rest = await Fixture.send(second, "GET", "/api/v1/services", query: ["limit": "5", "continue": token])
        #expect(rest.code == 200)
        #expect((rest.body["items"]?.items ?? []).compactMap { $0["metadata"]?["name"]?.stringValue } == ["web"])
        _ = await Fixture.send(first, "DELETE", "/api/v1/namespaces/shop/services/web")
        let expired = await Fixture.send(second, "GET", "/api/v1/services", query: ["limit": "5", "continue": token])
        #expect(expired.code == 410 && expired.body["reason"]?.stringValue == "Expired")
        let kept = await Fixture.send(first, "GET", "/api/v1/services", query: ["limit": "5", "continue": token])
        #expect(kept.code == 200)
        #expect((kept.body["items"]?.items ?? []).compactMap { $0["metadata"]?["name"]?.stringValue } == ["web"])
    }

    @Test func pagedListsAreConsistent() async throws {
        let handler = try await Fixture.handler()
        for i in 0..<7 {
            _ = await Fixture.send(handler, "POST", "/api/v1/namespaces/shop/services",
                                   body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s\#(i)"},"spec":{"ports":[{"port":1}]}}"#)
        }
        var names: [String] = []
        var token: String? = nil
        var versions: Set<String> = []
        var pages = 0
        repeat {
            var query = ["limit": "3"]
            if let token { query["continue"] = token }
            let page = await Fixture.send(handler, "GET", "/api/v1/services", query: query)
            #expect(page.code == 200)
            names += (page.body["items"]?.items ?? []).compactMap { $0["metadata"]?["name"]?.stringValue }
            versions.insert(page.body["metadata"]?["resourceVersion"]?.stringValue ?? "")
            token = page.body["metadata"]?["continue"]?.stringValue
            pages += 1
            // A write between pages is not seen by the rest of this list.
            if pages == 1 { _ = await Fixture.send(handler, "DELETE", "/api/v1/namespaces/shop/services/s6") }
        } while token != nil && pages < 10
        #expect(pages == 3)
        #expect(names == ["db", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "web"])
        #expect(versions.count == 1)
    }
}

extension JSONValue {
    var items: [JSONValue]? { if case .array(let items) = self { items } else { nil } }
    var arrayCount: Int? { items?.count }
    var intValue: Int? { if case .int(let v) = self { v } else { nil } }
}
