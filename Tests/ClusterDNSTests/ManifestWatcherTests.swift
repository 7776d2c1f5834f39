import ClusterDNS
import DNSWire
import DispatchSockets
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// Keeps the log lines a test needs to read.
final class CapturedLog: Sendable {
    let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.lines.withLock { $0.append((event.message.description, event.metadata ?? [:])) }
        }
    }

    var logger: Logger { Logger(label: "captured") { _ in Handler(log: self) } }

    func metadata(of message: String) -> [Logger.Metadata] {
        lines.withLock { $0.filter { $0.message == message }.map(\.metadata) }
    }
}

@Suite struct ManifestWatcherTests {
    func services(_ names: some Sequence<String>) -> String {
        names.map { "apiVersion: v1\nkind: Service\nmetadata: {name: \($0), namespace: default}\nspec: {ports: [{port: 80}]}\n" }
            .joined(separator: "---\n")
    }

    /// A Service appended to a small manifest beside a large one is served, and only the file
    /// that changed is read again (the large one's 2,000 services are not decoded again).
    @Test func onlyTheChangedFileIsReadAgain() async throws {
        let directory = Scratch.url("manifests").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try services((0..<2000).map { "big-\($0)" }).write(toFile: directory + "/big.yaml", atomically: true, encoding: .utf8)
        let small = directory + "/small.yaml"
        try services(["small-0"]).write(toFile: small, atomically: true, encoding: .utf8)
        let log = CapturedLog()
        var configuration = ClusterDNSConfiguration(dnsAddresses: [SocketAddress(parsing: "127.0.0.1:0")!], manifests: [directory])
        configuration.zonesDirectory = nil
        let dns = try ClusterDNSService(configuration: configuration, logger: log.logger)
        let group = ServiceGroup(services: [dns], logger: log.logger)
        let running = Task { try await group.run() }
        let port = try #require(await dns.server.boundAddresses.first).port
        func answered(_ name: String) async throws -> Bool {
            let query = Message(header: Header(id: 4), questions: [Question(name: try DomainName(name), type: .a)]).encoded()
            return await eventually {
                guard let reply = exchange(query, port: port) else { return false }
                return (try? Message(decoding: reply))?.answers.isEmpty == false
            }
        }
        #expect(try await answered("big-1999.default.svc.cluster.local."))
        #expect(try await answered("small-0.default.svc.cluster.local."))

        let handle = try #require(FileHandle(forWritingAtPath: small))
        handle.seekToEndOfFile()
        handle.write(Data(("---\n" + services(["small-1"])).utf8))
        try handle.close()
        #expect(try await answered("small-1.default.svc.cluster.local."))
        let reloads = log.metadata(of: "manifests re-applied")
        #expect(reloads.count == 1)
        #expect(reloads.first?["files"]?.description == small, "\(reloads)")
        #expect(reloads.first?["changed"]?.description == "1")
        await group.triggerGracefulShutdown()
        try await running.value
    }
}
