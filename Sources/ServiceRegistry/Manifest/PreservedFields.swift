/// The fields of an object that the registry reads but has no use for (a container's `env` and
/// `resources`, a pod's `volumes`, an object's `ownerReferences`), kept as written and written
/// out again with the object, so that what a client wrote is what it reads back (and
/// `kubectl apply` of an unchanged manifest finds nothing to change). A tree of the object's
/// shape holding only those fields; list elements are found again by their index.
public struct PreservedFields: Hashable, Sendable, Codable {
    public let value: JSONValue

    public init(_ value: JSONValue) { self.value = value }

    /// Stored as its JSON text (the state directory keeps objects as Codable JSON).
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            value = try JSONValue(parsing: Array(text.utf8))
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "preserved fields: \(error.message)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value.text)
    }

    /// The tree of `fields`, each at the path of its parent object (`spec.containers[0]`).
    init?(_ fields: [(parent: String, key: String, value: ManifestNode)]) {
        var tree = JSONValue.object([])
        for field in fields {
            guard let value = try? JSONValue(field.value) else { continue }
            tree = Self.setting(tree, at: Self.steps(field.parent) + [.key(field.key)], to: value)
        }
        guard tree != .object([]) else { return nil }
        self.value = tree
    }

    enum Step: Equatable { case key(String), index(Int) }

    /// `spec.containers[0]` as keys and indices (the paths the reader writes: field names
    /// without dots, indices in brackets).
    static func steps(_ path: String) -> [Step] {
        var steps: [Step] = []
        for part in path.split(separator: ".") {
            var rest = Substring(part)
            if let open = rest.firstIndex(of: "[") {
                steps.append(.key(String(rest[..<open])))
                rest = rest[open...]
                while rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
                    steps.append(.index(Int(rest[rest.index(after: rest.startIndex)..<close]) ?? 0))
                    rest = rest[rest.index(after: close)...]
                }
            } else {
                steps.append(.key(String(rest)))
            }
        }
        return steps
    }

    static func setting(_ tree: JSONValue, at steps: [Step], to value: JSONValue) -> JSONValue {
        guard let step = steps.first else { return value }
        let rest = Array(steps.dropFirst())
        switch step {
        case .key(let key):
            let child = tree[key] ?? (rest.first.map { if case .index = $0 { JSONValue.array([]) } else { .object([]) } } ?? .null)
            return (tree.members == nil ? .object([]) : tree).setting(key, to: setting(child, at: rest, to: value))
        case .index(let index):
            var items: [JSONValue] = []
            if case .array(let existing) = tree { items = existing }
            // Elements before the index that hold nothing preserved are empty objects.
            while items.count <= index { items.append(.object([])) }
            items[index] = setting(items[index], at: rest, to: value)
            return .array(items)
        }
    }

    /// `encoded` with these fields put back: into objects by name (a field the registry wrote
    /// itself wins), into lists by index.
    public func merged(into encoded: JSONValue) -> JSONValue {
        Self.merge(value, into: encoded)
    }

    static func merge(_ preserved: JSONValue, into encoded: JSONValue) -> JSONValue {
        switch (preserved, encoded) {
        case (.object(let fields), .object):
            var out = encoded
            for (key, value) in fields {
                if let existing = out[key] {
                    out = out.setting(key, to: merge(value, into: existing))
                } else {
                    out = out.setting(key, to: value)
                }
            }
            return out
        case (.array(let items), .array(var existing)):
            for index in items.indices where index < existing.count {
                existing[index] = merge(items[index], into: existing[index])
            }
            return .array(existing)
        default:
            return encoded
        }
    }
}
