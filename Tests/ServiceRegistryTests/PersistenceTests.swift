import Foundation
import NetAddress
import Testing
import TestSupport
@testable import ServiceRegistry

func temporaryDirectory() -> String {
    let path = Scratch.url("clusterdns-state").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct PersistenceTests {
    @Test func restartKeepsObjectsAllocationsAndVersions() throws {
        let directory = temporaryDirectory()
        let config = RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/24")], loadBalancerPool: [prefix("192.0.2.0/28")])
        var before: [ObjectKey: RegistryObject] = [:]
        do {
            let registry = try Registry(configuration: config, storage: SQLiteStorage(directory: directory))
            try registry.apply(service("a"))
            try registry.apply(service("np", type: .nodePort))
            try registry.apply(service("lb", type: .loadBalancer))
            try registry.apply(service("gone"))
            try registry.apply(pod("p", labels: ["app": "a"], ip: "10.244.0.9"))
            try registry.apply(service("a", selector: ["app": "a"]))
            try registry.delete(ObjectKey(.service, namespace: "default", name: "gone"))
            #expect(registry.resourceVersion == 7)
            for (key, value) in registry.snapshot().objects { before[key] = value }
        }
        let registry = try Registry(configuration: config, storage: SQLiteStorage(directory: directory))
        let after = registry.snapshot()
        #expect(after.resourceVersion == 7)
        #expect(after.objects.count == before.count)
        for (key, value) in before { #expect(after.objects[key] == value, "\(key)") }
        #expect(after.endpoints(of: ObjectKey(.service, namespace: "default", name: "a"))?.endpoints.count == 1)
        // New allocations avoid the restored ones; the deleted service's address is free again.
        try registry.apply(service("new"))
        try registry.apply(service("new-lb", type: .loadBalancer))
        let all = registry.snapshot().services
        #expect(Set(all.map(\.spec.clusterIP)).count == all.count)
        #expect(Set(all.flatMap(\.status.loadBalancerIngress)).count == 2)
        #expect(registry.resourceVersion == 9)
    }

    @Test func aFailedChangeIsNotStored() throws {
        let directory = temporaryDirectory()
        let config = RegistryConfiguration(serviceCIDRs: [prefix("10.96.0.0/30")])
        do {
            let registry = try Registry(configuration: config, storage: SQLiteStorage(directory: directory))
            try registry.apply(service("a"))
            try registry.apply(service("b"))
            #expect(throws: RegistryError.self) { try registry.apply(service("c")) }
        }
        let registry = try Registry(configuration: config, storage: SQLiteStorage(directory: directory))
        #expect(registry.snapshot().services.map(\.metadata.name) == ["a", "b"])
    }

    /// A state directory written by a newer build, or holding a row that does not decode: a
    /// clear error naming the file (and the object), never a registry that silently lacks it.
    @Test func aFutureSchemaAndACorruptRowAreClearErrors() throws {
        func edit(_ directory: String, _ sql: String) throws {
            let script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", script, directory + "/registry.sqlite", sql]
            try process.run()
            process.waitUntilExit()
            try #require(process.terminationStatus == 0, "python3's sqlite3 could not edit the database")
        }
        let future = temporaryDirectory()
        _ = try Registry(storage: SQLiteStorage(directory: future))
        try edit(future, "UPDATE meta SET value = 2 WHERE key = 'schema'")
        #expect(throws: RegistryError.storage("\(future)/registry.sqlite has schema version 2; this build reads version 1")) {
            _ = try SQLiteStorage(directory: future)
        }
        let corrupt = temporaryDirectory()
        do {
            let registry = try Registry(storage: SQLiteStorage(directory: corrupt))
            try registry.apply(service("good"))
            try registry.apply(service("bad"))
        }
        try edit(corrupt, "UPDATE objects SET body = X'7B6E6F74' WHERE name = 'bad'")
        #expect { _ = try Registry(storage: SQLiteStorage(directory: corrupt)) } throws: { error in
            "\(error)".contains("\(corrupt)/registry.sqlite: the stored object Service/default/bad does not decode")
        }
        // A row that decodes to an object that is not valid (its port out of range).
        let invalid = temporaryDirectory()
        do {
            let registry = try Registry(storage: SQLiteStorage(directory: invalid))
            try registry.apply(service("good"))
            try registry.apply(service("bad"))
        }
        try edit(invalid, "UPDATE objects SET body = replace(CAST(body AS TEXT), '\"port\":80', '\"port\":70000') WHERE name = 'bad'")
        #expect { _ = try Registry(storage: SQLiteStorage(directory: invalid)) } throws: { error in
            "\(error)".contains("bad") && "\(error)".contains("70000")
        }
    }

    @Test func unreadableStateIsAClearError() throws {
        let directory = temporaryDirectory()
        try Data("not a database".utf8).write(to: URL(fileURLWithPath: directory + "/registry.sqlite"))
        #expect { try SQLiteStorage(directory: directory) } throws: { "\($0)".hasPrefix("storage error:") }
    }
}

