import DNSWire
import Foundation
import Testing
@testable import ZoneFile

/// The zones shipped in `zones/` load, and every zone survives print → parse unchanged.
@Suite struct ExampleZoneTests {
    static let zonesDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("zones")

    static var zoneFiles: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: zonesDirectory.path)) ?? []
        return names.filter { $0.hasSuffix(".zone") }.sorted()
    }

    @Test func thereAreExampleZones() {
        #expect(Self.zoneFiles.contains("example.com.zone"))
    }

    @Test(arguments: zoneFiles)
    func loadsAndRoundTrips(_ file: String) throws {
        let origin = try DomainName(String(file.dropLast(5)) + ".")
        let zone = try ZoneParser().load(file: Self.zonesDirectory.appendingPathComponent(file).path, origin: origin)
        #expect(zone.records.count > 2)
        let printed = zone.presentation
        let again = try ZoneParser().parse(printed, origin: origin)
        #expect(again == zone)
        #expect(again.presentation == printed)
    }

    @Test func exampleComContent() throws {
        let zone = try ZoneParser().load(file: Self.zonesDirectory.appendingPathComponent("example.com.zone").path,
                                         origin: try DomainName("example.com."))
        #expect(zone.serial == 2026112401)
        #expect(zone.soa.minimum == 300)
        let lines = Set(zone.records.map(\.description))
        for expected in [
            "example.com. 3600 IN MX 10 mail.example.com.",
            "api.example.com. 60 IN A 192.0.2.21",
            "_https._tcp.api.example.com. 3600 IN SRV 0 50 443 api.example.com.",
            "www.example.com. 3600 IN CNAME example.com.",
            "ns.lab.example.com. 3600 IN A 192.0.2.99",
            "example.com. 3600 IN CAA 0 issue \"letsencrypt.org\"",
        ] {
            #expect(lines.contains(expected), "\(expected)")
        }
    }

    @Test func randomZonesRoundTrip() throws {
        // Owners and data with escapes, odd bytes and every supported type.
        let origin = try DomainName("odd\\.zone.example.")
        let text = soaAndNS.replacingOccurrences(of: "ns.example.", with: "ns.odd\\.zone.example.")
            + """
            \\000\\255.x A 192.0.2.1
            "quoted-owner" TXT "\\009tab" ""
            sp\\032ace CAA 128 tbs "\\"\\\\"
            u TYPE300 \\# 3 000102
            w 0 AAAA ::ffff:192.0.2.1
            """
        let zone = try ZoneParser().parse(text, origin: origin)
        let again = try ZoneParser().parse(zone.presentation, origin: origin)
        #expect(again == zone)
    }
}
