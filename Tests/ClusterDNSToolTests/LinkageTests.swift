import Foundation
import Testing

/// The daemon's own code uses FoundationEssentials at most: Foundation itself brings
/// FoundationInternationalization and ICU, some 8 MB of resident pages (see ARCHITECTURE.md).
/// swift-protobuf (the etcd client's messages) imports Foundation in one file, so the libraries
/// are linked; no symbol of theirs may be used, so that they go once that import does.
@Suite struct LinkageTests {
    @Test func theDaemonUsesNothingOfFoundation() throws {
        let result = try Tool.runRaw("/usr/bin/env", ["nm", "-D", "--undefined-only", Tool.executable.path])
        #expect(result.status == 0, "nm (binutils) reads the binary: \(result.stderr)")
        let symbols = result.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
        #expect(symbols.contains { $0.contains("20FoundationEssentials") }, "the probe finds symbols of a library that is used")
        // Swift's mangling names a module by its length and name: 10Foundation, 26FoundationInternationalization.
        let used = symbols.filter { $0.contains("10Foundation") || $0.contains("26FoundationInternationalization") }
        #expect(used.isEmpty, "symbols of Foundation used (a String method resolved to Foundation's extension?): \(used.prefix(5))")
    }
}
