import YAML

/// A manifest's value with where it was written (`YAMLParser` reads it).
typealias ManifestNode = YAMLNode

extension YAMLNode {
    /// How this value is named in messages: `"80"` for a string, `80` for a number.
    var shown: String {
        switch self {
        case .scalar(let s, .string, _): FieldError.quoted(s)
        case .scalar(let s, _, _): s
        case .mapping: "object"
        case .sequence: "array"
        }
    }
}

/// Reads typed fields from manifest nodes, collecting errors with their field paths and
/// positions instead of stopping at the first, and reporting fields nobody read.
struct FieldReader {
    var errors: [FieldError] = []
    /// Where each field path was written, for errors found later (validation).
    var positions: [String: ManifestNode.Position] = [:]
    var firstErrorPosition: ManifestNode.Position? = nil
    /// Fields read but not used that the object keeps as written (`PreservedFields`): where
    /// each was (the path of its parent object) and its value.
    var preserved: [(parent: String, key: String, value: ManifestNode)] = []

    mutating func fail(_ error: FieldError, at position: ManifestNode.Position) {
        if firstErrorPosition == nil { firstErrorPosition = position }
        errors.append(error)
    }

    /// Reads a mapping: `body` gets a cursor for its fields; keys it never asks for are
    /// unknown fields, except those in `ignored` (Kubernetes fields this registry has no use for)
    /// and all of them when `ignoreUnknown` is set (opaque parts such as a container's `env`).
    /// Ignored fields are kept as written (`preserved`), but those in `discarded` (values the
    /// server sets) and, unless `preserveUnknown`, those `ignoreUnknown` lets through: they sit
    /// in lists whose elements the registry rewrites, where an index would not find them again.
    mutating func object(_ node: ManifestNode?, _ path: String, ignored: Set<String> = [], ignoreUnknown: Bool = false,
                         discarded: Set<String> = [], preserveUnknown: Bool = false,
                         _ body: (inout FieldReader, ObjectCursor) -> Void) {
        guard let node, !node.isNull else { return }
        if positions[path] == nil { positions[path] = node.position }
        guard case .mapping(let pairs, _) = node else {
            fail(FieldError(path, .wrongType(detail: "expected an object, got \(node.shown)")), at: node.position)
            return
        }
        let cursor = ObjectCursor(pairs: pairs, path: path)
        // A field missing inside a child is reported where the child's key is written.
        for pair in pairs { positions[cursor.child(pair.key)] = pair.keyPosition }
        body(&self, cursor)
        for pair in pairs where !cursor.asked.contains(pair.key) && !discarded.contains(pair.key) {
            if ignoreUnknown ? preserveUnknown : ignored.contains(pair.key) { preserved.append((path, pair.key, pair.value)) }
        }
        guard !ignoreUnknown else { return }
        var seen = Set<String>()
        for pair in pairs {
            if !seen.insert(pair.key).inserted {
                fail(FieldError(cursor.child(pair.key), .duplicate(value: FieldError.quoted(pair.key))), at: pair.value.position)
            }
            if !cursor.asked.contains(pair.key) && !ignored.contains(pair.key) {
                fail(FieldError(cursor.child(pair.key), .unknownField), at: pair.value.position)
            }
        }
    }

    mutating func string(_ node: ManifestNode?, _ path: String) -> String? {
        guard let node, !node.isNull else { return nil }
        positions[path] = node.position
        guard case .scalar(let s, .string, _) = node else {
            var detail = "expected a string, got \(node.shown)"
            switch node {
            case .scalar(_, .bool, _): detail += " (YAML reads it as a boolean: quote it)"
            case .scalar(_, .int, _), .scalar(_, .float, _): detail += " (YAML reads it as a number: quote it)"
            default: break
            }
            fail(FieldError(path, .wrongType(detail: detail)), at: node.position)
            return nil
        }
        return s
    }

