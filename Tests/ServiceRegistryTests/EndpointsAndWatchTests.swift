import NetAddress
import Testing
@testable import ServiceRegistry

extension ResolvedEndpoint {
    /// `10.244.0.5 ready web-0 http=8080` style summary for table comparisons.
    var summary: String {
        var parts = [addresses.map(\.description).joined(separator: ","), isReady ? "ready" : "not-ready"]
        if !hostname.isEmpty { parts.append("host=\(hostname)") }
        parts += ports.map { "\($0.name)=\($0.port)/\($0.protocol.rawValue)" }
        return parts.joined(separator: " ")
    }
}

func endpoints(_ registry: Registry, _ name: String, namespace: String = "default") -> [String] {
    registry.snapshot().endpoints(of: ObjectKey(.service, namespace: namespace, name: name))?.endpoints.map(\.summary) ?? []
}

@Suite struct EndpointsControllerTests {
    @Test func selectorsReadinessAndNamedPorts() throws {
        let registry = try Registry()
        try registry.apply(service("web", ports: [Service.Port(name: "http", port: 80, targetPort: .string("http")),
                                                 Service.Port(name: "admin", port: 9000, targetPort: .int(9001))],
                                   selector: ["app": "web"]))
        try registry.apply(pod("web-0", labels: ["app": "web", "tier": "fe"], ip: "10.244.0.5", hostname: "web-0", subdomain: "web",
                               ports: [Pod.ContainerPort(name: "http", containerPort: 8080)]))
        try registry.apply(pod("web-1", labels: ["app": "web"], ip: "10.244.0.6", ready: false,
                               ports: [Pod.ContainerPort(name: "http", containerPort: 8081)]))
        try registry.apply(pod("web-2", labels: ["app": "web"], ip: "10.244.0.7", ports: []))  // no named port
        try registry.apply(pod("other", labels: ["app": "db"], ip: "10.244.0.8"))
        try registry.apply(pod("elsewhere", namespace: "prod", labels: ["app": "web"], ip: "10.244.0.9"))
        try registry.apply(pod("no-ip", labels: ["app": "web"]))
        #expect(endpoints(registry, "web") == [
            "10.244.0.5 ready host=web-0 http=8080/TCP admin=9001/TCP",
            "10.244.0.6 not-ready http=8081/TCP admin=9001/TCP",
            "10.244.0.7 ready admin=9001/TCP",
        ])
    }

    @Test func publishNotReadyAddresses() throws {
        let registry = try Registry()
        try registry.apply(service("db", clusterIP: "None", selector: ["app": "db"]) { $0.publishNotReadyAddresses = true })
        try registry.apply(pod("db-0", labels: ["app": "db"], ip: "10.244.1.1", ready: false))
        #expect(endpoints(registry, "db") == ["10.244.1.1 ready http=80/TCP"])
    }

    @Test func followsPodAndServiceChanges() throws {
        let registry = try Registry()
        try registry.apply(service("web", selector: ["app": "web"]))
        try registry.apply(pod("p", labels: ["app": "web"], ip: "10.244.0.5"))
        #expect(endpoints(registry, "web").count == 1)
        try registry.apply(pod("p", labels: ["app": "other"], ip: "10.244.0.5"))
        #expect(endpoints(registry, "web").isEmpty, "relabelled away")
        try registry.apply(service("web", selector: ["app": "other"]))
        #expect(endpoints(registry, "web").count == 1, "selector changed to follow it")
        try registry.delete(ObjectKey(.pod, namespace: "default", name: "p"))
        #expect(endpoints(registry, "web").isEmpty)
    }

    @Test func slicesForServicesWithoutSelector() throws {
        let registry = try Registry()
        try registry.apply(service("ext"))
        var slice = EndpointSlice(metadata: ObjectMeta(name: "ext-abc", namespace: "default",
                                                       labels: ["kubernetes.io/service-name": "ext"]))
        slice.endpoints = [
            EndpointSlice.Endpoint(addresses: ["192.0.2.7"], hostname: "a"),
            EndpointSlice.Endpoint(addresses: ["192.0.2.8"], conditions: .init(ready: false, serving: true, terminating: true)),
        ]
        slice.ports = [EndpointPort(name: "https", port: 443)]
        try registry.apply(.endpointSlice(slice))
        #expect(endpoints(registry, "ext") == ["192.0.2.7 ready host=a https=443/TCP", "192.0.2.8 not-ready https=443/TCP"])
        let terminating = registry.snapshot().endpoints(of: ObjectKey(.service, namespace: "default", name: "ext"))?.endpoints[1]
        #expect(terminating?.isTerminating == true && terminating?.isServing == true)
    }

    @Test func legacyEndpointsWhenNoSlices() throws {
        let registry = try Registry()
        try registry.apply(service("legacy"))
        try registry.apply(.endpoints(Endpoints(metadata: ObjectMeta(name: "legacy", namespace: "default"), subsets: [
            Endpoints.Subset(addresses: [Endpoints.Address(ip: "192.0.2.1")], notReadyAddresses: [Endpoints.Address(ip: "192.0.2.2")],
                             ports: [EndpointPort(name: "http", port: 8080)]),
        ])))
        #expect(endpoints(registry, "legacy") == ["192.0.2.1 ready http=8080/TCP", "192.0.2.2 not-ready http=8080/TCP"])
    }

    @Test func podsGetAddressesFromTheirNodesCIDR() throws {
        let registry = try Registry()
        try registry.apply(.node(Node(metadata: ObjectMeta(name: "node-a"), podCIDRs: ["10.244.1.0/24"])))
        try registry.apply(pod("a", labels: [:], node: "node-a"))
        try registry.apply(pod("b", labels: [:], ip: "10.244.1.3", node: "node-a"))
        try registry.apply(pod("c", labels: [:], node: "node-a"))
        func ip(_ name: String) -> String? {
            if case .pod(let p)? = registry.get(ObjectKey(.pod, namespace: "default", name: name)) { return p.status.podIP }
            return nil
        }
        #expect(ip("a") == "10.244.1.2", "the first host is the bridge's")
        #expect(ip("c") == "10.244.1.4")
        #expect { try registry.apply(pod("d", labels: [:], ip: "10.244.1.3", node: "node-a")) } throws: {
            "\($0)".contains("already in use by another pod on node node-a")
        }
    }
}

