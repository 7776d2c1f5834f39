import Foundation
import Testing

/// The daemon loads FoundationEssentials at most: Foundation itself would load
/// FoundationInternationalization and ICU, some 6 MB of resident code (see ARCHITECTURE.md).
@Suite struct LinkageTests {
    @Test func theDaemonDoesNotLinkFoundation() throws {
        let binary = try Data(contentsOf: Tool.executable)
        // Names of needed libraries sit NUL-terminated in the dynamic string table.
        #expect(binary.range(of: Data("libFoundationEssentials.so\0".utf8)) != nil, "the probe finds a library that is linked")
        for library in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            #expect(binary.range(of: Data("\(library)\0".utf8)) == nil, "\(library) is linked")
        }
    }
}
