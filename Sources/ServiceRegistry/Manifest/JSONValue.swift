public import YAML

/// A JSON document as Kubernetes writes one: object members in the order they were added (kind,
/// apiVersion, metadata, spec, status), so that output reads as kube-apiserver's does and the
/// same object always gives the same bytes.
public indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    /// A number that is not an integer (no field of the kinds served has one; a patch may).
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.double(let x), .double(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let v): hasher.combine(v)
        case .int(let v): hasher.combine(v)
        case .double(let v): hasher.combine(v)
        case .string(let v): hasher.combine(v)
        case .array(let v): hasher.combine(v)
        case .object(let members):
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }

    /// The member `key` of an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// Compact JSON text (no spaces), UTF-8.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let v): out.append(contentsOf: (v ? "true" : "false").utf8)
        case .int(let v): out.append(contentsOf: String(v).utf8)
        case .double(let v): out.append(contentsOf: (v.isFinite ? String(v) : "null").utf8)
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// RFC 8259 §7: quote, backslash and control characters escaped; the rest as UTF-8.
    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// An object's members, Kubernetes' `omitempty`: empty strings, lists and maps and nil are left
/// out.
struct JSONObjectBuilder {
    var members: [(String, JSONValue)] = []

    mutating func add(_ key: String, _ value: JSONValue) { members.append((key, value)) }

    mutating func add(_ key: String, _ value: String) {
        if !value.isEmpty { members.append((key, .string(value))) }
    }

    mutating func add(_ key: String, _ value: Int?) {
        if let value { members.append((key, .int(value))) }
    }

    mutating func add(_ key: String, _ value: Bool?) {
        if let value { members.append((key, .bool(value))) }
    }

    mutating func add(_ key: String, strings: [String]) {
        if !strings.isEmpty { members.append((key, .array(strings.map(JSONValue.string)))) }
    }

    mutating func add(_ key: String, array: [JSONValue]) {
        if !array.isEmpty { members.append((key, .array(array))) }
    }

    /// A string map with its keys sorted (Go's encoding/json sorts map keys).
    mutating func add(_ key: String, map: [String: String]?) {
        guard let map, !map.isEmpty else { return }
        members.append((key, .object(map.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
    }

    /// A nested object, left out when it has no members.
    mutating func add(_ key: String, object: JSONObjectBuilder) {
        if !object.members.isEmpty { members.append((key, object.value)) }
    }

    var value: JSONValue { .object(members) }
}

extension JSONValue {
    /// The members of an object; nil for anything else.
    public var members: [(String, JSONValue)]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The text of a string; nil for anything else.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// An object with `key` set to `value` (replacing that member where it is, else appended),
    /// or without `key` when `value` is nil.
    public func setting(_ key: String, to value: JSONValue?) -> JSONValue {
        var members = self.members ?? []
        if let index = members.firstIndex(where: { $0.0 == key }) {
            if let value { members[index].1 = value } else { members.remove(at: index) }
        } else if let value {
            members.append((key, value))
        }
        return .object(members)
    }

    /// The first document of a JSON (or YAML) text as a value.
    public init(parsing bytes: some Collection<UInt8>) throws(JSONValueError) {
        let node: YAMLNode?
        do {
            node = try YAMLParser.firstDocument(in: String(decoding: bytes, as: UTF8.self))
        } catch {
            throw JSONValueError(line: error.line, column: error.column, message: error.message)
        }
        guard let node else { throw JSONValueError(line: 1, column: 1, message: "no document") }
        try self.init(node)
    }

    /// A YAML or JSON document as a value (YAML 1.1 typing, as the manifests are read).
    public init(_ node: YAMLNode) throws(JSONValueError) {
        switch node {
        case .scalar(let text, let type, let position):
            switch type {
            case .null: self = .null
            case .string: self = .string(text)
            case .bool: self = .bool(["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"].contains(text))
            case .int:
                let digits = String(text.filter { $0 != "_" })
                if let value = Int(digits) {
                    self = .int(value)
                } else if digits.hasPrefix("0x"), let value = Int(digits.dropFirst(2), radix: 16) {
                    self = .int(value)
                } else {
                    throw JSONValueError(line: position.line, column: position.column, message: "the integer \(text) is out of range")
                }
            case .float:
                guard let value = Double(String(text.filter { $0 != "_" })), value.isFinite else {
                    throw JSONValueError(line: position.line, column: position.column, message: "\(text) is not a finite number")
                }
                self = .double(value)
            }
        case .sequence(let items, _):
            var values: [JSONValue] = []
            values.reserveCapacity(items.count)
            for item in items { values.append(try JSONValue(item)) }
            self = .array(values)
        case .mapping(let pairs, _):
            var members: [(String, JSONValue)] = []
            members.reserveCapacity(pairs.count)
            for pair in pairs { members.append((pair.key, try JSONValue(pair.value))) }
            self = .object(members)
        }
    }

    /// The value as a YAML node (positions are line 1, column 1), for the manifest decoder.
    public var node: YAMLNode {
        let here = YAMLNode.Position(line: 1, column: 1)
        switch self {
        case .null: return .scalar("null", .null, here)
        case .bool(let v): return .scalar(v ? "true" : "false", .bool, here)
        case .int(let v): return .scalar(String(v), .int, here)
        case .double(let v): return .scalar(String(v), .float, here)
        case .string(let s): return .scalar(s, .string, here)
        case .array(let items): return .sequence(items.map(\.node), here)
        case .object(let members): return .mapping(members.map { (key: $0.0, keyPosition: here, value: $0.1.node) }, here)
        }
    }
}

/// Where a document cannot be a JSON value.
public struct JSONValueError: Error, Hashable, Sendable {
    public var line: Int
    public var column: Int
    public var message: String
}
