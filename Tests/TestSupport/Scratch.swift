public import Foundation

/// Where tests write files and directories: under one directory per test process, removed when
/// the process exits, so that runs (and the ten of a stress run) leave nothing behind, even when
/// a test fails before its own clean-up. A process that is killed leaves that one directory,
/// named for its PID.
public enum Scratch {
    public static let root: URL = {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("clusterdns-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Scratch.root) }
        return root
    }()

    /// A new path, `NAME-UUID` plus `suffix`, that nothing has created yet.
    public static func url(_ name: String, suffix: String = "") -> URL {
        root.appendingPathComponent("\(name)-\(UUID().uuidString)\(suffix)")
    }

    /// A new empty directory named as `url` names it.
    public static func directory(_ name: String) throws -> URL {
        let directory = url(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}
