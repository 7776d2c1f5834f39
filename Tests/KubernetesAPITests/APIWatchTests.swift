@testable import KubernetesAPI
import ServiceRegistry
import Synchronization
import TestSupport
import Testing

/// What a watch streams, as client-go's reflector and `kubectl get -w` read it.
struct APIWatchTests {
    /// Collects a watch's events as they come; `finished` once the stream ends.
    final class Collector: Sendable {
        final class Box: Sendable {
            let events = Mutex<[JSONValue]>([])
            let finished = Mutex(false)
        }
        let box = Box()
        let task: Task<Void, Never>
        var all: [JSONValue] { box.events.withLock { $0 } }
        var isFinished: Bool { box.finished.withLock { $0 } }

        init(_ response: APIResponse) {
            let box = box
            let stream = response.events
            task = Task {
                if let stream {
                    for await line in stream {
                        let event = (try? JSONValue(parsing: line)) ?? .string("unparsable: \(String(decoding: line, as: UTF8.self))")
                        box.events.withLock { $0.append(event) }
                    }
                }
                box.finished.withLock { $0 = true }
            }
        }

        deinit { task.cancel() }

        /// `TYPE name` of each event (`TYPE version` for bookmarks, `ERROR code`).
        var summary: [String] {
            all.map { event in
                let type = event["type"]?.stringValue ?? "?"
                let object = event["object"]
                switch type {
                case "BOOKMARK": return "BOOKMARK \(object?["metadata"]?["resourceVersion"]?.stringValue ?? "")"
                case "ERROR": return "ERROR \(object?["code"]?.intValue ?? 0)"
                default: return "\(type) \(object?["metadata"]?["name"]?.stringValue ?? "")"
                }
            }
        }

        func waitFor(_ count: Int) async -> Bool {
            await eventually { self.all.count >= count || self.isFinished }
        }
    }

