#if canImport(Glibc)
import Glibc
#endif

/// Files the API writes that may hold secrets (the kubeconfig's token, the TLS key): written to
/// a temporary name, synced, then renamed over the old one, so a reader never sees half of one.
public enum SecretFile {
    /// Writes `text` to `path` (replacing it atomically), by default readable by its owner only.
    public static func write(_ text: String, to path: String, mode: Int = 0o600) throws(FileWriteError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw FileWriteError(path: path, errno: errno) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let error = errno
                close(fd)
                unlink(temporary)
                throw FileWriteError(path: path, errno: error)
            }
            offset += n
        }
        fchmod(fd, mode_t(mode))
        guard fsync(fd) == 0, close(fd) == 0, rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw FileWriteError(path: path, errno: error)
        }
    }
}

public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let errno: Int32
    public var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
}
