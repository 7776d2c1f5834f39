#if canImport(Glibc)
import Glibc
#endif

/// What the watchers compare to notice a changed file: its modification time and size (stat).
struct FileStamp: Equatable, Sendable {
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int
    var size: Int
    var isDirectory: Bool

    /// The stamp of `path`, or nil when it cannot be stat'ed (missing, no permission).
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        modifiedSeconds = Int(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        size = Int(info.st_size)
        isDirectory = info.st_mode & S_IFMT == S_IFDIR
    }

    /// `directory` and `name` joined with one slash.
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
