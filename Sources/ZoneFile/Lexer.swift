/// One token of a zone file: a range of the input, where it starts, and whether it was quoted.
struct Token {
    var start: Int
    var end: Int
    var line: Int
    var column: Int
    var isQuoted: Bool
}

/// Splits master-file text into logical lines (RFC 1035 §5.1): parentheses join physical lines,
/// `;` starts a comment, quoted strings keep spaces, a backslash escapes the next character.
struct Lexer {
    let text: [UInt8]
    let file: String
    var position = 0
    var line = 1
    var lineStart = 0

    init(text: [UInt8], file: String) {
        self.text = text
        self.file = file
    }

    func string(_ token: Token) -> String {
        String(decoding: text[token.start..<token.end], as: UTF8.self)
    }

    func bytes(_ token: Token) -> ArraySlice<UInt8> { text[token.start..<token.end] }

    func error(_ message: String, at token: Token) -> ZoneFileError {
        ZoneFileError(file: file, line: token.line, column: token.column, token: string(token), message: message)
    }

    func error(_ message: String, line: Int, column: Int) -> ZoneFileError {
        ZoneFileError(file: file, line: line, column: column, message: message)
    }

    /// Reads the next logical line into `tokens` (emptied first). Returns false at the end of the
    /// input. `startsBlank` tells whether the line began with white space (the previous owner).
    mutating func nextLine(into tokens: inout [Token], startsBlank: inout Bool) throws(ZoneFileError) -> Bool {
        tokens.removeAll(keepingCapacity: true)
        var openParen: (line: Int, column: Int)? = nil
        guard position < text.count else { return false }
        startsBlank = text[position] == 0x20 || text[position] == 0x09
        while position < text.count {
            let c = text[position]
            switch c {
            case 0x0A:
                position += 1
                line += 1
                lineStart = position
                if openParen == nil { return true }
            case 0x20, 0x09, 0x0D:
                position += 1
            case UInt8(ascii: ";"):
                while position < text.count && text[position] != 0x0A { position += 1 }
            case UInt8(ascii: "("):
                if openParen != nil {
                    throw error("nested parentheses", line: line, column: position - lineStart + 1)
                }
                openParen = (line, position - lineStart + 1)
                position += 1
            case UInt8(ascii: ")"):
                guard openParen != nil else {
                    throw error("')' without a matching '('", line: line, column: position - lineStart + 1)
                }
                openParen = nil
                position += 1
            case UInt8(ascii: "\""):
                let column = position - lineStart + 1
                let tokenLine = line
                position += 1
                let start = position
                while true {
                    guard position < text.count, text[position] != 0x0A else {
                        throw error("unterminated quoted string", line: tokenLine, column: column)
                    }
                    if text[position] == UInt8(ascii: "\\") {
                        position += 2
                        continue
                    }
                    if text[position] == UInt8(ascii: "\"") { break }
                    position += 1
                }
                tokens.append(Token(start: start, end: position, line: tokenLine, column: column, isQuoted: true))
                position += 1
            default:
                let start = position
                let column = position - lineStart + 1
                while position < text.count {
                    let d = text[position]
                    if d == UInt8(ascii: "\\") {
                        position = min(position + 2, text.count)
                        continue
                    }
                    if d == 0x20 || d == 0x09 || d == 0x0A || d == 0x0D || d == UInt8(ascii: ";")
                        || d == UInt8(ascii: "(") || d == UInt8(ascii: ")") || d == UInt8(ascii: "\"") {
                        break
                    }
                    position += 1
                }
                tokens.append(Token(start: start, end: position, line: line, column: column, isQuoted: false))
            }
        }
        if let openParen {
            throw error("'(' is never closed", line: openParen.line, column: openParen.column)
        }
        return true
    }
}