    func service(_ name: String, labels: String = "{app: x}") throws -> RegistryObject {
        let entry = try #require(Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: shop, labels: \(labels)}
            spec: {ports: [{name: p, port: 80}]}
            """).first)
        return try entry.result.get()
    }

    @Test func theCurrentStateThenEveryChangeThatTheSelectorSees() async throws {
        let handler = try await Fixture.handler()
        let watch = Collector(await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/services",
                                                 query: ["watch": "true", "labelSelector": "app"], token: Fixture.viewer))
        #expect(await watch.waitFor(2))
        #expect(watch.summary.sorted() == ["ADDED db", "ADDED web"])
        try await handler.registry.apply(service("api"))
        try await handler.registry.apply(service("api", labels: "{app: x, v: '2'}"))
        try await handler.registry.apply(service("api", labels: "{v: '3'}"))  // leaves the selector
        try await handler.registry.apply(service("api", labels: "{app: z}"))  // comes back
        try await handler.registry.delete(ObjectKey(.service, namespace: "shop", name: "api"))
        try await handler.registry.apply(service("other", labels: "{}"))  // never selected
        _ = try await handler.registry.apply(.namespace(Namespace(metadata: ObjectMeta(name: "elsewhere"))))
        #expect(await watch.waitFor(7))
        #expect(watch.summary.dropFirst(2) == ["ADDED api", "MODIFIED api", "DELETED api", "ADDED api", "DELETED api"])
        // A deleted object carries the version of its deletion.
        let last = watch.all.last
        let deletion = handler.registry.resourceVersion - 2
        #expect(last?["object"]?["metadata"]?["resourceVersion"] == .string(String(deletion)))
    }

    @Test func resumedFromAVersionOrRefusedWith410() async throws {
        let handler = try await Fixture.handler()
        let from = handler.registry.resourceVersion
        try await handler.registry.apply(service("a"))
        try await handler.registry.apply(service("b"))
        let resumed = Collector(await Fixture.send(handler, "GET", "/api/v1/services",
                                                   query: ["watch": "1", "resourceVersion": String(from + 1)]))
        #expect(await resumed.waitFor(1))
        #expect(resumed.summary == ["ADDED b"], "only what came after the version")
        // The deprecated path form, naming one object.
        let named = Collector(await Fixture.send(handler, "GET", "/api/v1/watch/namespaces/shop/services/a"))
        #expect(await named.waitFor(1))
        #expect(named.summary == ["ADDED a"])
        // More changes than the history keeps: a watch from before them gets 410 Expired.
        for i in 0...Registry.historyLimit {
            try await handler.registry.apply(service("a", labels: "{n: '\(i)'}"))
        }
        let expired = Collector(await Fixture.send(handler, "GET", "/api/v1/services",
                                                   query: ["watch": "true", "resourceVersion": String(from)]))
        #expect(await expired.waitFor(1))
        #expect(expired.summary == ["ERROR 410"])
        let status = expired.all.first?["object"]
        #expect(status?["reason"] == .string("Expired"))
        #expect(status?["message"]?.stringValue?.hasPrefix("too old resource version: \(from) (") == true)
        #expect(await eventually { expired.isFinished })
    }

    @Test func bookmarksAndTheTimeoutFollowTheClock() async throws {
        var handler = try await Fixture.handler()
        let clock = TestClock()
        handler.clock = clock
        handler.bookmarkInterval = .seconds(60)
        let version = handler.registry.resourceVersion
        let watch = Collector(await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/pods",
                                                 query: ["watch": "true", "resourceVersion": String(version),
                                                         "allowWatchBookmarks": "true", "timeoutSeconds": "100000"]))
        #expect(await eventually { clock.sleeping == 2 })  // the bookmark period and the timeout
        clock.advance(by: .seconds(60))
        #expect(await watch.waitFor(1))
        #expect(watch.summary == ["BOOKMARK \(version)"])
        // A change of another kind moves the version a bookmark names, once the watch has seen it.
        try await handler.registry.apply(service("x"))
        var bookmarks = 1
        while watch.summary.last != "BOOKMARK \(version + 1)" && bookmarks < 1000 {
            #expect(await eventually { clock.sleeping == 2 })
            clock.advance(by: .seconds(60))
            bookmarks += 1
            #expect(await watch.waitFor(bookmarks))
        }
        #expect(watch.summary.last == "BOOKMARK \(version + 1)")
        #expect(!watch.isFinished)
        // At the timeout: a last bookmark, then the end.
        #expect(await eventually { clock.sleeping == 2 })
        clock.advance(by: .seconds(100_000))
        #expect(await eventually { watch.isFinished })
        #expect(watch.summary.last == "BOOKMARK \(version + 1)")
        #expect(watch.summary.allSatisfy { $0.hasPrefix("BOOKMARK") })
    }

    func pod(_ name: String, ip: String, ready: Bool = true) throws -> RegistryObject {
        let entry = try #require(Manifest.decode("""
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name), namespace: shop, labels: {app: web}}
            spec: {containers: [{name: app, image: nginx}]}
            status: {podIP: \(ip), conditions: [{type: Ready, status: "\(ready ? "True" : "False")"}]}
            """).first)
        return try entry.result.get()
    }

    /// The Endpoints and EndpointSlices the registry derives are watched as a cluster's
    /// controllers would write them: what kube-proxy's and CoreDNS's informers follow.
    @Test func derivedEndpointsAreWatched() async throws {
        let handler = try await Fixture.handler()
        let slices = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
        let listed = await Fixture.send(handler, "GET", slices)
        let version = try #require(listed.body["metadata"]?["resourceVersion"]?.stringValue)
        let watch = Collector(await Fixture.send(handler, "GET", slices, query: ["watch": "1", "resourceVersion": version]))
        let endpoints = Collector(await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/endpoints", query: ["watch": "1"]))
        #expect(await endpoints.waitFor(1))
        #expect(endpoints.summary == ["ADDED web"], "the current state, derived objects included")
        try await handler.registry.apply(pod("web-1", ip: "10.244.0.6"))
        try await handler.registry.apply(pod("web-v6", ip: "fd00::6"))  // not an endpoint of an IPv4 service
        try await handler.registry.apply(pod("web-1", ip: "10.244.0.6", ready: false))
        try await handler.registry.apply(service("api"))  // no selector: nothing derived
        try await handler.registry.delete(ObjectKey(.service, namespace: "shop", name: "web"))
        #expect(await watch.waitFor(3))
        #expect(watch.summary == ["MODIFIED web-ipv4", "MODIFIED web-ipv4", "DELETED web-ipv4"])
        let notReady = watch.all[1]["object"]?["endpoints"]
        #expect(notReady?.items?.last?["conditions"]?["ready"] == .bool(false), "\(notReady?.text ?? "")")
        // Each event carries the version of the change that made it, to resume from.
        let versions = watch.all.compactMap { $0["object"]?["metadata"]?["resourceVersion"]?.stringValue.flatMap { UInt64($0) } }
        #expect(versions == versions.sorted() && versions.last == handler.registry.resourceVersion)
        #expect(await endpoints.waitFor(4))
        #expect(endpoints.summary == ["ADDED web", "MODIFIED web", "MODIFIED web", "DELETED web"])

        // Resumed from before the watch's snapshot: what changed since is sent again, and what
        // its service no longer has is deleted by name.
        let resumed = Collector(await Fixture.send(handler, "GET", slices, query: ["watch": "1", "resourceVersion": version]))
        #expect(await resumed.waitFor(2))
        // Once, however many replayed changes touched the service; then live changes.
        let selecting = try #require(Manifest.decode("""
            apiVersion: v1
            kind: Service
            metadata: {name: web2, namespace: shop}
            spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
            """).first)
        try await handler.registry.apply(try selecting.result.get())
        #expect(await resumed.waitFor(3))
        #expect(resumed.summary == ["DELETED web-ipv4", "DELETED web-ipv6", "ADDED web2-ipv4"])
    }

    /// An event sent to many watches is encoded once: the others get the same bytes; the
    /// most recent events are kept, the oldest forgotten first.
    @Test func eventsAreEncodedOnceForEveryWatch() async throws {
        let cache = EncodedEvents()
        let key = ObjectKey(.service, namespace: "shop", name: "web")
        let made = Mutex(0)
        func line(_ version: UInt64, _ type: String = "MODIFIED") -> [UInt8] {
            cache.line(resourceVersion: version, type: type, key: key) {
                made.withLock { $0 += 1 }
                return Array("\(type) \(version)".utf8)
            }
        }
        #expect(line(7) == Array("MODIFIED 7".utf8))
        #expect(line(7) == Array("MODIFIED 7".utf8) && made.withLock { $0 } == 1, "the second watch copies the first's")
        #expect(line(7, "ADDED") == Array("ADDED 7".utf8) && made.withLock { $0 } == 2, "another type is another line")
        for version in 8..<(8 + UInt64(EncodedEvents.capacity)) { _ = line(version) }
        let before = made.withLock { $0 }
        _ = line(7)
        #expect(made.withLock { $0 } == before + 1, "the oldest was forgotten")
        // Two watches of one namespace get byte-identical lines for the same change.
        let handler = try await Fixture.handler()
        let version = String(handler.registry.resourceVersion)
        let a = Collector(await Fixture.send(handler, "GET", "/api/v1/namespaces/shop/services", query: ["watch": "1", "resourceVersion": version]))
        let b = Collector(await Fixture.send(handler, "GET", "/api/v1/services", query: ["watch": "1", "resourceVersion": version]))
        try await handler.registry.apply(service("shared"))
        #expect(await a.waitFor(1))
        #expect(await b.waitFor(1))
        #expect(a.all == b.all && a.summary == ["ADDED shared"])
    }

    @Test func aWatchIsAReadAndItsParametersAreChecked() async throws {
        let handler = try await Fixture.handler()
        let refused = await Fixture.send(handler, "GET", "/api/v1/services", query: ["watch": "true", "timeoutSeconds": "-1"])
        #expect(refused.code == 400 && refused.events == nil)
        let unknown = await Fixture.send(handler, "GET", "/api/v1/services", query: ["watch": "true", "fieldSelector": "spec.nodeName=x"])
        #expect(unknown.code == 400)
        #expect(await Fixture.send(handler, "GET", "/api/v1/services", query: ["watch": "true"], token: nil).code == 401)
    }
}
