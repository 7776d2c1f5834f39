public import ServiceRegistry

/// One HTTP request as the API sees it.
public struct APIRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var authorization: String?
    /// Who a client certificate, verified by the transport, proves the caller is.
    public var certificateUser: APIUser?
    /// The body's media type (`Content-Type` without parameters), nil when not sent.
    public var contentType: String?
    /// The `Accept` header as sent (kubectl asks for Tables there).
    public var accept: String?
    public var body: [UInt8]

    public init(method: String, path: String, query: [String: String] = [:], authorization: String? = nil,
                certificateUser: APIUser? = nil, contentType: String? = nil, accept: String? = nil, body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.authorization = authorization
        self.certificateUser = certificateUser
        self.contentType = contentType
        self.accept = accept
        self.body = body
    }
}

/// Its answer: an HTTP status and a JSON document (an object, a list, or a Status), or for a
/// watch the stream of its events.
public struct APIResponse: Sendable {
    public var code: Int
    public var body: JSONValue
    public var events: WatchEvents?
    /// A body that is not JSON (the OpenAPI document in protobuf), with its media type.
    public var raw: (contentType: String, bytes: [UInt8])?

    public init(code: Int, body: JSONValue, events: WatchEvents? = nil) {
        self.code = code
        self.body = body
        self.events = events
    }
}

/// What a request's path names: a resource, and in it a namespace, an object and a
/// subresource, or a collection.
struct Target: Sendable {
    var resource: APIResource
    var namespace: String?
    var name: String?
    /// "status", the only subresource served.
    var subresource: String?
    /// The path began `/watch/` (the deprecated form of `?watch=true`).
    var watchPath = false

    func key(_ name: String) -> ObjectKey { ObjectKey(resource.kind, namespace: namespace ?? "", name: name) }
}

/// The Kubernetes API over a `Registry`: a view, not a second store. Paths are parsed here, not
/// by a router, because Kubernetes' paths are a grammar (`/api/v1/namespaces/NS/RESOURCE/NAME`,
/// `/apis/GROUP/VERSION/RESOURCE`, cluster-scoped and namespaced, `/status`, `/watch/…`) that a
/// route table would spell out a dozen times.
public struct APIHandler: Sendable {
    public let registry: Registry
    public let tokens: TokenTable
    /// How often a watch that allows bookmarks gets one (kube-apiserver: about a minute).
    public var bookmarkInterval: Duration = .seconds(60)
    /// How long a watch without `timeoutSeconds` lasts (kube-apiserver: 30 to 60 minutes).
    public var defaultWatchTimeout: Duration = .seconds(1800)
    /// The clock of watch timeouts and bookmarks.
    public var clock: any Clock<Duration> = ContinuousClock()
    /// The time a Table's AGE column counts to (seconds since 1970).
    public var wallClock: @Sendable () -> Int64 = Registry.systemTime
    /// The largest request body taken (kube-apiserver's limit is 3 MiB).
    public static let maxBody = 3 << 20
    let pages = ListPages()
    /// The watches in progress (`endWatches()` ends them).
    public let watches = OpenWatches()
    /// Awaited after every write with the registry's version, before the response goes out:
    /// the server passes what makes the write's effects visible (the DNS zone serving that
    /// version), so that a client that reads its write's response can query DNS at once.
    public var settle: (@Sendable (UInt64) async -> Void)? = nil

    public init(registry: Registry, tokens: TokenTable) {
        self.registry = registry
        self.tokens = tokens
    }

    /// Ends every watch in progress and refuses new ones (a server shutting down).
    public func endWatches() { watches.closeAll() }