@Suite struct WatchTests {
    @Test func ordersEventsWithIncreasingVersions() async throws {
        let registry = try Registry()
        let (snapshot, events) = registry.watchWithSnapshot()
        #expect(snapshot.resourceVersion == 0)
        try await registry.apply(service("a", selector: ["app": "a"]))
        try await registry.apply(pod("p", labels: ["app": "a"], ip: "10.244.0.1"))
        try await registry.apply(service("a", selector: ["app": "a"]))  // unchanged: no event
        try await registry.delete(ObjectKey(.pod, namespace: "default", name: "p"))
        var seen: [String] = []
        for try await event in events {
            seen.append("\(event.resourceVersion) \(event.change.rawValue) \(event.object.key) \(event.endpointsChanged.map(\.name))")
            if seen.count == 3 { break }
        }
        #expect(seen == [
            "1 ADDED Service default/a []",
            "2 ADDED Pod default/p [\"a\"]",
            "3 DELETED Pod default/p [\"a\"]",
        ])
    }

    @Test func resumesFromAVersion() async throws {
        let registry = try Registry()
        for i in 0..<5 { try await registry.apply(service("s\(i)")) }
        var versions: [UInt64] = []
        for try await event in registry.watch(from: 3) {
            versions.append(event.resourceVersion)
            if versions.count == 2 { break }
        }
        #expect(versions == [4, 5])
    }

    @Test func tooOldVersionExpires() async throws {
        let registry = try Registry()
        for i in 0..<(Registry.historyLimit + 10) { try await registry.apply(service("s\(i)", clusterIP: "")) }
        await #expect(throws: WatchExpired.self) {
            for try await _ in registry.watch(from: 1) {}
        }
    }

    /// A watcher that does not read is cut off once its buffer is full (it must re-list), and
    /// writers never wait for it: the events it has are delivered, then `WatchExpired`.
    @Test func aWatcherThatFallsBehindIsCutOffWithoutBlockingWriters() async throws {
        var configuration = RegistryConfiguration()
        configuration.watcherBuffer = 100
        let registry = try Registry(configuration: configuration)
        let events = registry.watch()  // not read while the writes go on
        let reader = registry.watch()
        for i in 0..<2000 { try await registry.apply(service("s\(i)")) }
        #expect(registry.resourceVersion == 2000, "no write waited")
        var received = 0
        var cutOff: WatchExpired? = nil
        do {
            for try await _ in events { received += 1 }
        } catch let error as WatchExpired {
            cutOff = error
        }
        #expect(received == 100, "the buffered events, then the cut")
        #expect(cutOff?.requested == 100, "\(String(describing: cutOff))")
        // Another watcher's buffer is its own: it too was cut at 100, independently.
        var second = 0
        do { for try await _ in reader { second += 1 } } catch is WatchExpired {}
        #expect(second == 100)
    }
}
