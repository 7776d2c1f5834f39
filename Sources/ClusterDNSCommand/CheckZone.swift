import ArgumentParser
import DNSWire
import ZoneFile
#if canImport(Glibc)
import Glibc
#endif

/// `clusterdns check-zone`: loads zone files the way the server will and reports, as
/// named-checkzone does, either a one-line summary per zone or the precise error.
struct CheckZone: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-zone",
        abstract: "Check RFC 1035 zone files and print a summary line per zone.",
        discussion: """
            Each FILE is a zone file, or a directory whose *.zone files are all checked. \
            The zone's name comes from --origin, or else from the file name (example.com.zone \
            is the zone example.com.). Exits non-zero if any zone fails to load.
            """
    )

    @Argument(help: "Zone files or directories of *.zone files.")
    var paths: [String] = ["zones"]

    @Option(help: "The zone's origin (name), when it cannot be taken from the file name.")
    var origin: String?

    @Flag(help: "Allow $INCLUDE directives (relative to the including file).")
    var allowInclude = false

    @Flag(name: .customLong("print"), help: "Print each zone in canonical presentation format.")
    var printZone = false

    func run() throws {
        var files: [String] = []
        for path in paths {
            if isDirectory(path) {
                files += zoneFiles(in: path)
            } else {
                files.append(path)
            }
        }
        if files.isEmpty {
            printError("no zone files found in \(paths.joined(separator: " "))")
            throw ExitCode(1)
        }
        let parser = ZoneParser(options: .init(allowInclude: allowInclude))
        var failures = 0
        for file in files {
            let zoneName: DomainName
            do {
                zoneName = try Self.zoneName(for: file, origin: origin)
            } catch {
                printError("\(file): \(error)")
                failures += 1
                continue
            }
            do {
                let zone = try parser.load(file: file, origin: zoneName)
                print("zone \(zone.origin): loaded \(zone.records.count) records, serial \(zone.serial)")
                if printZone { print(zone.presentation, terminator: "") }
            } catch {
                printError("zone \(zoneName): \(error)")
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }

    /// `--origin`, or the file name without its `.zone` suffix.
    static func zoneName(for file: String, origin: String?) throws -> DomainName {
        if let origin {
            do {
                return try DomainName(unicode: origin.hasSuffix(".") ? origin : origin + ".")
            } catch {
                throw ValidationError("--origin: \(error)")
            }
        }
        let base = file.split(separator: "/").last.map(String.init) ?? file
        guard base.hasSuffix(".zone"), base.count > 5 else {
            throw ValidationError("cannot tell the zone's name from the file name; name it NAME.zone or pass --origin")
        }
        let name = String(base.dropLast(5))
        do {
            return try DomainName(name == "root" ? "." : name + ".")
        } catch {
            throw ValidationError("the file name does not give a zone name: \(error)")
        }
    }
}

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Writes one line to standard output at once, bypassing stdio's buffer.
func writeLine(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
}

func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}

/// The `*.zone` files of a directory, sorted by name.
func zoneFiles(in directory: String) -> [String] {
    guard let dir = opendir(directory) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name.hasSuffix(".zone") && !name.hasPrefix(".") { names.append(name) }
    }
    let base = directory.hasSuffix("/") ? directory : directory + "/"
    return names.sorted().map { base + $0 }
}
