/// One problem with one field, worded as Kubernetes words it
/// (`spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive`).
public struct FieldError: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// `Invalid value: VALUE: DETAIL`
        case invalid(value: String, detail: String)
        /// `Required value` (with an optional detail)
        case required(detail: String)
        /// `Unsupported value: "X": supported values: "A", "B"`
        case notSupported(value: String, supported: [String])
        /// `Duplicate value: VALUE`
        case duplicate(value: String)
        /// `Forbidden: DETAIL`
        case forbidden(detail: String)
        /// `field is immutable`, as an invalid value
        case immutable(value: String)
        /// `unknown field "PATH"` (strict decoding)
        case unknownField
        /// A value of the wrong YAML/JSON type (`expected an integer, got "80"`)
        case wrongType(detail: String)
    }

    public var path: String
    public var kind: Kind

    public init(_ path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public static func invalid(_ path: String, _ value: String, _ detail: String) -> FieldError {
        FieldError(path, .invalid(value: value, detail: detail))
    }

    /// Kubernetes quotes string values and leaves numbers bare.
    public static func quoted(_ s: String) -> String { "\"\(s)\"" }

    public var description: String {
        switch kind {
        case .invalid(let value, let detail): "\(path): Invalid value: \(value): \(detail)"
        case .required(let detail): detail.isEmpty ? "\(path): Required value" : "\(path): Required value: \(detail)"
        case .notSupported(let value, let supported):
            "\(path): Unsupported value: \(value): supported values: " + supported.map(Self.quoted).joined(separator: ", ")
        case .duplicate(let value): "\(path): Duplicate value: \(value)"
        case .forbidden(let detail): "\(path): Forbidden: \(detail)"
        case .immutable(let value): "\(path): Invalid value: \(value): field is immutable"
        case .unknownField: "unknown field \"\(path)\""
        case .wrongType(let detail): "\(path): \(detail)"
        }
    }
}

/// Everything the registry refuses, with the reason in Kubernetes' words where Kubernetes has them.
public enum RegistryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `The Service "web" is invalid: ...`
    case invalid(kind: ObjectKind, name: String, errors: [FieldError])
    case notFound(ObjectKey)
    /// An allocation that cannot be made (range full, address taken).
    case allocation(kind: ObjectKind, name: String, errors: [FieldError])
    /// A manifest that is not a Kubernetes object we know.
    case badManifest(String)
    /// The store could not make a change durable; nothing changed.
    case storage(String)
    /// A write whose preconditions do not hold (a stale resourceVersion, another uid, an
    /// object that exists or does not): Kubernetes' 409 Conflict.
    case conflict(ObjectKey, Conflict)
    /// A create of an object that exists.
    case alreadyExists(ObjectKey)
    /// The shared store (etcd) cannot take the write now: nothing changed; try again later.
    case unavailable(String)

    public enum Conflict: Hashable, Sendable {
        case resourceVersion(expected: UInt64, actual: UInt64)
        case uid(expected: String, actual: String)
    }

    public var description: String {
        switch self {
        case .invalid(let kind, let name, let errors), .allocation(let kind, let name, let errors):
            let list = errors.map(\.description)
            let body = list.count == 1 ? list[0] : "[" + list.joined(separator: ", ") + "]"
            return "The \(kind.rawValue) \"\(name)\" is invalid: \(body)"
        case .notFound(let key):
            return "\(key.kind.plural) \"\(key.name)\" not found"
        case .badManifest(let reason):
            return reason
        case .storage(let reason):
            return "storage error: \(reason)"
        case .conflict(let key, .resourceVersion):
            return "Operation cannot be fulfilled on \(key.kind.plural) \"\(key.name)\": the object has been modified; please apply your changes to the latest version and try again"
        case .conflict(let key, .uid(let expected, let actual)):
            return "Operation cannot be fulfilled on \(key.kind.plural) \"\(key.name)\": Precondition failed: UID in precondition: \(expected), UID in object meta: \(actual)"
        case .alreadyExists(let key):
            return "\(key.kind.plural) \"\(key.name)\" already exists"
        case .unavailable(let reason):
            return "the registry's store is unavailable: \(reason)"
        }
    }
}
