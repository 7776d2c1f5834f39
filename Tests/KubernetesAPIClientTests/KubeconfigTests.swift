import Foundation
@testable import KubernetesAPIClient
import Testing

/// Kubeconfigs as kubectl reads them, and the ones it refuses: each with its precise error.
struct KubeconfigTests {
    static let authority = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    static let authorityData = Data(authority.utf8).base64EncodedString()

    enum Outcome: Equatable, Sendable {
        case ok(String)
        case refused(String)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var context: String? = nil
        /// scheme://host:port, token, authority present, namespace; or the error.
        var expected: Outcome
        var testDescription: String { name }
    }

    static func config(server: String = "https://127.0.0.1:6443", user: String = "token: abc", extra: String = "",
                       current: String = "current-context: c") -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: k
          cluster:
            server: \(server)
            certificate-authority-data: \(authorityData)
        users:
        - name: u
          user:
            \(user)
        contexts:
        - name: c
          context: {cluster: k, user: u\(extra)}
        \(current)
        """
    }

    static let cases: [Case] = [
        Case(name: "as serve writes it", text: config(), expected: .ok("https://127.0.0.1:6443 abc authority -")),
        Case(name: "a namespace in the context", text: config(extra: ", namespace: shop"),
             expected: .ok("https://127.0.0.1:6443 abc authority shop")),
        Case(name: "IPv6 and the default port", text: config(server: "https://[::1]"), expected: .ok("https://[::1]:443 abc authority -")),
        Case(name: "a host name, a trailing slash", text: config(server: "https://api.example:8443/"),
             expected: .ok("https://api.example:8443 abc authority -")),
        Case(name: "a named context", text: config(current: ""), context: "c", expected: .ok("https://127.0.0.1:6443 abc authority -")),
        Case(name: "no current context", text: config(current: ""),
             expected: .refused("kubeconfig k: no current-context (give --context)")),
        Case(name: "an unknown context", text: config(), context: "d", expected: .refused(#"kubeconfig k: contexts: no entry named "d""#)),
        Case(name: "a path in the server", text: config(server: "https://h:1/api"),
             expected: .refused(#"server "https://h:1/api": expected https://HOST[:PORT] (or http://)"#)),
        Case(name: "a port out of range", text: config(server: "https://h:70000"),
             expected: .refused(#"server "https://h:70000": expected https://HOST[:PORT] (or http://)"#)),
        Case(name: "another scheme", text: config(server: "ftp://h"), expected: .refused(#"server "ftp://h": expected https://HOST[:PORT] (or http://)"#)),
        Case(name: "bad base64", text: config(user: "client-certificate-data: '!!'"),
             expected: .refused("kubeconfig k: client-certificate-data is not base64 of a PEM text")),
        Case(name: "a missing token file", text: config(user: "tokenFile: /nonexistent/token"),
             expected: .refused("kubeconfig k: tokenFile /nonexistent/token: cannot read it")),
        Case(name: "not YAML", text: "clusters: [", expected: .refused("kubeconfig k: line 2, column 1: did not find expected node content (while parsing a flow node at line 2, column 1)")),
        Case(name: "no clusters", text: "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n",
             expected: .refused("kubeconfig k: no clusters")),
    ]

    @Test(arguments: cases)
    func parse(_ test: Case) {
        let result: Outcome
        do {
            let context = try KubeconfigFile.parse(test.text, path: "k", context: test.context)
            let c = context.configuration
            result = .ok("\(c.server) \(c.token ?? "-") \(c.authorityPEM == Self.authority ? "authority" : "-") \(context.namespace ?? "-")")
        } catch {
            result = .refused(error.description)
        }
        #expect(result == test.expected)
    }

    /// Paths in a kubeconfig are relative to its directory, as kubectl takes them.
    @Test func relativePathsAreTheFilesDirectorys() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.authority.write(to: directory.appendingPathComponent("ca.crt"), atomically: true, encoding: .utf8)
        try "secret\n".write(to: directory.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        let text = Self.config(user: "tokenFile: token").replacingOccurrences(of: "certificate-authority-data: \(Self.authorityData)",
                                                                            with: "certificate-authority: ca.crt")
        let path = directory.appendingPathComponent("config").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let context = try KubeconfigFile.load(path: path)
        #expect(context.configuration.token == "secret")
        #expect(context.configuration.authorityPEM == Self.authority)
    }

    @Test func queryValuesAreEscaped() {
        #expect(APIConnection.escape("app in (a,b),tier!=x") == "app%20in%20%28a%2Cb%29%2Ctier%21%3Dx")
        #expect(APIConnection.escape("é") == "%C3%A9")
    }
}
