#if canImport(Glibc)
import Glibc
#endif

/// What the watchers compare to notice that a file changed: everything that identifies a
/// version of it. Modification time and size alone miss two common changes: a rewrite of the
/// same size within one tick of the file system's clock, and a new version moved into place
/// with its time preserved (`rsync -t`, `tar`, `cp -p`). The device and inode change when a
/// file is replaced by a rename; the status-change time (ctime) changes on every write and
/// rename and cannot be set back by a user. Only a write within the same tick of the clock
/// that stamped the file can leave every stamp as it was, so a file is hashed whole while its
/// ctime is recent, and once more at the first look after that (to compare with the last hash);
/// a file left alone is only stat'ed, however often it is looked at.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var modified: timespec
    var changed: timespec
    var size: Int
    var isDirectory: Bool
    /// Whether the ctime was within `recentWindow` of the look's time: a later write in the
    /// same tick could still leave every stamp alike.
    var isRecent: Bool
    /// A hash of the contents, taken while the file is recent (and at the first look after);
    /// nil otherwise, for files above `hashedSize` and for directories.
    var contentHash: UInt64?

    /// Files up to this size are hashed when they must be.
    static let hashedSize = 1 << 20
    /// Far beyond any file system clock's tick (a jiffy, at most 10 ms).
    static let recentWindow: Int64 = 1_000_000_000

    /// The stamp of `path`, or nil when it cannot be stat'ed (missing, no permission).
    /// `previous` is the stamp of the last look, `now` the wall-clock time of this one.
    init?(path: String, previous: FileStamp? = nil, now: timespec = FileStamp.wallClock()) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        modified = info.st_mtim
        changed = info.st_ctim
        size = Int(info.st_size)
        isDirectory = info.st_mode & S_IFMT == S_IFDIR
        let age = Int64(now.tv_sec - changed.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec - changed.tv_nsec)
        isRecent = age < Self.recentWindow
        contentHash = nil
        let uncertain = isRecent || (previous.map { $0.isRecent && $0.sameStatus(as: self) } ?? false)
        if uncertain, !isDirectory, size <= Self.hashedSize { contentHash = Self.hash(path: path) }
    }

    /// Everything but the contents alike.
    func sameStatus(as other: FileStamp) -> Bool {
        device == other.device && inode == other.inode && size == other.size && isDirectory == other.isDirectory
            && modified.tv_sec == other.modified.tv_sec && modified.tv_nsec == other.modified.tv_nsec
            && changed.tv_sec == other.changed.tv_sec && changed.tv_nsec == other.changed.tv_nsec
    }

    /// The same version: every stamp alike, and the contents too where both looks hashed them.
    static func == (a: FileStamp, b: FileStamp) -> Bool {
        guard a.sameStatus(as: b) else { return false }
        guard let first = a.contentHash, let second = b.contentHash else { return true }
        return first == second
    }

    static func wallClock() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
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
            buffer.withUnsafeBytes { bytes in
                for byte in UnsafeRawBufferPointer(rebasing: bytes[0..<n]) { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
            }
        }
    }

    /// `directory` and `name` joined with one slash.
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
