internal import CYAML

/// Reads YAML (1.1, and therefore JSON) with libyaml's event parser into `YAMLNode`s, one
/// document at a time, so a caller holds one document's tree at once.
///
/// Anchors and aliases are resolved (an alias is the node it names; a document may not expand
/// to more than `maximumNodes` nodes that way, so a "billion laughs" text fails instead of
/// exhausting memory), merge keys (`<<`) are applied with the mapping's own keys winning, and
/// nesting is limited to `maximumDepth` levels. Keys must be scalars.
public enum YAMLParser {
    public static let maximumDepth = 512
    public static let maximumNodes = 10_000_000

    /// Calls `body` with each document's 1-based index and root, in order; throws at the first
    /// text that is not YAML (documents before it have been given to `body`).
    public static func documents(in text: String, _ body: (Int, YAMLNode) -> Void) throws(YAMLError) {
        var text = text
        let result: Result<Void, YAMLError>? = text.utf8.withContiguousStorageIfAvailable { bytes in
            parse(bytes, body)
        }
        if let result { return try result.get() }
        text.makeContiguousUTF8()
        try text.utf8.withContiguousStorageIfAvailable { parse($0, body) }!.get()
    }

    /// The first document of `text`, or nil for an empty text.
    public static func firstDocument(in text: String) throws(YAMLError) -> YAMLNode? {
        var first: YAMLNode? = nil
        try documents(in: text) { _, node in if first == nil { first = node } }
        return first
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Int, YAMLNode) -> Void) -> Result<Void, YAMLError> {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            return .failure(YAMLError(line: 0, column: 0, message: "out of memory", document: 0))
        }
        defer { yaml_parser_delete(&parser) }
        // An empty buffer may have no base address; libyaml needs a pointer all the same.
        let empty: [UInt8] = [0]
        return empty.withUnsafeBufferPointer { fallback in
            yaml_parser_set_input_string(&parser, bytes.baseAddress ?? fallback.baseAddress!, bytes.count)
            var builder = DocumentBuilder()
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    return .failure(parserError(parser, document: max(builder.document, 1)))
                }
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return .success(())
                case YAML_DOCUMENT_START_EVENT:
                    builder.startDocument()
                case YAML_DOCUMENT_END_EVENT:
                    if let root = builder.root { body(builder.document, root) }
                    builder.root = nil
                default:
                    if let error = builder.take(event) { return .failure(error) }
                }
            }
        }
    }

    private static func parserError(_ parser: yaml_parser_t, document: Int) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
        var message = problem
        if parser.error == YAML_READER_ERROR {
            message += " at byte \(parser.problem_offset)"
        } else if let context = parser.context.map({ String(cString: $0) }) {
            message += " (\(context) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1))"
        }
        return YAMLError(line: parser.problem_mark.line + 1, column: parser.problem_mark.column + 1,
                         message: message, document: document)
    }
}

/// Builds one document's tree from its events.
private struct DocumentBuilder {
    typealias Position = YAMLNode.Position
    typealias Pair = (key: String, keyPosition: Position, value: YAMLNode)

    struct Frame {
        var isMapping: Bool
        var position: Position
        var anchor: String?
        var items: [YAMLNode] = []
        var pairs: [Pair] = []
        /// A key read, waiting for its value; `isMerge` for a plain `<<`.
        var pendingKey: (text: String, position: Position, isMerge: Bool)? = nil
        /// Mappings named by merge keys, in the order they take precedence.
        var merges: [YAMLNode] = []
        /// Nodes in this subtree (aliases counted at their full size).
        var size = 1
    }

    var document = 0
    var root: YAMLNode? = nil
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    var nodes = 0

    mutating func startDocument() {
        document += 1
        root = nil
        stack = []
        anchors = [:]
        nodes = 0
    }

    func position(_ mark: yaml_mark_t) -> Position {
        Position(line: mark.line + 1, column: mark.column + 1)
    }

    func error(_ message: String, _ at: Position) -> YAMLError {
        YAMLError(line: at.line, column: at.column, message: message, document: document)
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    /// Takes a node event; returns an error that ends the parse.
    mutating func take(_ event: yaml_event_t) -> YAMLError? {
        let at = position(event.start_mark)
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE
            let type = Self.type(tag: Self.string(scalar.tag)) ?? (plain ? YAMLNode.plainType(text) : .string)
            let node = YAMLNode.scalar(text, type, at)
            if let anchor = Self.string(scalar.anchor) { anchors[anchor] = (node, 1) }
            return attach(node, size: 1, mergeKey: plain && text == "<<")
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let (node, size) = anchors[name] else { return error("found undefined alias \"\(name)\"", at) }
            return attach(node, size: size, mergeKey: false)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            guard stack.count < YAMLParser.maximumDepth else {
                return error("nested deeper than \(YAMLParser.maximumDepth) levels", at)
            }
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            let anchor = isMapping ? Self.string(event.data.mapping_start.anchor) : Self.string(event.data.sequence_start.anchor)
            stack.append(Frame(isMapping: isMapping, position: at, anchor: anchor))
            return nil
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return error("unbalanced end of a collection", at) }
            let node: YAMLNode
            if frame.isMapping {
                node = .mapping(Self.merged(frame.pairs, frame.merges), frame.position)
            } else {
                node = .sequence(frame.items, frame.position)
            }
            if let anchor = frame.anchor { anchors[anchor] = (node, frame.size) }
            return attach(node, size: frame.size, mergeKey: false)
        default:
            return nil
        }
    }

    /// The type an explicit standard tag gives a scalar; nil for no tag or another tag.
    static func type(tag: String?) -> YAMLNode.ScalarType? {
        switch tag {
        case "tag:yaml.org,2002:str", "!": .string
        case "tag:yaml.org,2002:int": .int
        case "tag:yaml.org,2002:float": .float
        case "tag:yaml.org,2002:bool": .bool
        case "tag:yaml.org,2002:null": .null
        default: nil
        }
    }

    /// A mapping's own pairs, then the pairs of the mappings its merge keys name whose keys it
    /// does not have (earlier merges win over later ones).
    static func merged(_ pairs: [Pair], _ merges: [YAMLNode]) -> [Pair] {
        guard !merges.isEmpty else { return pairs }
        var out = pairs
        var keys = Set(pairs.map(\.key))
        for case .mapping(let more, _) in merges {
            for pair in more where keys.insert(pair.key).inserted { out.append(pair) }
        }
        return out
    }

    mutating func attach(_ node: YAMLNode, size: Int, mergeKey: Bool) -> YAMLError? {
        nodes += size
        guard nodes <= YAMLParser.maximumNodes else {
            return error("the document expands to more than \(YAMLParser.maximumNodes) nodes through its aliases", node.position)
        }
        guard var frame = stack.popLast() else {
            root = node
            return nil
        }
        defer { stack.append(frame) }
        frame.size += size
        guard frame.isMapping else {
            frame.items.append(node)
            return nil
        }
        guard let key = frame.pendingKey else {
            guard case .scalar(let text, _, let at) = node else {
                return error("a mapping key must be a scalar, not a mapping or a sequence", node.position)
            }
            frame.pendingKey = (text, at, mergeKey)
            return nil
        }
        frame.pendingKey = nil
        guard key.isMerge else {
            frame.pairs.append((key.text, key.position, node))
            return nil
        }
        switch node {
        case .mapping:
            frame.merges.append(node)
        case .sequence(let items, _) where items.allSatisfy({ if case .mapping = $0 { true } else { false } }):
            frame.merges += items
        default:
            return error("the value of a merge key (<<) must be a mapping or a list of mappings", node.position)
        }
        return nil
    }
}
