/// An entry of the question section.
public struct Question: Hashable, Sendable, CustomStringConvertible {
    public var name: DomainName
    public var type: RecordType
    public var recordClass: RecordClass

    public init(name: DomainName, type: RecordType, recordClass: RecordClass = .internet) {
        self.name = name
        self.type = type
        self.recordClass = recordClass
    }

    public init(from reader: inout WireReader) throws(WireError) {
        name = try reader.readName()
        type = RecordType(try reader.readUInt16("a question type"))
        recordClass = RecordClass(try reader.readUInt16("a question class"))
    }

    public func encode(into writer: inout WireWriter) {
        writer.writeName(name)
        writer.writeUInt16(type.rawValue)
        writer.writeUInt16(recordClass.rawValue)
    }

    /// The question with only its name's last `suffixLabels` labels open to compression
    /// (`WireWriter.writeQuestionName`); nil: every suffix, as `encode(into:)`.
    public func encode(into writer: inout WireWriter, suffixLabels: Int?) {
        guard let suffixLabels else { return encode(into: &writer) }
        writer.writeQuestionName(name, suffixLabels: suffixLabels)
        writer.writeUInt16(type.rawValue)
        writer.writeUInt16(recordClass.rawValue)
    }

    /// `name CLASS TYPE`, as in dig's question section.
    public var description: String { "\(name) \(recordClass) \(type)" }
}
