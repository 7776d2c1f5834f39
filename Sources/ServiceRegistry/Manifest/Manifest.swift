#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
public import YAML

/// A problem with one manifest document: where it is, and what is wrong.
public struct ManifestError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based index of the document in its file (`---` separated).
    public var document: Int
    public var line: Int
    public var column: Int
    public var message: String
    /// The document is a well-formed object of a kind we serve, but its fields are refused
    /// (kube-apiserver's 422 Invalid, where a body it cannot read at all is a 400).
    public var isInvalidObject: Bool
    /// For an invalid object, each field refused.
    public var fieldErrors: [FieldError]
    /// The document is an object of a kind this registry does not serve (a Deployment, a
    /// ConfigMap): manifests written for a cluster hold them, and readers skip them with a notice.
    public var isUnservedKind = false

    public init(file: String, document: Int, line: Int, column: Int, message: String, isInvalidObject: Bool = false,
                fieldErrors: [FieldError] = []) {
        self.file = file
        self.document = document
        self.line = line
        self.column = column
        self.message = message
        self.isInvalidObject = isInvalidObject
        self.fieldErrors = fieldErrors
    }

    public var description: String {
        "\(file):\(line):\(column): document \(document): \(message)"
    }
}

extension ManifestEntry {
    /// An object of a kind not served here: skipped, not an error.
    public var isUnservedKind: Bool {
        if case .failure(let error) = result { return error.isUnservedKind }
        return false
    }
}

/// One object read from a manifest, or why it could not be.
public struct ManifestEntry: Sendable {
    public var file: String
    public var document: Int
    public var line: Int
    public var result: Result<RegistryObject, ManifestError>
}

/// Kubernetes v1 manifests: multi-document YAML or JSON, `List` objects, one file or a directory.
public enum Manifest {
    static let supported: [(apiVersion: String, kind: String)] = [
        ("v1", "Namespace"), ("v1", "Node"), ("v1", "Service"), ("v1", "Pod"), ("v1", "Endpoints"),
        ("discovery.k8s.io/v1", "EndpointSlice"), ("v1", "List"),
    ]

    /// Reads every document of `text`; each valid one decodes and validates on its own. A file
    /// that is not valid YAML gives its one error and no objects. Documents are parsed and
    /// decoded one at a time, so only one document's YAML tree is held at once (a 10 MB
    /// manifest's whole tree is some 100 MB, and the objects decoded among it would keep the
    /// freed heap around them resident).
    public static func decode(_ text: String, file: String = "<manifest>") -> [ManifestEntry] {
        var entries: [ManifestEntry] = []
        do {
            try YAMLParser.documents(in: text) { index, document in
                if case .scalar(_, .null, _) = document { return }  // an empty document between `---`
                entries += decodeDocument(document, file: file, document: index)
            }
        } catch {
            return [ManifestEntry(file: file, document: error.document, line: error.line,
                                  result: .failure(ManifestError(file: file, document: error.document, line: error.line,
                                                                 column: error.column,
                                                                 message: "not valid YAML or JSON: \(error.message)")))]
        }
        return entries
    }

