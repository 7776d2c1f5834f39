import FoundationEssentials
import ServiceRegistry
import YAML

/// A kubeconfig read as kubectl reads it: the current context (or the one named), its cluster's
/// server and certificate authority, its user's token or client certificate. Paths in the file
/// are relative to the file's directory; `-data` fields are base64.
public enum KubeconfigFile {
    public struct Context: Sendable, Equatable {
        public var configuration: APIClientConfiguration
        /// The context's namespace, if it names one.
        public var namespace: String?
    }

    public static func load(path: String, context name: String? = nil) throws(APIClientError) -> Context {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .configuration("kubeconfig \(path): cannot read it")
        }
        return try parse(text, path: path, context: name)
    }

    public static func parse(_ text: String, path: String, context name: String? = nil) throws(APIClientError) -> Context {
        func fail(_ message: String) -> APIClientError { .configuration("kubeconfig \(path): \(message)") }
        let document: JSONValue
        do {
            guard let node = try YAMLParser.firstDocument(in: text) else { throw fail("empty") }
            document = try JSONValue(node)
        } catch let error as APIClientError {
            throw error
        } catch let error as YAMLError {
            throw fail("line \(error.line), column \(error.column): \(error.message)")
        } catch let error as JSONValueError {
            throw fail("line \(error.line), column \(error.column): \(error.message)")
        } catch {
            throw fail("\(error)")
        }
        // Foundation's deletingLastPathComponent traps on a bare file name (swift-corelibs, 6.3).
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) + "/" } ?? ""
        func named(_ list: String, _ name: String, _ field: String) throws(APIClientError) -> JSONValue {
            guard case .array(let items)? = document[list] else { throw fail("no \(list)") }
            guard let item = items.first(where: { $0["name"]?.stringValue == name }), let value = item[field] else {
                throw fail("\(list): no entry named \"\(name)\"")
            }
            return value
        }
        /// A `-data` field (base64) or a path field (a file, relative to the kubeconfig).
        func content(_ object: JSONValue, _ field: String) throws(APIClientError) -> String? {
            if let data = object["\(field)-data"]?.stringValue, !data.isEmpty {
                guard let decoded = Data(base64Encoded: data), let text = String(data: decoded, encoding: .utf8) else {
                    throw fail("\(field)-data is not base64 of a PEM text")
                }
                return text
            }
            guard let file = object[field]?.stringValue, !file.isEmpty else { return nil }
            let resolved = file.hasPrefix("/") ? file : directory + file
            do { return try String(contentsOfFile: resolved, encoding: .utf8) } catch {
                throw fail("\(field) \(resolved): cannot read it")
            }
        }
        guard let contextName = name ?? document["current-context"]?.stringValue, !contextName.isEmpty else {
            throw fail("no current-context (give --context)")
        }
        let context = try named("contexts", contextName, "context")
        guard let clusterName = context["cluster"]?.stringValue else { throw fail("context \"\(contextName)\" names no cluster") }
        let cluster = try named("clusters", clusterName, "cluster")
        guard let server = cluster["server"]?.stringValue else { throw fail("cluster \"\(clusterName)\" has no server") }
        var token: String?
        var certificate: String?
        var key: String?
        if let userName = context["user"]?.stringValue, !userName.isEmpty {
            let user = try named("users", userName, "user")
            token = user["token"]?.stringValue
            if token == nil, let file = user["tokenFile"]?.stringValue {
                let resolved = file.hasPrefix("/") ? file : directory + file
                do {
                    let text = try String(contentsOfFile: resolved, encoding: .utf8)
                    token = String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
                } catch {
                    throw fail("tokenFile \(resolved): cannot read it")
                }
            }
            certificate = try content(user, "client-certificate")
            key = try content(user, "client-key")
        }
        let configuration = try APIClientConfiguration(
            server: server, authorityPEM: try content(cluster, "certificate-authority"),
            insecureSkipVerify: cluster["insecure-skip-tls-verify"] == .bool(true), token: token,
            clientCertificatePEM: certificate, clientKeyPEM: key)
        return Context(configuration: configuration, namespace: context["namespace"]?.stringValue)
    }
}
