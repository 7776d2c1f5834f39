import ClusterDNS
import DNSAuthority
import DNSWire
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct StaticZonesTests {
    func temporaryDirectory() throws -> String {
        let path = Scratch.url("zones").path
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

    /// Sets a file's access and modification times (as `touch -d`, `rsync -t` and `cp -p` do).
    func setTimes(_ path: String, _ time: timespec) {
        var times = [time, time]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    func modificationTime(_ path: String) -> timespec {
        var info = stat()
        _ = stat(path, &info)
        return info.st_mtim
    }

    /// Changes a version stamp misses if it is only the modification time and the size: the
    /// same size rewritten in place with the old time put back, and a new version of the same
    /// size moved into place with its time preserved. Both must be seen (no SIGHUP needed).
    @Test func changesOfTheSameSizeAndTimeAreSeen() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/test.example.zone"
        try zone(serial: 1, address: "192.0.2.1").write(toFile: file, atomically: false, encoding: .utf8)
        let time = modificationTime(file)
        let catalog = Catalog()
        let zones = StaticZones(directory: directory, catalog: catalog)
        zones.reload()
        #expect(try address(catalog, "www.test.example.") == "192.0.2.1")
        #expect(!zones.hasChanges)

        // In place, same size, the time set back.
        try zone(serial: 2, address: "192.0.2.2").write(toFile: file, atomically: false, encoding: .utf8)
        setTimes(file, time)
        #expect(modificationTime(file).tv_sec == time.tv_sec && modificationTime(file).tv_nsec == time.tv_nsec)
        #expect(zones.hasChanges)
        zones.reload()
        #expect(try address(catalog, "www.test.example.") == "192.0.2.2")

        // Moved into place (a new inode), same size, the time preserved.
        let staged = directory + "/.staged"
        try zone(serial: 3, address: "192.0.2.3").write(toFile: staged, atomically: false, encoding: .utf8)
        setTimes(staged, time)
        #expect(rename(staged, file) == 0)
        #expect(zones.hasChanges)
        zones.reload()
        #expect(try address(catalog, "www.test.example.") == "192.0.2.3")
        #expect(!zones.hasChanges)
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
