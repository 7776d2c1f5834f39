public import ServiceRegistry

/// One HTTP request as the API sees it.
public struct APIRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var authorization: String?
    public var body: [UInt8]

    public init(method: String, path: String, query: [String: String] = [:], authorization: String? = nil, body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.authorization = authorization
        self.body = body
    }
}

/// Its answer: an HTTP status and a JSON document (an object, a list, or a Status).
public struct APIResponse: Sendable {
    public var code: Int
    public var body: JSONValue
}

/// The Kubernetes API over a `Registry`: a view, not a second store. Paths are parsed here, not
/// by a router, because Kubernetes' paths are a grammar (`/api/v1/namespaces/NS/RESOURCE/NAME`,
/// `/apis/GROUP/VERSION/RESOURCE`, cluster-scoped and namespaced) that a route table would spell
/// out a dozen times.
public struct APIHandler: Sendable {
    public let registry: Registry
    public let tokens: TokenTable
    /// The largest request body taken (kube-apiserver's limit is 3 MiB).
    public static let maxBody = 3 << 20

    public init(registry: Registry, tokens: TokenTable) {
        self.registry = registry
        self.tokens = tokens
    }

    public func handle(_ request: APIRequest) async -> APIResponse {
        do {
            return try await route(request)
        } catch {
            return APIResponse(code: error.code, body: error.status)
        }
    }

    /// Health and version are public (kube-apiserver's system:public-info-viewer); the rest
    /// needs a known token.
    static let publicPaths: Set<String> = ["/healthz", "/livez", "/readyz", "/version"]

    func route(_ request: APIRequest) async throws(APIError) -> APIResponse {
        let segments = request.path.split(separator: "/").map(String.init)
        let path = "/" + segments.joined(separator: "/")
        if Self.publicPaths.contains(path) {
            guard request.method == "GET" else { throw .methodNotAllowed(request.method) }
            return path == "/version" ? APIResponse(code: 200, body: Discovery.version()) : APIResponse(code: 200, body: .string("ok"))
        }
        guard let user = tokens.user(authorization: request.authorization) else { throw .unauthorized }
        switch segments.first {
        case "api":
            if segments.count == 1 { return try discovery(request, Discovery.coreVersions()) }
            guard segments[1] == "v1" else { throw .pathNotFound() }
            if segments.count == 2 { return try discovery(request, Discovery.resourceList("v1")!) }
            return try await resource(request, user: user, groupVersion: "v1", rest: Array(segments[2...]))
        case "apis":
            if segments.count == 1 { return try discovery(request, Discovery.groupList()) }
            guard let group = Discovery.groups.first(where: { $0.name == segments[1] }) else { throw .pathNotFound() }
            if segments.count == 2 { return try discovery(request, Discovery.group(group.name, group.version)) }
            let groupVersion = "\(segments[1])/\(segments[2])"
            guard let list = Discovery.resourceList(groupVersion) else { throw .pathNotFound() }
            if segments.count == 3 { return try discovery(request, list) }
            return try await resource(request, user: user, groupVersion: groupVersion, rest: Array(segments[3...]))
        default:
            throw .pathNotFound()
        }
    }

    func discovery(_ request: APIRequest, _ document: JSONValue) throws(APIError) -> APIResponse {
        guard request.method == "GET" else { throw .methodNotAllowed(request.method) }
        return APIResponse(code: 200, body: document)
    }

