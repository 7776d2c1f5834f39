public import DNSAuthority
public import DNSWire
import FoundationEssentials
public import Logging
import ServiceLifecycle
import Synchronization
import ZoneFile

/// The static zones of a directory: every `NAME.zone` file is the zone `NAME.` (so
/// `example.com.zone` is `example.com.` and `2.0.192.in-addr.arpa.zone` its reverse zone).
/// `reload()` reads the files that changed since the last load (by modification time and
/// size) and swaps the parsed zones into the catalog; a file that fails to parse or check keeps
/// its previous version and reports the error with file, line and column; a removed file
/// removes its zone. Other files (no `.zone` suffix, hidden, editor backups) are ignored.
public final class StaticZones: Sendable {
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public var file: String
        public var message: String
        public var description: String { message }
    }

    public struct Report: Sendable {
        public var loaded: [DomainName] = []
        public var removed: [DomainName] = []
        public var failed: [LoadError] = []
    }

    struct Entry: Sendable {
        var stamp: FileStamp
        var origin: DomainName
        var serial: UInt32?
    }

    public let directory: String
    let catalog: Catalog
    let state = Mutex<[String: Entry]>([:])
    let parser: ZoneParser

    public init(directory: String, catalog: Catalog, allowInclude: Bool = false) {
        self.directory = directory
        self.catalog = catalog
        parser = ZoneParser(options: .init(allowInclude: allowInclude))
    }

    /// The zone files in the directory with their stamps (empty when it does not exist), each
    /// taken after the stamp it was last loaded or seen with.
    func scan() -> [String: FileStamp] {
        let previous = state.withLock { $0 }
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: directory) else { return [:] }
        var out: [String: FileStamp] = [:]
        for name in names where name.hasSuffix(".zone") && !name.hasPrefix(".") && name.count > 5 {
            let path = FileStamp.join(directory, name)
            guard let stamp = FileStamp(path: path, previous: previous[path]?.stamp), !stamp.isDirectory else { continue }
            out[path] = stamp
        }
        return out
    }

    /// True when a file was added, changed or removed since the last reload.
    public var hasChanges: Bool {
        let files = scan()
        return state.withLock { entries in
            let changed = entries.count != files.count || files.contains { entries[$0.key]?.stamp != $0.value }
            // The same versions: the new stamps say whether they still need hashing.
            if !changed { for (path, stamp) in files { entries[path]?.stamp = stamp } }
            return changed
        }
    }

    /// Loads what changed; `force` re-reads every file (SIGHUP).
    @discardableResult
    public func reload(force: Bool = false) -> Report {
        let files = scan()
        var report = Report()
        var entries = state.withLock { $0 }
        for (path, stamp) in files.sorted(by: { $0.key < $1.key }) {
            if !force, entries[path]?.stamp == stamp {
                entries[path]?.stamp = stamp
                continue
            }
            let fileName = path.split(separator: "/").last.map(String.init) ?? path
            let originText = String(fileName.dropLast(5))
            let origin: DomainName
            do {
                origin = try DomainName(originText.hasSuffix(".") ? originText : originText + ".")
            } catch {
                report.failed.append(LoadError(file: path, message: "\(path): the file name does not name a zone: \(error)"))
                entries[path] = Entry(stamp: stamp, origin: .root, serial: nil)
                continue
            }
            do {
                let zone = try parser.load(file: path, origin: origin)
                // Two files for one zone: the first (by name) wins.
                if let other = entries.first(where: { $0.key != path && $0.value.origin == origin && $0.value.serial != nil }) {
                    report.failed.append(LoadError(file: path, message: "\(path): zone \(origin) is already loaded from \(other.key)"))
                    entries[path] = Entry(stamp: stamp, origin: origin, serial: nil)
                    continue
                }
                catalog.add(StaticAuthority(zone: zone))
                entries[path] = Entry(stamp: stamp, origin: origin, serial: zone.serial)
                report.loaded.append(origin)
            } catch {
                // The previous version (if any) stays served; the stamp is kept so the same
                // broken file is not re-read every second.
                report.failed.append(LoadError(file: path, message: "\(error)"))
                let previous = entries[path]
                entries[path] = Entry(stamp: stamp, origin: origin, serial: previous?.origin == origin ? previous?.serial : nil)
            }
        }
        for (path, entry) in entries where files[path] == nil {
            entries.removeValue(forKey: path)
            if entry.serial != nil, !entries.values.contains(where: { $0.origin == entry.origin && $0.serial != nil }) {
                catalog.remove(entry.origin)
                report.removed.append(entry.origin)
            }
        }
        state.withLock { $0 = entries }
        return report
    }

    /// Reloads and logs the outcome: each zone loaded with its serial, each failure with its
    /// precise error.
    @discardableResult
    public func reload(force: Bool = false, logger: Logger) -> Report {
        let report = reload(force: force)
        let serials = state.withLock { entries in Dictionary(entries.values.map { ($0.origin, $0.serial) }, uniquingKeysWith: { a, _ in a }) }
        for origin in report.loaded {
            logger.info("zone loaded", metadata: ["zone": "\(origin)", "serial": "\(serials[origin].flatMap { $0 }.map(String.init) ?? "?")"])
        }
        for origin in report.removed { logger.info("zone removed", metadata: ["zone": "\(origin)"]) }
        for failure in report.failed {
            logger.error("zone not loaded; the previous version (if any) stays served", metadata: ["error": "\(failure.message)"])
        }
        return report
    }

    public var origins: [DomainName] {
        state.withLock { entries in entries.values.filter { $0.serial != nil }.map(\.origin).sorted() }
    }
}
