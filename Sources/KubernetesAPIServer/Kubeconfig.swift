#if canImport(Glibc)
import Glibc
#endif
public import DispatchSockets
import NetAddress

/// A kubeconfig that points kubectl (and client-go, the Python client) at this server with a
/// bearer token (written with `SecretFile`, mode 0600, since it holds the token).
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
}