    /// Reads a file, or every `.yaml`, `.yml` and `.json` file of a directory (sorted by name).
    public static func load(path: String) -> [ManifestEntry] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return [unreadable(path, errno == ENOENT ? "no such file or directory" : "cannot be read")]
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }
                .filter { !$0.hasPrefix(".") }
                .sorted()
            return names.flatMap { load(path: joinedPath(path, $0)) }
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            return [unreadable(path, "cannot be read")]
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return [unreadable(path, "is not UTF-8 text")]
        }
        return decode(text, file: path)
    }

    static func unreadable(_ path: String, _ reason: String) -> ManifestEntry {
        ManifestEntry(file: path, document: 0, line: 0,
                      result: .failure(ManifestError(file: path, document: 0, line: 0, column: 0, message: reason)))
    }

    /// The objects of one parsed document (a request body, a patched object).
    public static func decode(node: YAMLNode, file: String) -> [ManifestEntry] {
        decodeDocument(node, file: file, document: 1)
    }

    static func decodeDocument(_ node: ManifestNode, file: String, document: Int) -> [ManifestEntry] {
        let position = node.position
        func failure(_ message: String, _ at: ManifestNode.Position, invalid: Bool = false, fields: [FieldError] = []) -> [ManifestEntry] {
            [ManifestEntry(file: file, document: document, line: at.line,
                           result: .failure(ManifestError(file: file, document: document, line: at.line,
                                                          column: at.column, message: message, isInvalidObject: invalid,
                                                          fieldErrors: fields)))]
        }
        guard case .mapping(let pairs, _) = node else {
            return failure("a manifest document must be an object with apiVersion and kind", position)
        }
        let cursor = ObjectCursor(pairs: pairs, path: "")
        var reader = FieldReader()
        for pair in pairs { reader.positions[pair.key] = pair.keyPosition }
        let apiVersion = reader.string(cursor["apiVersion"], "apiVersion") ?? ""
        let kindName = reader.string(cursor["kind"], "kind") ?? ""
        guard !kindName.isEmpty else { return failure("Object 'Kind' is missing", position) }
        guard !apiVersion.isEmpty else { return failure("Object 'apiVersion' is missing", position) }
        guard supported.contains(where: { $0 == (apiVersion, kindName) }) else {
            var entries = failure("no matches for kind \"\(kindName)\" in version \"\(apiVersion)\"", position)
            if case .failure(var error) = entries[0].result {
                error.isUnservedKind = true
                entries[0].result = .failure(error)
            }
            return entries
        }
        if kindName == "List" {
            var entries: [ManifestEntry] = []
            reader.array(cursor["items"], "items") { _, item, _ in
                entries += decodeDocument(item, file: file, document: document)
            }
            return entries
        }
        var object: RegistryObject
        switch kindName {
        case "Namespace":
            let meta = ObjectDecoding.metadata(&reader, cursor["metadata"], namespaced: false)
            reader.object(cursor["spec"], "spec", ignoreUnknown: true) { _, _ in }
            reader.object(cursor["status"], "status", ignoreUnknown: true) { _, _ in }
            object = .namespace(Namespace(metadata: meta))
        case "Node": object = .node(ObjectDecoding.node(&reader, cursor))
        case "Service": object = .service(ObjectDecoding.service(&reader, cursor))
        case "Pod": object = .pod(ObjectDecoding.pod(&reader, cursor))
        case "Endpoints": object = .endpoints(ObjectDecoding.endpoints(&reader, cursor))
        default: object = .endpointSlice(ObjectDecoding.endpointSlice(&reader, cursor))
        }
        // Fields nobody asked for at the top level.
        for pair in pairs where !cursor.asked.contains(pair.key) {
            reader.fail(FieldError(pair.key, .unknownField), at: pair.value.position)
        }
        object.metadata.preserved = PreservedFields(reader.preserved)
        let kind = object.kind
        let name = object.metadata.name
        if !reader.errors.isEmpty {
            let at = reader.firstErrorPosition ?? position
            let error = RegistryError.invalid(kind: kind, name: name, errors: reader.errors)
            return failure(error.description, at, invalid: true, fields: reader.errors)
        }
        let fieldErrors = Validation.validate(object)
        if !fieldErrors.isEmpty {
            let at = fieldErrors.lazy.compactMap { reader.position(of: $0.path) }.first ?? position
            return failure(RegistryError.invalid(kind: kind, name: name, errors: fieldErrors).description, at, invalid: true,
                           fields: fieldErrors)
        }
        return [ManifestEntry(file: file, document: document, line: position.line, result: .success(object))]
    }
}

extension FieldReader {
    /// The position of a field path, or of its nearest recorded parent.
    func position(of path: String) -> ManifestNode.Position? {
        var candidate = Substring(path)
        while true {
            if let p = positions[String(candidate)] { return p }
            guard let cut = candidate.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            candidate = candidate[..<cut]
        }
    }
}

/// `directory` and `name` joined with one slash.
func joinedPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}
