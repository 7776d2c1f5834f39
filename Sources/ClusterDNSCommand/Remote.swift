import ArgumentParser
import FoundationEssentials
import KubernetesAPI
import KubernetesAPIClient
import ServiceRegistry

/// `--server`/`--kubeconfig`: `apply`, `get` and `delete` talk to a running server's Kubernetes
/// API (or to kube-apiserver) instead of opening a state directory.
struct RemoteOptions: ParsableArguments {
    @Option(help: "A running server's Kubernetes API, https://HOST:PORT: work on it instead of a state directory (with --token and --certificate-authority, or over a --kubeconfig's).")
    var server: String?

    @Option(help: "A kubeconfig (as `serve --api` writes one) naming the server, its certificate authority and a token: work on that server.")
    var kubeconfig: String?

    @Option(help: "The kubeconfig's context to use (default: its current-context).")
    var context: String?

    @Option(help: "The bearer token for --server (overrides the kubeconfig's).")
    var token: String?

    @Option(help: "A PEM file of the authority that signed the server's certificate (overrides the kubeconfig's).")
    var certificateAuthority: String?

    var isRemote: Bool { server != nil || kubeconfig != nil }

    func validate(against registry: RegistryOptions) throws {
        if isRemote, registry.state != "memory" {
            throw ValidationError("--state is for a stopped server's directory; --server and --kubeconfig for a running one: give one or the other")
        }
        if !isRemote, context != nil || token != nil || certificateAuthority != nil {
            throw ValidationError("--context, --token and --certificate-authority go with --server or --kubeconfig")
        }
    }

    func client() throws -> APIClient {
        do {
            var configuration: APIClientConfiguration
            if let kubeconfig {
                configuration = try KubeconfigFile.load(path: kubeconfig, context: context).configuration
                if let server {
                    let given = try APIClientConfiguration(server: server)
                    (configuration.scheme, configuration.host, configuration.port) = (given.scheme, given.host, given.port)
                }
            } else {
                configuration = try APIClientConfiguration(server: server ?? "")
            }
            if let token { configuration.token = token }
            if let certificateAuthority {
                do {
                    configuration.authorityPEM = try String(contentsOfFile: certificateAuthority, encoding: .utf8)
                } catch {
                    throw APIClientError.configuration("--certificate-authority \(certificateAuthority): cannot read it")
                }
            }
            return try APIClient(configuration: configuration)
        } catch let error as APIClientError {
            throw ValidationError(error.description)
        }
    }
}

/// The registry's operations over its API: what `apply`, `get` and `delete` do offline, with
/// the same outcomes and lines.
struct RemoteRegistry {
    let connection: APIConnection

    /// A refusal as kubectl prints it: `Error from server (Reason): message`.
    struct Refusal: Error, CustomStringConvertible {
        var code: Int
        var reason: String
        var message: String
        var description: String { "Error from server (\(reason)): \(message)" }

        init(_ response: APIClientResponse) {
            code = response.status
            let status = try? JSONValue(parsing: response.body)
            reason = status?["reason"]?.stringValue ?? "HTTP \(response.status)"
            message = status?["message"]?.stringValue ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        }
    }

    /// Creates `object`, or replaces it (keeping what the registry allocated, as offline), and
    /// tells which: created, configured or unchanged. A write that races another is retried.
    func apply(_ object: RegistryObject) async throws -> ApplyOutcome {
        let resource = APIResource.of(object.kind)
        let namespace = object.kind.isNamespaced ? object.metadata.namespace : nil
        let path = resource.path(namespace: namespace, name: object.metadata.name)
        let body = object.kubernetesJSON
        for _ in 0..<8 {
            let current = try await connection.send("GET", path)
            switch current.status {
            case 404:
                let created = try await connection.send("POST", resource.path(namespace: namespace), body: body.bytes)
                if created.status == 409 { continue }  // created by someone else meanwhile: update it
                guard created.status == 201 else { throw Refusal(created) }
                return .created
            case 200:
                let version = (try? JSONValue(parsing: current.body))?["metadata"]?["resourceVersion"]?.stringValue
                let metadata = (body["metadata"] ?? .object([])).setting("resourceVersion", to: version.map { .string($0) })
                let updated = try await connection.send("PUT", path, body: body.setting("metadata", to: metadata).bytes)
                if updated.status == 409 { continue }  // changed since we read it: read again
                guard updated.status == 200 else { throw Refusal(updated) }
                let written = (try? JSONValue(parsing: updated.body))?["metadata"]?["resourceVersion"]?.stringValue
                return written == version ? .unchanged : .configured
            default:
                throw Refusal(current)
            }
        }
        throw ValidationError("\(object.kind.rawValue.lowercased())/\(object.metadata.name): changed by others on every attempt")
    }

    func delete(_ object: RegistryObject) async throws {
        let namespace = object.kind.isNamespaced ? object.metadata.namespace : nil
        let response = try await connection.send("DELETE", APIResource.of(object.kind).path(namespace: namespace, name: object.metadata.name))
        guard response.status == 200 || response.status == 202 else { throw Refusal(response) }
    }

    /// The objects of `resource` as a list (JSON) or as the server's Table.
    func list(_ resource: APIResource, namespace: String?, table: Bool) async throws -> JSONValue {
        let response = try await connection.send(
            "GET", resource.path(namespace: namespace),
            accept: table ? "application/json;as=Table;v=v1;g=meta.k8s.io, application/json" : "application/json")
        guard response.status == 200 else { throw Refusal(response) }
        do {
            return try JSONValue(parsing: response.body)
        } catch {
            throw ValidationError("the server's list is not JSON: \(error)")
        }
    }
}