    /// `rest`: `RESOURCE[/NAME]` or `namespaces/NS/RESOURCE[/NAME]`.
    func resource(_ request: APIRequest, user: APIUser, groupVersion: String, rest: [String]) async throws(APIError) -> APIResponse {
        var namespace: String? = nil
        var rest = rest[...]
        if rest.count >= 3, rest.first == "namespaces", APIResource.named(rest[rest.startIndex + 2], in: groupVersion) != nil {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let resource = APIResource.named(rest.first ?? "", in: groupVersion), rest.count <= 2 else { throw .pathNotFound() }
        if namespace != nil && !resource.namespaced { throw .pathNotFound() }
        let name = rest.count == 2 ? rest.last : nil
        let verb: String
        switch (request.method, name) {
        case ("GET", nil): verb = "list"
        case ("GET", _): verb = "get"
        case ("POST", nil): verb = "create"
        case ("DELETE", .some): verb = "delete"
        default: throw .methodNotAllowed(request.method)
        }
        if verb != "get" && verb != "list" && !user.mayWrite {
            throw .forbidden(user: user.name, verb: verb, resource, namespace: resource.namespaced ? namespace : nil)
        }
        switch verb {
        case "list": return try list(request, resource, namespace: namespace)
        case "get": return try get(resource, namespace: namespace, name: name!)
        case "create": return try await create(request, resource, namespace: namespace)
        default: return try await delete(resource, namespace: namespace, name: name!)
        }
    }

    func key(_ resource: APIResource, namespace: String?, name: String) -> ObjectKey {
        ObjectKey(resource.kind, namespace: namespace ?? "", name: name)
    }

    func get(_ resource: APIResource, namespace: String?, name: String) throws(APIError) -> APIResponse {
        guard let object = registry.get(key(resource, namespace: namespace, name: name)) else { throw .notFound(resource, name) }
        return APIResponse(code: 200, body: object.kubernetesJSON)
    }

    func list(_ request: APIRequest, _ resource: APIResource, namespace: String?) throws(APIError) -> APIResponse {
        let labels = try request.query["labelSelector"].map { (s) throws(APIError) in try LabelSelector(parsing: s) }
        let fields = try request.query["fieldSelector"].map { (s) throws(APIError) in try FieldSelector(parsing: s, for: resource.kind) }
        let snapshot = registry.snapshot()
        let items = snapshot.list(resource.kind, namespace: namespace).filter { object in
            (labels?.matches(object.metadata.labels) ?? true) && (fields?.matches(object) ?? true)
        }
        return APIResponse(code: 200, body: .object([
            ("kind", .string(resource.kind.rawValue + "List")), ("apiVersion", .string(resource.groupVersion)),
            ("metadata", .object([("resourceVersion", .string(String(snapshot.resourceVersion)))])),
            ("items", .array(items.map(\.kubernetesJSON))),
        ]))
    }

    /// The one object in a request body (JSON or YAML), of the resource's kind, in the URL's
    /// namespace.
    func decodeBody(_ request: APIRequest, _ resource: APIResource, namespace: String?) throws(APIError) -> RegistryObject {
        guard request.body.count <= Self.maxBody else {
            throw APIError(code: 413, reason: "RequestEntityTooLarge", message: "the request body is larger than \(Self.maxBody) bytes")
        }
        guard let text = String(validating: request.body, as: UTF8.self) else { throw .badRequest("the request body is not UTF-8") }
        let entries = Manifest.decode(text, file: "request body")
        guard entries.count == 1, let entry = entries.first else {
            throw .badRequest(entries.isEmpty ? "the request body holds no object" : "the request body holds \(entries.count) objects; one is expected")
        }
        let object: RegistryObject
        switch entry.result {
        case .success(let decoded): object = decoded
        case .failure(let error) where error.isInvalidObject:
            throw APIError(code: 422, reason: "Invalid", message: error.message, resource: resource.plural, group: resource.group)
        case .failure(let error):
            throw .badRequest("\(error.message) (line \(error.line), column \(error.column) of the request body)")
        }
        guard object.kind == resource.kind else {
            throw .badRequest("the API version in the data (\(object.kind.apiVersion)) and kind (\(object.kind.rawValue)) do not match the resource \(resource.plural)")
        }
        if let namespace, resource.namespaced, object.metadata.namespace != namespace {
            // The decoder puts objects without a namespace into "default": the URL's wins then.
            if object.metadata.namespace == "default" && !text.contains("namespace") {
                var copy = object
                copy.metadata.namespace = namespace
                return copy
            }
            throw .badRequest("the namespace of the provided object does not match the namespace sent on the request")
        }
        return object
    }

    func create(_ request: APIRequest, _ resource: APIResource, namespace: String?) async throws(APIError) -> APIResponse {
        let object = try decodeBody(request, resource, namespace: namespace)
        let name = object.metadata.name
        if registry.get(object.key) != nil { throw .alreadyExists(resource, name) }
        if request.query["dryRun"] == "All" { return APIResponse(code: 201, body: object.kubernetesJSON) }
        do {
            _ = try await registry.apply(object)
        } catch {
            throw .registry(error, resource, name)
        }
        guard let stored = registry.get(object.key) else { throw .notFound(resource, name) }
        return APIResponse(code: 201, body: stored.kubernetesJSON)
    }

    func delete(_ resource: APIResource, namespace: String?, name: String) async throws(APIError) -> APIResponse {
        let key = key(resource, namespace: namespace, name: name)
        guard let object = registry.get(key) else { throw .notFound(resource, name) }
        do {
            try await registry.delete(key)
        } catch {
            throw .registry(error, resource, name)
        }
        return APIResponse(code: 200, body: object.kubernetesJSON)
    }
}
