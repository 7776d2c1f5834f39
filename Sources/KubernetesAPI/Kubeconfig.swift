#if canImport(Glibc)
import Glibc
#endif
public import DispatchSockets
import NetAddress

/// A kubeconfig that points kubectl (and client-go, the Python client) at this server with a
/// bearer token: written with mode 0600, since it holds the token.
public enum Kubeconfig {
    public static func text(server address: SocketAddress, token: String, authority: ServingCertificate,
                            user: String = "admin") -> String {
        let host = address.address.description.contains(":") ? "[\(address.address)]" : address.address.description
        return """
            apiVersion: v1
            kind: Config
            clusters:
            - name: clusterdns
              cluster:
                server: https://\(host):\(address.port)
                certificate-authority-data: \(authority.authorityData)
            users:
            - name: \(user)
              user:
                token: \(token)
            contexts:
            - name: clusterdns
              context:
                cluster: clusterdns
                user: \(user)
            current-context: clusterdns

            """
    }

    /// Writes `text` to `path` (replacing it atomically), by default readable by its owner only.
    public static func write(_ text: String, to path: String, mode: Int = 0o600) throws(KubeconfigError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw KubeconfigError(path: path, errno: errno) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let error = errno
                close(fd)
                unlink(temporary)
                throw KubeconfigError(path: path, errno: error)
            }
            offset += n
        }
        fchmod(fd, mode_t(mode))
        guard fsync(fd) == 0, close(fd) == 0, rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw KubeconfigError(path: path, errno: error)
        }
    }
}

public struct KubeconfigError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let errno: Int32
    public var description: String { "cannot write the kubeconfig \(path): \(String(cString: strerror(errno)))" }
}
