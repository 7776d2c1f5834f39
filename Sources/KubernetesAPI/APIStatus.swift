public import ServiceRegistry

/// A request the API refuses, as the Status object kube-apiserver answers with: HTTP code,
/// reason and message in its words.
public struct APIError: Error, Sendable, Hashable {
    public let code: Int
    public let reason: String
    public let message: String
    /// `details`: the object the error is about.
    public let name: String?
    public let resource: String?
    public let group: String?
    /// `details.causes`: each field that is wrong, as kubectl prints them.
    public let causes: [Cause]

    /// One wrong field: kube-apiserver's `FieldValueInvalid`, `FieldValueRequired`, … with the
    /// field's path.
    public struct Cause: Sendable, Hashable {
        public let reason: String
        public let message: String
        public let field: String
    }

    public init(code: Int, reason: String, message: String, name: String? = nil, resource: String? = nil, group: String? = nil,
                causes: [Cause] = []) {
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.resource = resource
        self.group = group
        self.causes = causes
    }

    public static let unauthorized = APIError(code: 401, reason: "Unauthorized", message: "Unauthorized")

    static func notFound(_ resource: APIResource, _ name: String) -> APIError {
        APIError(code: 404, reason: "NotFound", message: "\(resource.plural) \"\(name)\" not found",
                 name: name, resource: resource.plural, group: resource.group)
    }

    static func alreadyExists(_ resource: APIResource, _ name: String) -> APIError {
        APIError(code: 409, reason: "AlreadyExists", message: "\(resource.plural) \"\(name)\" already exists",
                 name: name, resource: resource.plural, group: resource.group)
    }

    static func forbidden(user: String, verb: String, _ resource: APIResource, namespace: String?) -> APIError {
        let scope = namespace.map { " in the namespace \"\($0)\"" } ?? " at the cluster scope"
        return APIError(code: 403, reason: "Forbidden",
                        message: "\(resource.plural) is forbidden: User \"\(user)\" cannot \(verb) resource \"\(resource.plural)\" in API group \"\(resource.group)\"\(scope)",
                        resource: resource.plural, group: resource.group)
    }

    static func badRequest(_ message: String) -> APIError { APIError(code: 400, reason: "BadRequest", message: message) }

    static func pathNotFound() -> APIError { APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource") }

    static func methodNotAllowed(_ method: String) -> APIError {
        APIError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource (\(method))")
    }

    static func invalid(_ resource: APIResource, _ name: String, _ message: String) -> APIError {
        APIError(code: 422, reason: "Invalid", message: message, name: name, resource: resource.kind.rawValue, group: resource.group)
    }

    /// What the registry refused, in kube-apiserver's terms.
    static func registry(_ error: RegistryError, _ resource: APIResource, _ name: String) -> APIError {
        switch error {
        case .invalid(_, _, let errors), .allocation(_, _, let errors):
            // An Invalid Status names the kind, not the resource: kubectl prints
            // `The Service "web" is invalid: …` from it.
            APIError(code: 422, reason: "Invalid", message: error.description, name: name, resource: resource.kind.rawValue,
                     group: resource.group, causes: errors.map(Cause.init))
        case .notFound: notFound(resource, name)
        case .alreadyExists: alreadyExists(resource, name)
        case .conflict:
            APIError(code: 409, reason: "Conflict", message: error.description, name: name, resource: resource.plural, group: resource.group)
        case .badManifest(let reason): badRequest(reason)
        case .storage(let reason): APIError(code: 500, reason: "InternalError", message: "Internal error occurred: \(reason)")
        case .unavailable(let reason): APIError(code: 503, reason: "ServiceUnavailable", message: "the registry's store is unavailable: \(reason)")
        }
    }

    /// The Status object.
    public var status: JSONValue {
        var members: [(String, JSONValue)] = [
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])),
            ("status", .string("Failure")), ("message", .string(message)), ("reason", .string(reason)),
        ]
        var details: [(String, JSONValue)] = []
        if let name { details.append(("name", .string(name))) }
        if let group, !group.isEmpty { details.append(("group", .string(group))) }
        if let resource { details.append(("kind", .string(resource))) }
        if !causes.isEmpty {
            details.append(("causes", .array(causes.map { cause in
                .object([("reason", .string(cause.reason)), ("message", .string(cause.message)), ("field", .string(cause.field))])
            })))
        }
        if !details.isEmpty { members.append(("details", .object(details))) }
        members.append(("code", .int(code)))
        return .object(members)
    }
}

extension APIError.Cause {
    /// A registry field error as kube-apiserver's StatusCause: the message is the error without
    /// its path, which is `field`.
    init(_ error: FieldError) {
        let reason = switch error.kind {
        case .invalid, .immutable: "FieldValueInvalid"
        case .required: "FieldValueRequired"
        case .notSupported: "FieldValueNotSupported"
        case .duplicate: "FieldValueDuplicate"
        case .forbidden: "FieldValueForbidden"
        case .unknownField: "FieldValueInvalid"
        case .wrongType: "FieldValueTypeInvalid"
        }
        let text = error.description
        let prefix = error.path + ": "
        self.init(reason: reason, message: text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text, field: error.path)
    }
}
