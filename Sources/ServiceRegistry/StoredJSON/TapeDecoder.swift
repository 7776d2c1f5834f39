/// Decodes Codable values from JSON text through a `JSONTape`: the registry's stored objects
/// (SQLite rows, etcd values, written by JSONEncoder), which a replica decodes by the ten
/// thousand when it starts. It reads what JSONDecoder's defaults read (numbers for integers, a
/// number with a fraction or exponent for an integer only when exact, the first of two members
/// of one name); errors are DecodingErrors with the coding path and, for bad JSON, the offset.
public enum StoredJSON {
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        try StoredJSONReader().decode(type, from: bytes)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }
}

/// Reads values one after another (a list's page, a restore's share of rows), keeping the
/// tape's and the decoder's buffers from one to the next: a start of twenty thousand values
/// allocates no tape, coding path or decoder per value. One thread at a time.
public final class StoredJSONReader {
    var nodes: [JSONTape.Node] = []
    let decoder = TapeDecoder(view: TapeView(nodes: UnsafeBufferPointer(start: nil, count: 0),
                                             bytes: UnsafeBufferPointer(start: nil, count: 0)), current: 0, keys: [])

    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        let tape: JSONTape
        do {
            tape = try JSONTape(parsing: bytes.assumingMemoryBound(to: UInt8.self), reusing: &nodes)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not valid JSON: \(error)"))
        }
        defer { nodes = tape.nodes }
        return try tape.nodes.withUnsafeBufferPointer { nodes in
            decoder.reset(TapeView(nodes: nodes, bytes: tape.bytes))
            return try decoder.decodeCurrent(T.self)
        }
    }
}

/// One decoder for a whole value: nested values are decoded by moving `current` and pushing
/// their key on `keys` for the duration (no decoder per value, as Foundation's does too).
final class TapeDecoder: Decoder {
    private(set) var tape: TapeView
    var current: Int
    /// The coding path of the value at `current`.
    var keys: [any CodingKey]
    /// The paths of nested containers (which carry their own), kept here so that a container
    /// holds no reference.
    var bases: [[any CodingKey]] = []

    init(view: TapeView, current: Int, keys: [any CodingKey]) {
        self.tape = view
        self.current = current
        self.keys = keys
        self.keys.reserveCapacity(16)
    }

    /// Ready for the value of another tape, its buffers kept.
    func reset(_ view: TapeView) {
        tape = view
        current = 0
        keys.removeAll(keepingCapacity: true)
        bases.removeAll(keepingCapacity: true)
    }

    var codingPath: [any CodingKey] { keys }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(try TapeKeyedContainer<Key>(decoder: self, object: current, base: nil))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try TapeUnkeyedContainer(decoder: self, array: current, base: nil)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    /// `base` kept in `bases`: its index, or -1 for none.
    func keep(_ base: [any CodingKey]?) -> Int {
        guard let base else { return -1 }
        bases.append(base)
        return bases.count - 1
    }

    /// The value at `index`, whose key is `key` below `base` (nil: below `keys`).
    @inline(__always)
    func decode<T: Decodable>(_ type: T.Type, at index: Int, key: any CodingKey, base: [any CodingKey]?) throws -> T {
        // The leaves most values are made of, without a trip through `T(from:)`.
        if T.self == String.self { return try string(at: index, path: (base ?? keys) + [key]) as! T }
        if T.self == Int.self { return try integer(Int.self, at: index, path: (base ?? keys) + [key]) as! T }
        if T.self == Bool.self { return try bool(at: index, path: (base ?? keys) + [key]) as! T }
        let saved = current
        var savedKeys: [any CodingKey]? = nil
        if let base {
            savedKeys = keys
            keys = base
        }
        current = index
        keys.append(key)
        defer {
            current = saved
            if let savedKeys { keys = savedKeys } else { keys.removeLast() }
        }
        return try decodeCurrent(T.self)
    }

    /// The value at `current`.
    func decodeCurrent<T: Decodable>(_ type: T.Type) throws -> T {
        let id = ObjectIdentifier(T.self)
        if id == Self.registryObject, let object = registryObject(at: current) { return object as! T }
        if id == Self.stringArray { return try strings(at: current) as! T }
        if id == Self.stringMap { return try stringMap(at: current) as! T }
        if id == Self.endpointList, let endpoints = endpoints(at: current) { return endpoints as! T }
        if id == Self.objectMeta, let meta = objectMeta(at: current) { return meta as! T }
        if id == Self.service, let service = service(at: current) { return service as! T }
        if id == Self.endpointSlice, let slice = endpointSlice(at: current) { return slice as! T }
        return try T(from: self)
    }

    // Looked up once: spelling `[String].self` at each value looks its metadata up each time.
    static let stringArray = ObjectIdentifier([String].self)
    static let stringMap = ObjectIdentifier([String: String].self)
    static let endpointList = ObjectIdentifier([EndpointSlice.Endpoint].self)
    static let objectMeta = ObjectIdentifier(ObjectMeta.self)
    static let service = ObjectIdentifier(Service.self)
    static let registryObject = ObjectIdentifier(RegistryObject.self)
    static let endpointSlice = ObjectIdentifier(EndpointSlice.self)

