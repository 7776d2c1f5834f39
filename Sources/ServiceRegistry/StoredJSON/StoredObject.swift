import FoundationEssentials

/// The one form the registry's objects take in a store (SQLite rows, etcd values): the Codable
/// JSON of RegistryObject, written by JSONEncoder and read through a `JSONTape` (a start reads
/// tens of thousands of them).
extension RegistryObject {
    public init(storedJSON bytes: UnsafeRawBufferPointer) throws {
        self = try StoredJSON.decode(RegistryObject.self, from: bytes)
    }

    public init(storedJSON bytes: [UInt8]) throws {
        self = try StoredJSON.decode(RegistryObject.self, from: bytes)
    }

    /// One of many read by `reader` (see StoredJSONReader).
    public init(storedJSON bytes: UnsafeRawBufferPointer, reader: StoredJSONReader) throws {
        self = try reader.decode(RegistryObject.self, from: bytes)
    }

    public func storedJSON() throws -> [UInt8] {
        Array(try JSONEncoder().encode(self))
    }
}
