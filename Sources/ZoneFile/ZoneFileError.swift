/// A zone file that cannot be loaded: where (file, line, column), the offending token, and what
/// was expected instead.
public struct ZoneFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// The token at fault, as written in the file; empty when the problem is not one token.
    public var token: String
    public var message: String

    public init(file: String, line: Int, column: Int, token: String = "", message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.token = token
        self.message = message
    }

    /// `file:line:column: message (at "token")`, the form compilers and named-checkzone use.
    public var description: String {
        var out = "\(file):\(line):\(column): \(message)"
        if !token.isEmpty { out += " (at \"\(token)\")" }
        return out
    }
}
