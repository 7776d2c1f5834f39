#if canImport(Glibc)
import Glibc
#endif

/// What the watchers compare to notice that a file changed: everything that identifies a
/// version of it. Modification time and size alone miss two common changes: a rewrite of the
/// same size within one tick of the file system's clock, and a new version moved into place
/// with its time preserved (`rsync -t`, `tar`, `cp -p`). The device and inode change when a
/// file is replaced by a rename; the status-change time (ctime) changes on every write and
/// rename and cannot be set back by a user; and a file small enough is hashed whole, so that
/// two versions that share every stamp still differ.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var modified: timespec
    var changed: timespec
    var size: Int
    var isDirectory: Bool
    /// A hash of the contents for files up to `hashedSize`; nil for larger ones and directories.
    var contentHash: UInt64?

    /// Files up to this size are hashed at every look (a zone file or a manifest of a few
    /// hundred services reads in well under a millisecond).
    static let hashedSize = 1 << 20

    /// The stamp of `path`, or nil when it cannot be stat'ed (missing, no permission).
    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        modified = info.st_mtim
        changed = info.st_ctim
        size = Int(info.st_size)
        isDirectory = info.st_mode & S_IFMT == S_IFDIR
        contentHash = !isDirectory && size <= Self.hashedSize ? Self.hash(path: path) : nil
    }

    static func == (a: FileStamp, b: FileStamp) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size && a.isDirectory == b.isDirectory
            && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
            && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
            && a.contentHash == b.contentHash
    }

    /// FNV-1a over the file's bytes (a change detector, not a defence); nil when it cannot be read.
    static func hash(path: String) -> UInt64? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return h }
            for byte in buffer[0..<n] { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
    }

    /// `directory` and `name` joined with one slash.
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