    // MARK: Leaves

    func node(_ index: Int, is kind: JSONTape.Kind, _ type: Any.Type, path: @autoclosure () -> [any CodingKey]) throws -> JSONTape.Node {
        let node = tape.nodes[index]
        guard node.kind == kind else { throw mismatch(type, node, path()) }
        return node
    }

    func mismatch(_ type: Any.Type, _ node: JSONTape.Node, _ path: [any CodingKey]) -> DecodingError {
        if node.kind == .null {
            return .valueNotFound(type, .init(codingPath: path, debugDescription: "expected \(type), found null"))
        }
        return .typeMismatch(type, .init(codingPath: path, debugDescription: "expected \(type), found \(Self.describe(node.kind))"))
    }

    static func describe(_ kind: JSONTape.Kind) -> String {
        switch kind {
        case .null: "null"
        case .true, .false: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    func corrupted(_ path: [any CodingKey], _ reason: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: path, debugDescription: reason))
    }

    func string(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> String {
        let node = try node(index, is: .string, String.self, path: path())
        do { return try tape.string(node) } catch { throw corrupted(path(), "\(error)") }
    }

    func bool(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> Bool {
        let node = tape.nodes[index]
        switch node.kind {
        case .true: return true
        case .false: return false
        default: throw mismatch(Bool.self, node, path())
        }
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type, at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> I {
        let node = try node(index, is: .number, I.self, path: path())
        let raw = tape.span(node)
        if !node.fractional {
            let negative = raw[0] == UInt8(ascii: "-")
            var value: I = 0
            for digit in raw[(negative ? 1 : 0)...] {
                let (shifted, over) = value.multipliedReportingOverflow(by: 10)
                let (sum, over2) = negative ? shifted.subtractingReportingOverflow(I(digit &- 48))
                                            : shifted.addingReportingOverflow(I(digit &- 48))
                guard !over && !over2 else {
                    throw corrupted(path(), "\(String(decoding: raw, as: UTF8.self)) does not fit in \(I.self)")
                }
                value = sum
            }
            return value
        }
        // 1e3 or 2.0 for an integer, as JSONDecoder takes them, when exactly one.
        let text = String(decoding: raw, as: UTF8.self)
        guard let double = Double(text), let value = I(exactly: double) else {
            throw corrupted(path(), "\(text) is not a \(I.self)")
        }
        return value
    }

    func double(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> Double {
        let node = try node(index, is: .number, Double.self, path: path())
        let text = String(decoding: tape.span(node), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw corrupted(path(), "\(text) does not fit in Double") }
        return value
    }

    func float(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> Float {
        let double = try double(at: index, path: path())
        let value = Float(double)
        guard value.isFinite else { throw corrupted(path(), "\(double) does not fit in Float") }
        return value
    }

    /// An array of strings (addresses, IP lists), element by element without containers.
    func strings(at index: Int) throws -> [String] {
        let array = try node(index, is: .array, [String].self, path: keys)
        var result: [String] = []
        result.reserveCapacity(Int(array.count))
        var element = index + 1
        for offset in 0..<Int(array.count) {
            result.append(try string(at: element, path: keys + [IndexKey(offset)]))
            element = tape.next(after: element)
        }
        return result
    }

    /// An object of string members (labels, annotations, selectors); the first of a repeated name.
    func stringMap(at index: Int) throws -> [String: String] {
        let object = try node(index, is: .object, [String: String].self, path: keys)
        // Grown as it fills, as Dictionary's own decoding does: reserving a capacity (even 0)
        // allocates storage that twenty thousand empty annotations would each keep.
        var result: [String: String] = [:]
        var member = index + 1
        for _ in 0..<Int(object.count) {
            let name = try string(at: member, path: keys)
            let value = try string(at: member + 1, path: keys + [NameKey(name)])
            if result[name] == nil { result[name] = value }
            member = tape.next(after: member + 1)
        }
        return result
    }
}

extension TapeDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { tape.nodes[current].kind == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try bool(at: current, path: keys) }
    func decode(_ type: String.Type) throws -> String { try string(at: current, path: keys) }
    func decode(_ type: Double.Type) throws -> Double { try double(at: current, path: keys) }
    func decode(_ type: Float.Type) throws -> Float { try float(at: current, path: keys) }
    func decode(_ type: Int.Type) throws -> Int { try integer(type, at: current, path: keys) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type, at: current, path: keys) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type, at: current, path: keys) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type, at: current, path: keys) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type, at: current, path: keys) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type, at: current, path: keys) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type, at: current, path: keys) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type, at: current, path: keys) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type, at: current, path: keys) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type, at: current, path: keys) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeCurrent(type) }
}

/// An element's place in a coding path.
struct IndexKey: CodingKey {
    let intValue: Int?
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
    var stringValue: String { "Index \(intValue ?? 0)" }
}

/// A member's name in a coding path, for members no CodingKeys type names (a map's).
struct NameKey: CodingKey {
    let stringValue: String
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    var intValue: Int? { nil }
}