/// A store that fails when told to, to check that a failed commit changes nothing.
final class FailingStorage: RegistryStorage, @unchecked Sendable {
    var fail = false
    func load() -> (objects: [RegistryObject], resourceVersion: UInt64) { ([], 0) }
    func commit(upsert object: RegistryObject?, delete key: ObjectKey?, resourceVersion: UInt64) throws(RegistryError) {
        if fail { throw .storage("disk full") }
    }
    func commit(upserts objects: [RegistryObject], resourceVersion: UInt64) throws(RegistryError) {
        if fail { throw .storage("disk full") }
    }
}

@Suite struct BatchApplyTests {
    @Test func appliesInDependencyOrderAndSkipsTheInvalid() throws {
        let registry = try Registry()
        let results = registry.apply(contentsOf: [
            pod("p", labels: ["app": "a"], node: "n"),
            service("bad", ports: [Service.Port(port: 70000)]),
            .node(Node(metadata: ObjectMeta(name: "n"), podCIDRs: ["10.244.3.0/24"])),
            service("a", selector: ["app": "a"]),
        ])
        #expect(results.map { (try? $0.get())?.rawValue ?? "error" } == ["created", "error", "created", "created"])
        // The node came first, so the pod got an address from it.
        #expect(registry.snapshot().endpoints(of: ObjectKey(.service, namespace: "default", name: "a"))?.endpoints
                    .map { $0.addresses.map(\.description) } == [["10.244.3.2"]])
    }

    @Test func aFailedCommitChangesNothing() async throws {
        let storage = FailingStorage()
        let registry = try Registry(storage: storage)
        try await registry.apply(service("first"))
        let (before, events) = registry.watchWithSnapshot()
        storage.fail = true
        let results = await registry.apply(contentsOf: [service("x"), service("y")])
        #expect(results.allSatisfy { if case .failure(.storage) = $0 { true } else { false } })
        #expect(throws: RegistryError.storage("disk full")) { try registry.apply(service("z")) }
        #expect(registry.snapshot().services.map(\.metadata.name) == ["first"])
        #expect(registry.resourceVersion == before.resourceVersion)
        storage.fail = false
        try await registry.apply(service("x"))
        #expect(registry.service("x")?.spec.clusterIP == "10.96.0.2", "no address was leaked by the failed batch")
        for try await event in events {
            #expect(event.object.metadata.name == "x", "nothing was published for the failed changes")
            break
        }
    }
}

@Suite struct ObjectUIDTests {
    @Test func theRegistryGivesEachObjectARandomUUIDAndKeepsIt() throws {
        let registry = try Registry()
        try registry.apply(service("a"))
        try registry.apply(service("b"))
        let key = ObjectKey(.service, namespace: "default", name: "a")
        let first = try #require(registry.snapshot().objects[key]?.metadata.uid)
        let other = try #require(registry.snapshot().objects[ObjectKey(.service, namespace: "default", name: "b")]?.metadata.uid)
        #expect(first != other)
        for uid in [first, other] {
            let parsed = try #require(UUID(uuidString: uid), "\(uid)")
            #expect(parsed.uuidString.lowercased() == uid)
            let bytes = Array(uid.utf8)
            #expect(bytes[14] == UInt8(ascii: "4"), "version 4: \(uid)")
            #expect("89ab".utf8.contains(bytes[19]), "RFC 4122 variant: \(uid)")
        }
        try registry.apply(service("a", selector: ["app": "a"]))
        #expect(registry.snapshot().objects[key]?.metadata.uid == first)
    }

    @Test(arguments: [
        ("0d6f1c2e-8a3b-4c5d-9e7f-001122334455", true),
        ("00000000-0000-0000-0000-000000000000", true),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", true),
        ("0D6F1C2E-8A3B-4C5D-9E7F-001122334455", false),  // upper case stays text: reads back as given
        ("0d6f1c2e-8a3b-4c5d-9e7f-00112233445", false),
        ("0d6f1c2e8a3b-4c5d-9e7f-0011-22334455", false),
        ("not-a-uuid", false),
        ("", false),
    ])
    func uidsReadBackAsGiven(_ text: String, _ compact: Bool) {
        let uid = ObjectUID(text)
        #expect(uid.description == text)
        if case .uuid = uid { #expect(compact) } else { #expect(!compact) }
        let meta = ObjectMeta(name: "x", uid: text)
        #expect(meta.uid == text)
    }

    @Test func uidsSurviveJSON() throws {
        for text in ["0d6f1c2e-8a3b-4c5d-9e7f-001122334455", "custom"] {
            let data = try JSONEncoder().encode(ObjectMeta(name: "x", uid: text))
            #expect(String(decoding: data, as: UTF8.self).contains("\"uid\":\"\(text)\""))
            #expect(try JSONDecoder().decode(ObjectMeta.self, from: data).uid == text)
        }
    }
}