    mutating func int(_ node: ManifestNode?, _ path: String) -> Int? {
        guard let node, !node.isNull else { return nil }
        positions[path] = node.position
        guard case .scalar(let s, .int, _) = node, let value = Int(s) else {
            fail(FieldError(path, .wrongType(detail: "expected an integer, got \(node.shown)")), at: node.position)
            return nil
        }
        return value
    }

    mutating func bool(_ node: ManifestNode?, _ path: String) -> Bool? {
        guard let node, !node.isNull else { return nil }
        positions[path] = node.position
        guard case .scalar(let s, .bool, _) = node else {
            fail(FieldError(path, .wrongType(detail: "expected true or false, got \(node.shown)")), at: node.position)
            return nil
        }
        return ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"].contains(s)
    }

    /// An RFC 3339 time (Kubernetes' `metav1.Time`) as seconds since 1970.
    mutating func timestamp(_ node: ManifestNode?, _ path: String) -> Int64? {
        guard let text = string(node, path) else { return nil }
        guard let seconds = Timestamp.parse(text) else {
            if let node { fail(.invalid(path, FieldError.quoted(text), "expected an RFC 3339 time such as 2026-12-05T03:20:00Z"), at: node.position) }
            return nil
        }
        return seconds
    }

    mutating func intOrString(_ node: ManifestNode?, _ path: String) -> IntOrString? {
        guard let node, !node.isNull else { return nil }
        positions[path] = node.position
        switch node {
        case .scalar(let s, .int, _): if let v = Int(s) { return .int(v) }
        case .scalar(let s, .string, _): return .string(s)
        default: break
        }
        fail(FieldError(path, .wrongType(detail: "expected an integer or a string, got \(node.shown)")), at: node.position)
        return nil
    }

    mutating func array(_ node: ManifestNode?, _ path: String, _ element: (inout FieldReader, ManifestNode, String) -> Void) {
        guard let node, !node.isNull else { return }
        positions[path] = node.position
        guard case .sequence(let items, _) = node else {
            fail(FieldError(path, .wrongType(detail: "expected an array, got \(node.shown)")), at: node.position)
            return
        }
        for (index, item) in items.enumerated() { element(&self, item, "\(path)[\(index)]") }
    }

    mutating func strings(_ node: ManifestNode?, _ path: String) -> [String] {
        var out: [String] = []
        array(node, path) { reader, item, itemPath in
            if let s = reader.string(item, itemPath) { out.append(s) }
        }
        return out
    }

    /// A map of strings to strings (labels, selector, annotations).
    mutating func stringMap(_ node: ManifestNode?, _ path: String) -> [String: String]? {
        guard let node, !node.isNull else { return nil }
        positions[path] = node.position
        guard case .mapping(let pairs, _) = node else {
            fail(FieldError(path, .wrongType(detail: "expected an object, got \(node.shown)")), at: node.position)
            return nil
        }
        var out: [String: String] = [:]
        for pair in pairs {
            if let s = string(pair.value, "\(path).\(pair.key)") { out[pair.key] = s }
        }
        return out
    }

    /// An enumeration field: a string among `T`'s raw values.
    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: ManifestNode?, _ path: String, _: T.Type) -> T?
    where T.RawValue == String {
        guard let s = string(node, path) else { return nil }
        guard let value = T(rawValue: s) else {
            fail(FieldError(path, .notSupported(value: FieldError.quoted(s), supported: T.allCases.map(\.rawValue).sorted())),
                 at: node?.position ?? .init(line: 0, column: 0))
            return nil
        }
        return value
    }
}

/// The fields of one mapping; remembers which were asked for.
final class ObjectCursor {
    let pairs: [(key: String, keyPosition: ManifestNode.Position, value: ManifestNode)]
    let path: String
    var asked = Set<String>()

    init(pairs: [(key: String, keyPosition: ManifestNode.Position, value: ManifestNode)], path: String) {
        self.pairs = pairs
        self.path = path
    }

    subscript(key: String) -> ManifestNode? {
        asked.insert(key)
        return pairs.first { $0.key == key }?.value
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}
