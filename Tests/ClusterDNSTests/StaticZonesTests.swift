import ClusterDNS
import DNSAuthority
import DNSWire
import Foundation
import Testing

@Suite struct StaticZonesTests {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "zones-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func zone(serial: Int, address: String) -> String {
        """
        $TTL 60
        @   IN SOA ns hostmaster \(serial) 7200 900 1209600 60
            IN NS ns
        ns  IN A 192.0.2.53
        www IN A \(address)
        """
    }

    func lookup(_ catalog: Catalog, _ name: String) throws -> Lookup? {
        let question = Question(name: try DomainName(name), type: .a)
        return catalog.authority(for: question.name)?.lookup(question)
    }

    func address(_ catalog: Catalog, _ name: String) throws -> String? {
        guard case .answer(let records, _) = try lookup(catalog, name) else { return nil }
        return records.first?.data.presentation
    }

    @Test func loadsChangesKeepsTheOldZoneOnErrorAndRemoves() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/test.example.zone"
        try zone(serial: 1, address: "192.0.2.1").write(toFile: file, atomically: true, encoding: .utf8)
        // Ignored: not *.zone, hidden, backups.
        try "garbage".write(toFile: directory + "/README", atomically: true, encoding: .utf8)
        try "garbage".write(toFile: directory + "/.hidden.zone", atomically: true, encoding: .utf8)
        try "garbage".write(toFile: directory + "/test.example.zone~", atomically: true, encoding: .utf8)

        let catalog = Catalog()
        let zones = StaticZones(directory: directory, catalog: catalog)
        var report = zones.reload()
        #expect(report.loaded.map(\.description) == ["test.example."])
        #expect(report.failed.isEmpty)
        #expect(try address(catalog, "www.test.example.") == "192.0.2.1")
        #expect(!zones.hasChanges)

        // A change is seen and loaded.
        try zone(serial: 2, address: "192.0.2.2").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(zones.hasChanges)
        report = zones.reload()
        #expect(report.loaded.count == 1)
        #expect(try address(catalog, "www.test.example.") == "192.0.2.2")

        // A broken edit: the error names the file, line and column; the old zone stays served.
        try (zone(serial: 3, address: "192.0.2.3") + "\nbad IN A 999.1.1.1\n").write(toFile: file, atomically: true, encoding: .utf8)
        report = zones.reload()
        #expect(report.loaded.isEmpty)
        let failure = try #require(report.failed.first)
        #expect(failure.message.hasPrefix("\(file):6:"), "\(failure.message)")
        #expect(try address(catalog, "www.test.example.") == "192.0.2.2")
        // Not re-read every time while it stays broken.
        #expect(!zones.hasChanges)

        // Fixed: loaded again; removed: gone.
        try zone(serial: 4, address: "192.0.2.4").write(toFile: file, atomically: true, encoding: .utf8)
        zones.reload()
        #expect(try address(catalog, "www.test.example.") == "192.0.2.4")
        try FileManager.default.removeItem(atPath: file)
        report = zones.reload()
        #expect(report.removed.map(\.description) == ["test.example."])
        #expect(try lookup(catalog, "www.test.example.") == nil)
    }

    @Test func aZoneWhoseApexLacksSOAIsRefusedWithItsReason() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "$TTL 60\nwww IN A 192.0.2.1\n".write(toFile: directory + "/nosoa.example.zone", atomically: true, encoding: .utf8)
        let catalog = Catalog()
        let report = StaticZones(directory: directory, catalog: catalog).reload()
        #expect(report.loaded.isEmpty)
        #expect(report.failed.first?.message.contains("nosoa.example.zone") == true, "\(report.failed.map(\.message))")
        #expect(catalog.zones.isEmpty)
    }
}
