public import ServiceRegistry

/// RFC 6902 JSON Patch (`application/json-patch+json`): a list of operations on paths written
/// as RFC 6901 JSON Pointers, applied in order, all or nothing.
public struct JSONPatch: Sendable {
    public enum Operation: Sendable, Hashable {
        case add(path: [String], value: JSONValue)
        case remove(path: [String])
        case replace(path: [String], value: JSONValue)
        case move(from: [String], path: [String])
        case copy(from: [String], path: [String])
        case test(path: [String], value: JSONValue)
    }

    /// Why a patch document is not a JSON Patch (HTTP 400) or cannot be applied (HTTP 422).
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
        public var isMalformed: Bool
    }

    public let operations: [Operation]

    public init(_ operations: [Operation]) { self.operations = operations }

    /// Reads a patch document: an array of `{"op": …, "path": …}` objects.
    public init(parsing document: JSONValue) throws(Failure) {
        guard case .array(let items) = document else { throw Self.malformed("a JSON patch must be an array of operations") }
        var operations: [Operation] = []
        for (index, item) in items.enumerated() {
            guard let members = item.members else { throw Self.malformed("operation \(index) is not an object") }
            func string(_ key: String) throws(Failure) -> String {
                guard let value = members.first(where: { $0.0 == key })?.1 else {
                    throw Self.malformed("operation \(index) has no \"\(key)\"")
                }
                guard case .string(let text) = value else { throw Self.malformed("operation \(index): \"\(key)\" must be a string") }
                return text
            }
            func value() throws(Failure) -> JSONValue {
                guard let value = members.first(where: { $0.0 == "value" })?.1 else {
                    throw Self.malformed("operation \(index) has no \"value\"")
                }
                return value
            }
            let op = try string("op")
            let path = try Self.pointer(try string("path"))
            switch op {
            case "add": operations.append(.add(path: path, value: try value()))
            case "remove": operations.append(.remove(path: path))
            case "replace": operations.append(.replace(path: path, value: try value()))
            case "move": operations.append(.move(from: try Self.pointer(try string("from")), path: path))
            case "copy": operations.append(.copy(from: try Self.pointer(try string("from")), path: path))
            case "test": operations.append(.test(path: path, value: try value()))
            default: throw Self.malformed("operation \(index): unknown op \"\(op)\"")
            }
        }
        self.operations = operations
    }

    /// RFC 6901: "" is the whole document, else "/" before each token, `~1` for "/" and `~0` for "~".
    static func pointer(_ text: String) throws(Failure) -> [String] {
        if text.isEmpty { return [] }
        guard text.hasPrefix("/") else { throw malformed("the path \"\(text)\" does not start with \"/\"") }
        var tokens: [String] = []
        for raw in text.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            var token = ""
            var chars = raw[...]
            while let c = chars.popFirst() {
                guard c == "~" else { token.append(c); continue }
                switch chars.popFirst() {
                case "0": token.append("~")
                case "1": token.append("/")
                default: throw malformed("the path \"\(text)\" has a \"~\" not followed by 0 or 1")
                }
            }
            tokens.append(token)
        }
        return tokens
    }

    static func malformed(_ reason: String) -> Failure { Failure(description: reason, isMalformed: true) }
    static func failed(_ reason: String) -> Failure { Failure(description: reason, isMalformed: false) }

    static func written(_ path: [String]) -> String {
        path.map { "/" + $0.replacingAll("~", "~0").replacingAll("/", "~1") }.joined()
    }

    public func apply(to document: JSONValue) throws(Failure) -> JSONValue {
        var document = document
        for operation in operations {
            switch operation {
            case .add(let path, let value): document = try Self.add(value, at: path[...], in: document, whole: path)
            case .remove(let path): document = try Self.remove(at: path[...], in: document, whole: path).document
            case .replace(let path, let value):
                document = try Self.remove(at: path[...], in: document, whole: path).document
                document = try Self.add(value, at: path[...], in: document, whole: path)
            case .move(let from, let path):
                if path.starts(with: from) && path.count > from.count {
                    throw Self.failed("cannot move \(Self.written(from)) into its own child \(Self.written(path))")
                }
                let (rest, value) = try Self.remove(at: from[...], in: document, whole: from)
                document = try Self.add(value, at: path[...], in: rest, whole: path)
            case .copy(let from, let path):
                document = try Self.add(try Self.value(at: from[...], in: document, whole: from), at: path[...], in: document, whole: path)
            case .test(let path, let expected):
                guard try Self.value(at: path[...], in: document, whole: path) == expected else {
                    throw Self.failed("testing value \(Self.written(path)) failed")
                }
            }
        }
        return document
    }

    /// An array index token: digits without a leading zero, below `limit` (inclusive with `append`).
    static func index(_ token: String, count: Int, allowEnd: Bool, whole: [String]) throws(Failure) -> Int {
        if allowEnd && token == "-" { return count }
        guard let index = Int(token), index >= 0, token == String(index) else {
            throw failed("\(written(whole)): \"\(token)\" is not an array index")
        }
        guard index < count || (allowEnd && index == count) else {
            throw failed("\(written(whole)): index \(index) is out of range (the array has \(count) elements)")
        }
        return index
    }

    static func value(at path: ArraySlice<String>, in document: JSONValue, whole: [String]) throws(Failure) -> JSONValue {
        guard let token = path.first else { return document }
        switch document {
        case .object(let members):
            guard let child = members.first(where: { $0.0 == token })?.1 else { throw failed("\(written(whole)): no such member") }
            return try value(at: path.dropFirst(), in: child, whole: whole)
        case .array(let items):
            return try value(at: path.dropFirst(), in: items[try index(token, count: items.count, allowEnd: false, whole: whole)], whole: whole)
        default:
            throw failed("\(written(whole)): cannot reach into a value that is not an object or an array")
        }
    }

    static func add(_ value: JSONValue, at path: ArraySlice<String>, in document: JSONValue, whole: [String]) throws(Failure) -> JSONValue {
        guard let token = path.first else { return value }
        let last = path.count == 1
        switch document {
        case .object(var members):
            let existing = members.firstIndex { $0.0 == token }
            if last {
                if let existing { members[existing].1 = value } else { members.append((token, value)) }
            } else {
                guard let existing else { throw failed("\(written(whole)): no such member \"\(token)\"") }
                members[existing].1 = try add(value, at: path.dropFirst(), in: members[existing].1, whole: whole)
            }
            return .object(members)
        case .array(var items):
            let i = try index(token, count: items.count, allowEnd: last, whole: whole)
            if last { items.insert(value, at: i) } else { items[i] = try add(value, at: path.dropFirst(), in: items[i], whole: whole) }
            return .array(items)
        default:
            throw failed("\(written(whole)): cannot add into a value that is not an object or an array")
        }
    }

    static func remove(at path: ArraySlice<String>, in document: JSONValue, whole: [String]) throws(Failure) -> (document: JSONValue, removed: JSONValue) {
        guard let token = path.first else { throw failed("the whole document cannot be removed") }
        let last = path.count == 1
        switch document {
        case .object(var members):
            guard let existing = members.firstIndex(where: { $0.0 == token }) else {
                throw failed("\(written(whole)): no such member \"\(token)\"")
            }
            if last { return (.object(members.filter { $0.0 != token }), members[existing].1) }
            let (child, removed) = try remove(at: path.dropFirst(), in: members[existing].1, whole: whole)
            members[existing].1 = child
            return (.object(members), removed)
        case .array(var items):
            let i = try index(token, count: items.count, allowEnd: false, whole: whole)
            if last {
                let removed = items.remove(at: i)
                return (.array(items), removed)
            }
            let (child, removed) = try remove(at: path.dropFirst(), in: items[i], whole: whole)
            items[i] = child
            return (.array(items), removed)
        default:
            throw failed("\(written(whole)): cannot remove from a value that is not an object or an array")
        }
    }
}

extension String {
    func replacingAll(_ target: Character, _ replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