    public func handle(_ request: APIRequest) async -> APIResponse {
        do {
            let response = try await route(request)
            if let settle, request.method != "GET", response.code < 300, request.query["dryRun"] == nil {
                await settle(registry.resourceVersion)
            }
            return response
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
        // As kube-apiserver's authenticators: a verified client certificate, else a bearer token.
        guard let user = request.certificateUser ?? tokens.user(authorization: request.authorization) else { throw .unauthorized }
        switch segments.first {
        case "openapi":
            guard segments.count == 2, segments[1] == "v2" else { throw .pathNotFound() }
            guard request.method == "GET" else { throw .methodNotAllowed(request.method) }
            var response = APIResponse(code: 200, body: OpenAPI.json)
            if request.accept?.contains("protobuf") == true {
                // kube-openapi answers the protobuf form as octet-stream (the media type asked for does
                // not parse as one, and client-go reads the body as protobuf whatever it is called).
                response.raw = ("application/octet-stream", OpenAPI.protobuf)
            }
            return response
        case "api":
            if segments.count == 1 { return try discovery(request, Discovery.coreVersions()) }
            guard segments[1] == "v1" else { throw .pathNotFound() }
            if segments.count == 2 { return try discovery(request, Discovery.resourceList("v1")!) }
            return try await resource(request, user: user, try Self.target(groupVersion: "v1", Array(segments[2...])))
        case "apis":
            if segments.count == 1 { return try discovery(request, Discovery.groupList()) }
            guard let group = Discovery.groups.first(where: { $0.name == segments[1] }) else { throw .pathNotFound() }
            if segments.count == 2 { return try discovery(request, Discovery.group(group.name, group.version)) }
            let groupVersion = "\(segments[1])/\(segments[2])"
            guard let list = Discovery.resourceList(groupVersion) else { throw .pathNotFound() }
            if segments.count == 3 { return try discovery(request, list) }
            return try await resource(request, user: user, try Self.target(groupVersion: groupVersion, Array(segments[3...])))
        default:
            throw .pathNotFound()
        }
    }

    func discovery(_ request: APIRequest, _ document: JSONValue) throws(APIError) -> APIResponse {
        guard request.method == "GET" else { throw .methodNotAllowed(request.method) }
        return APIResponse(code: 200, body: document)
    }

    /// `[watch/][namespaces/NS/]RESOURCE[/NAME[/status]]`, after the group version.
    static func target(groupVersion: String, _ segments: [String]) throws(APIError) -> Target {
        var rest = segments[...]
        var watchPath = false
        if rest.first == "watch" {
            watchPath = true
            rest = rest.dropFirst()
        }
        var namespace: String? = nil
        if rest.count >= 3, rest.first == "namespaces", APIResource.named(rest[rest.startIndex + 2], in: groupVersion) != nil {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let resource = APIResource.named(rest.first ?? "", in: groupVersion), rest.count <= 3 else { throw .pathNotFound() }
        if namespace != nil && !resource.namespaced { throw .pathNotFound() }
        let name = rest.count >= 2 ? rest[rest.startIndex + 1] : nil
        let subresource = rest.count == 3 ? rest.last : nil
        if let subresource, subresource != "status" || !resource.hasStatus || watchPath { throw .pathNotFound() }
        return Target(resource: resource, namespace: namespace, name: name, subresource: subresource, watchPath: watchPath)
    }

    static func isTrue(_ value: String?) -> Bool { value == "true" || value == "1" }

    func resource(_ request: APIRequest, user: APIUser, _ target: Target) async throws(APIError) -> APIResponse {
        let verb: String
        switch (request.method, target.name) {
        case ("GET", nil): verb = target.watchPath || Self.isTrue(request.query["watch"]) ? "watch" : "list"
        case ("GET", _): verb = target.watchPath ? "watch" : "get"
        case ("POST", nil): verb = "create"
        case ("PUT", .some): verb = "update"
        case ("PATCH", .some): verb = "patch"
        case ("DELETE", .some): verb = "delete"
        case ("DELETE", nil): verb = "deletecollection"
        default: throw .methodNotAllowed(request.method)
        }
        if !["get", "list", "watch"].contains(verb) && !user.mayWrite {
            throw .forbidden(user: user.name, verb: verb, target.resource, namespace: target.resource.namespaced ? target.namespace : nil)
        }
        guard let representation = Representation.negotiate(request.accept) else {
            throw APIError(code: 406, reason: "NotAcceptable",
                           message: "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io")
        }
        if ["update", "patch", "delete"].contains(verb), let name = target.name { try refuseDerived(target, name) }
        switch verb {
        case "list": return try await list(request, target, representation)
        case "watch": return try watch(request, target, representation)
        case "get": return try get(request, target, representation)
        case "create": return try await create(request, target)
        case "update": return try await update(request, target)
        case "patch": return try await patch(request, target)
        case "delete": return try await delete(request, target)
        default: return try await deleteCollection(request, target)
        }
    }
}
