/// An object's members, found by walking its nodes and comparing names as bytes. A container
/// made by `Decoder.container` has the decoder's path while it is used (values are decoded
/// strictly nested); one made by `nestedContainer` carries its own (`base`).
struct TapeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    /// Unowned: the decoder outlives every container of its decode (`StoredJSON.decode` holds
    /// it), and a container without references copies as plain bytes, which the generic code
    /// around Codable does at every call.
    unowned(unsafe) let decoder: TapeDecoder
    let object: Int
    let count: Int
    /// The decoder's `bases` entry of a nested container's path, or -1.
    let baseIndex: Int

    init(decoder: TapeDecoder, object: Int, base: [any CodingKey]?) throws {
        let node = try decoder.node(object, is: .object, [String: Any].self, path: base ?? decoder.keys)
        self.decoder = decoder
        self.object = object
        self.count = Int(node.count)
        baseIndex = decoder.keep(base)
    }

    var base: [any CodingKey]? { baseIndex < 0 ? nil : decoder.bases[baseIndex] }
    var codingPath: [any CodingKey] { base ?? decoder.keys }

    var allKeys: [Key] {
        var keys: [Key] = []
        var member = object + 1
        for _ in 0..<count {
            if let name = try? decoder.tape.string(decoder.tape.nodes[member]), let key = Key(stringValue: name) { keys.append(key) }
            member = decoder.tape.next(after: member + 1)
        }
        return keys
    }

    /// The node of `key`'s value (the first member of that name, as JSONDecoder takes it).
    @inline(__always)
    func find(_ key: Key) -> Int? {
        var name = key.stringValue
        let tape = decoder.tape
        return name.withUTF8 { utf8 in
            var member = object + 1
            for _ in 0..<count {
                if tape.string(tape.nodes[member], equals: utf8) { return member + 1 }
                member = tape.next(after: member + 1)
            }
            return nil
        }
    }

    func value(_ key: Key) throws -> Int {
        guard let index = find(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no member \"\(key.stringValue)\""))
        }
        return index
    }

    /// The value of `key` unless it is missing or null.
    func present(_ key: Key) -> Int? {
        guard let index = find(key), decoder.tape.nodes[index].kind != .null else { return nil }
        return index
    }

    func path(_ key: Key) -> [any CodingKey] { codingPath + [key] }

    func contains(_ key: Key) -> Bool { find(key) != nil }
    func decodeNil(forKey key: Key) throws -> Bool { decoder.tape.nodes[try value(key)].kind == .null }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder.bool(at: try value(key), path: path(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decoder.string(at: try value(key), path: path(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder.double(at: try value(key), path: path(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder.float(at: try value(key), path: path(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(type, key) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder.decode(type, at: try value(key), key: key, base: base)
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type, _ key: Key) throws -> I {
        try decoder.integer(type, at: try value(key), path: path(key))
    }

    // One walk of the members for an optional value (the protocol's defaults take three).
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        guard let index = present(key) else { return nil }
        return try decoder.bool(at: index, path: path(key))
    }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        guard let index = present(key) else { return nil }
        return try decoder.string(at: index, path: path(key))
    }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        guard let index = present(key) else { return nil }
        return try decoder.double(at: index, path: path(key))
    }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? {
        guard let index = present(key) else { return nil }
        return try decoder.float(at: index, path: path(key))
    }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try optionalInteger(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try optionalInteger(type, key) }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let index = present(key) else { return nil }
        return try decoder.decode(type, at: index, key: key, base: base)
    }

    func optionalInteger<I: FixedWidthInteger>(_ type: I.Type, _ key: Key) throws -> I? {
        guard let index = present(key) else { return nil }
        return try decoder.integer(type, at: index, path: path(key))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(try TapeKeyedContainer<NestedKey>(decoder: decoder, object: try value(key), base: path(key)))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TapeUnkeyedContainer(decoder: decoder, array: try value(key), base: path(key))
    }

    func superDecoder() throws -> any Decoder {
        let index = Key(stringValue: "super").flatMap(find) ?? -1
        return try superDecoder(at: index, key: NameKey("super"))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try superDecoder(at: find(key) ?? -1, key: key)
    }

    /// A decoder of its own for the value at `index` (-1: missing, decoded as null).
    func superDecoder(at index: Int, key: any CodingKey) throws -> any Decoder {
        guard index >= 0 else { return TapeDecoder.null(path: codingPath + [key]) }
        return TapeDecoder(view: decoder.tape, current: index, keys: codingPath + [key])
    }
}

/// An array's elements in order.
struct TapeUnkeyedContainer: UnkeyedDecodingContainer {
    /// Unowned, as a keyed container's decoder.
    unowned(unsafe) let decoder: TapeDecoder
    let baseIndex: Int
    let count: Int?
    var currentIndex = 0
    /// The node of the next element.
    var position: Int

    init(decoder: TapeDecoder, array: Int, base: [any CodingKey]?) throws {
        let node = try decoder.node(array, is: .array, [Any].self, path: base ?? decoder.keys)
        self.decoder = decoder
        baseIndex = decoder.keep(base)
        count = Int(node.count)
        position = array + 1
    }

    var base: [any CodingKey]? { baseIndex < 0 ? nil : decoder.bases[baseIndex] }
    var codingPath: [any CodingKey] { base ?? decoder.keys }
    var isAtEnd: Bool { currentIndex >= count! }

    /// The next element's node, moving past it.
    mutating func next(_ type: Any.Type) throws -> Int {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "no element left"))
        }
        let index = position
        position = decoder.tape.next(after: position)
        currentIndex += 1
        return index
    }

    var elementPath: [any CodingKey] { codingPath + [IndexKey(currentIndex - 1)] }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any?.self, .init(codingPath: codingPath + [IndexKey(currentIndex)], debugDescription: "no element left"))
        }
        guard decoder.tape.nodes[position].kind == .null else { return false }
        _ = try next(Any?.self)
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { let i = try next(type); return try decoder.bool(at: i, path: elementPath) }
    mutating func decode(_ type: String.Type) throws -> String { let i = try next(type); return try decoder.string(at: i, path: elementPath) }
    mutating func decode(_ type: Double.Type) throws -> Double { let i = try next(type); return try decoder.double(at: i, path: elementPath) }
    mutating func decode(_ type: Float.Type) throws -> Float { let i = try next(type); return try decoder.float(at: i, path: elementPath) }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let index = try next(type)
        return try decoder.decode(type, at: index, key: IndexKey(currentIndex - 1), base: base)
    }

    mutating func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let index = try next(type)
        return try decoder.integer(type, at: index, path: elementPath)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let index = try next([String: Any].self)
        return KeyedDecodingContainer(try TapeKeyedContainer<NestedKey>(decoder: decoder, object: index, base: elementPath))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let index = try next([Any].self)
        return try TapeUnkeyedContainer(decoder: decoder, array: index, base: elementPath)
    }

    mutating func superDecoder() throws -> any Decoder {
        let index = try next(Any.self)
        return TapeDecoder(view: decoder.tape, current: index, keys: elementPath)
    }
}

extension TapeDecoder {
    /// A decoder of a missing value (a super decoder's key absent): every read finds null.
    static func null(path: [any CodingKey]) -> TapeDecoder {
        TapeDecoder(view: nullTape, current: 0, keys: path)
    }

    /// The tape of `null`, for the life of the program (a decoder of it may outlive the call).
    nonisolated(unsafe) static let nullTape: TapeView = {
        let null: StaticString = "null"
        let nodes = UnsafeMutableBufferPointer<JSONTape.Node>.allocate(capacity: 1)
        nodes[0] = JSONTape.Node(kind: .null, escaped: false, fractional: false, start: 0, end: 4, count: 0)
        return TapeView(nodes: UnsafeBufferPointer(nodes), bytes: UnsafeBufferPointer(start: null.utf8Start, count: 4))
    }()
}
