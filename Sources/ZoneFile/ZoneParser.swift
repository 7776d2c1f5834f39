public import DNSWire
import NetAddress

/// Parses RFC 1035 §5 master files: `$ORIGIN`, `$TTL` (RFC 2308), `$INCLUDE` (when enabled),
/// `@`, relative and absolute owners, a blank owner for the previous one, class and TTL in either
/// order, parentheses, comments, quoted strings, escapes, TTL units and the RFC 3597 generic forms.
public struct ZoneParser: Sendable {
    public struct Options: Sendable {
        /// `$INCLUDE` is refused unless enabled: a zone file should not read arbitrary files.
        public var allowInclude: Bool
        public var maxIncludeDepth: Int
        /// TXT text longer than 255 octets is split into several strings instead of refused.
        public var splitLongTXT: Bool

        public init(allowInclude: Bool = false, maxIncludeDepth: Int = 8, splitLongTXT: Bool = true) {
            self.allowInclude = allowInclude
            self.maxIncludeDepth = maxIncludeDepth
            self.splitLongTXT = splitLongTXT
        }
    }

    public var options: Options

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Loads and checks a zone file. Nothing is returned unless the whole file is valid.
    public func load(file path: String, origin: DomainName) throws(ZoneFileError) -> Zone {
        let bytes: [UInt8]
        do { bytes = try readFile(path) } catch {
            throw ZoneFileError(file: path, line: 0, column: 0, message: "cannot read: \(error)")
        }
        return try parse(bytes, file: path, origin: origin)
    }

    /// Parses and checks zone text. `file` is used in errors and to resolve `$INCLUDE`.
    public func parse(_ text: some Sequence<UInt8>, file: String = "<zone>", origin: DomainName) throws(ZoneFileError) -> Zone {
        var state = State(origin: origin)
        try parseRecords(Array(text), file: file, state: &state, depth: 0)
        do {
            return try Zone(origin: origin, records: state.records)
        } catch {
            // Whole-zone checks know no file: this one.
            var error = error
            if error.file.isEmpty { error.file = file }
            throw error
        }
    }

    public func parse(_ text: String, file: String = "<zone>", origin: DomainName) throws(ZoneFileError) -> Zone {
        try parse(Array(text.utf8), file: file, origin: origin)
    }

    struct State {
        var origin: DomainName
        var defaultTTL: UInt32? = nil
        var lastTTL: UInt32? = nil
        var previousOwner: DomainName? = nil
        var records: [(ResourceRecord, SourceLocation)] = []
    }

    func parseRecords(_ text: [UInt8], file: String, state: inout State, depth: Int) throws(ZoneFileError) {
        var lexer = Lexer(text: text, file: file)
        var tokens: [Token] = []
        tokens.reserveCapacity(16)
        var startsBlank = false
        while try lexer.nextLine(into: &tokens, startsBlank: &startsBlank) {
            guard !tokens.isEmpty else { continue }
            let first = tokens[0]
            if !startsBlank && !first.isQuoted && lexer.text[first.start] == UInt8(ascii: "$") {
                try directive(tokens, lexer: lexer, state: &state, depth: depth)
                continue
            }
            let record = try RecordLine(tokens: tokens, startsBlank: startsBlank, lexer: lexer,
                                        state: &state, options: options).record
            state.records.append((record, SourceLocation(file: file, line: first.line)))
        }
    }

    func directive(_ tokens: [Token], lexer: Lexer, state: inout State, depth: Int) throws(ZoneFileError) {
        let name = lexer.string(tokens[0]).uppercased()
        switch name {
        case "$ORIGIN":
            guard tokens.count == 2 else {
                throw lexer.error("$ORIGIN takes exactly one domain name", at: tokens[0])
            }
            state.origin = try absoluteName(tokens[1], lexer: lexer, origin: state.origin)
        case "$TTL":
            guard tokens.count == 2 else { throw lexer.error("$TTL takes exactly one TTL", at: tokens[0]) }
            state.defaultTTL = try parseTTL(tokens[1], lexer: lexer)
        case "$INCLUDE":
            guard options.allowInclude else {
                throw lexer.error("$INCLUDE is disabled (enable it in the parser options)", at: tokens[0])
            }
            guard tokens.count == 2 || tokens.count == 3 else {
                throw lexer.error("$INCLUDE takes a file name and an optional origin", at: tokens[0])
            }
            guard depth < options.maxIncludeDepth else {
                throw lexer.error("$INCLUDE nested deeper than \(options.maxIncludeDepth) files", at: tokens[1])
            }
            let target = try unescapedString(tokens[1], lexer: lexer)
            let relative = String(decoding: target, as: UTF8.self)
            let path: String
            if relative.hasPrefix("/") {
                path = relative
            } else if let slash = lexer.file.lastIndex(of: "/") {
                path = String(lexer.file[...slash]) + relative
            } else {
                path = relative
            }
            let included: [UInt8]
            do { included = try readFile(path) } catch {
                throw lexer.error("$INCLUDE cannot read \(path): \(error)", at: tokens[1])
            }
            // The included file starts with the given origin (or the current one); afterwards the
            // origin and previous owner of the including file are restored (RFC 1035 §5.1).
            let savedOrigin = state.origin
            let savedOwner = state.previousOwner
            if tokens.count == 3 {
                state.origin = try absoluteName(tokens[2], lexer: lexer, origin: state.origin)
            }
            try parseRecords(included, file: path, state: &state, depth: depth + 1)
            state.origin = savedOrigin
            state.previousOwner = savedOwner
        default:
            throw lexer.error("unknown directive (expected $ORIGIN, $TTL or $INCLUDE)", at: tokens[0])
        }
    }
}

/// One record line: owner, then TTL and class in either order, then type and data.
struct RecordLine {
    var record: ResourceRecord

    init(tokens: [Token], startsBlank: Bool, lexer: Lexer, state: inout ZoneParser.State,
         options: ZoneParser.Options) throws(ZoneFileError) {
        var index = 0
        let owner: DomainName
        if startsBlank {
            guard let previous = state.previousOwner else {
                throw lexer.error("a record without an owner, and no previous owner to repeat", at: tokens[0])
            }
            owner = previous
        } else {
            owner = try absoluteName(tokens[0], lexer: lexer, origin: state.origin)
            index = 1
        }
        state.previousOwner = owner

        var ttl: UInt32? = nil
        var recordClass: RecordClass? = nil
        var type: RecordType? = nil
        while index < tokens.count, type == nil {
            let token = tokens[index]
            let text = lexer.bytes(token)
            index += 1
            if !token.isQuoted, let first = text.first, isDigit(first) {
                guard ttl == nil else { throw lexer.error("a second TTL", at: token) }
                ttl = try parseTTL(token, lexer: lexer)
            } else if !token.isQuoted, let c = RecordClass(mnemonicBytes: text) {
                guard recordClass == nil else { throw lexer.error("a second class", at: token) }
                recordClass = c
            } else if !token.isQuoted, let t = RecordType(mnemonicBytes: text) {
                type = t
            } else {
                throw lexer.error("expected a TTL, a class or a record type", at: token)
            }
        }
        guard let type else {
            throw lexer.error("record has no type", at: tokens[tokens.count - 1])
        }
        if let recordClass, recordClass != .internet {
            throw lexer.error("class \(recordClass) is not served (only IN)", at: tokens[index - 2 >= 0 ? index - 2 : 0])
        }
        if type == .opt || type == .any || type == .axfr || type == .ixfr {
            throw lexer.error("\(type) is not a record type that can appear in a zone", at: tokens[index - 1])
        }
        let resolvedTTL: UInt32
        if let ttl {
            resolvedTTL = ttl
            state.lastTTL = ttl
        } else if let d = state.defaultTTL {
            resolvedTTL = d
        } else if let last = state.lastTTL {
            resolvedTTL = last
        } else {
            throw lexer.error("no TTL given and no $TTL before this record", at: tokens[index - 1])
        }
        var data = DataTokens(tokens: tokens, index: index, lexer: lexer, typeToken: tokens[index - 1], origin: state.origin)
        let rdata = try data.parse(type, options: options)
        record = ResourceRecord(name: owner, recordClass: .internet, ttl: resolvedTTL, data: rdata)
    }
}

/// The data tokens of one record, consumed field by field.
struct DataTokens {
    let tokens: [Token]
    var index: Int
    let lexer: Lexer
    let typeToken: Token
    let origin: DomainName

    mutating func next(_ what: String) throws(ZoneFileError) -> Token {
        guard index < tokens.count else {
            throw lexer.error("missing \(what)", at: tokens[tokens.count - 1])
        }
        defer { index += 1 }
        return tokens[index]
    }

    mutating func name(_ what: String) throws(ZoneFileError) -> DomainName {
        try absoluteName(try next(what), lexer: lexer, origin: origin)
    }

    mutating func number<T: FixedWidthInteger & UnsignedInteger>(_ what: String, as: T.Type) throws(ZoneFileError) -> T {
        let token = try next(what)
        let text = lexer.bytes(token)
        guard !token.isQuoted, !text.isEmpty, text.count <= 10, text.allSatisfy(isDigit) else {
            throw lexer.error("expected \(what): a number from 0 to \(T.max)", at: token)
        }
        // At most ten digits: the value fits in 64 bits before the range check.
        var value: UInt64 = 0
        for c in text { value = value * 10 + UInt64(c - 48) }
        guard value <= UInt64(T.max) else {
            throw lexer.error("expected \(what): a number from 0 to \(T.max)", at: token)
        }
        return T(value)
    }

    mutating func parse(_ type: RecordType, options: ZoneParser.Options) throws(ZoneFileError) -> RecordData {
        if index < tokens.count, !tokens[index].isQuoted, lexer.string(tokens[index]) == "\\#" {
            return try generic(type)
        }
        let data: RecordData
        switch type {
        case .a:
            let token = try next("an IPv4 address")
            guard let address = IPv4Address(lexer.string(token)) else {
                throw lexer.error("expected an IPv4 address", at: token)
            }
            data = .a(address)
        case .aaaa:
            let token = try next("an IPv6 address")
            guard let address = IPv6Address(lexer.string(token)) else {
                throw lexer.error("expected an IPv6 address", at: token)
            }
            data = .aaaa(address)
        case .ns: data = .ns(try name("a name server"))
        case .cname: data = .cname(try name("a canonical name"))
        case .ptr: data = .ptr(try name("a domain name"))
        case .mx:
            let preference = try number("a preference", as: UInt16.self)
            data = .mx(MX(preference: preference, exchange: try name("a mail exchange")))
        case .srv:
            let priority = try number("a priority", as: UInt16.self)
            let weight = try number("a weight", as: UInt16.self)
            let port = try number("a port", as: UInt16.self)
            data = .srv(SRV(priority: priority, weight: weight, port: port, target: try name("a target")))
        case .soa:
            let mname = try name("the primary name server")
            let rname = try name("the responsible mailbox")
            let serial = try number("a serial", as: UInt32.self)
            let refresh = try parseTTL(try next("a refresh interval"), lexer: lexer)
            let retry = try parseTTL(try next("a retry interval"), lexer: lexer)
            let expire = try parseTTL(try next("an expire interval"), lexer: lexer)
            let minimum = try parseTTL(try next("a minimum TTL"), lexer: lexer)
            data = .soa(SOA(mname: mname, rname: rname, serial: serial, refresh: refresh, retry: retry,
                            expire: expire, minimum: minimum))
        case .txt:
            var texts: [[UInt8]] = []
            repeat {
                let token = try next("a text string")
                let bytes = try unescapedString(token, lexer: lexer)
                if bytes.count > 255 && !options.splitLongTXT {
                    throw lexer.error("a TXT string holds at most 255 octets (this one has \(bytes.count))", at: token)
                }
                texts.append(bytes)
            } while index < tokens.count
            data = .txt(TXT(splittingEach: texts))
        case .caa:
            let flags = try number("CAA flags", as: UInt8.self)
            let tagToken = try next("a CAA tag")
            let valueToken = try next("a CAA value")
            let value = try unescapedString(valueToken, lexer: lexer)
            do throws(WireError) {
                data = .caa(try CAA(flags: flags, tag: lexer.string(tagToken), value: value))
            } catch {
                throw lexer.error("a CAA tag is 1 to 15 ASCII letters and digits", at: tagToken)
            }
        default:
            throw lexer.error("record type \(type) is only supported in the RFC 3597 form (\\# LENGTH HEX)", at: typeToken)
        }
        if index < tokens.count {
            throw lexer.error("unexpected data after the \(type) record", at: tokens[index])
        }
        return data
    }

    /// RFC 3597 §5: `\# LENGTH HEX…`. For a type this library models, the bytes are decoded
    /// into that type, so `TYPE1 \# 4 0a000001` is the A record 10.0.0.1.
    mutating func generic(_ type: RecordType) throws(ZoneFileError) -> RecordData {
        index += 1
        let length = try number("the RDATA length", as: UInt16.self)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(length))
        while index < tokens.count {
            let token = tokens[index]
            index += 1
            let text = lexer.bytes(token)
            guard !token.isQuoted, text.count % 2 == 0 else {
                throw lexer.error("expected hexadecimal data in pairs of digits", at: token)
            }
            var i = text.startIndex
            while i < text.endIndex {
                guard let high = hexValue(text[i]), let low = hexValue(text[i + 1]) else {
                    throw lexer.error("expected hexadecimal data", at: token)
                }
                bytes.append(high << 4 | low)
                i += 2
            }
        }
        guard bytes.count == Int(length) else {
            throw lexer.error("RDATA length is \(length) but \(bytes.count) bytes follow", at: typeToken)
        }
        let decoded: Result<RecordData, WireError> = bytes.withUnsafeBytes { raw in
            var reader = WireReader(bytes: raw)
            do throws(WireError) {
                return .success(try RecordData(type: type, from: &reader, length: raw.count))
            } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .success(let data): return data
        case .failure(let error):
            throw lexer.error("\(type) data in RFC 3597 form does not decode: \(error)", at: typeToken)
        }
    }
}

func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 48...57: c - 48
    case 65...70: c - 55
    case 97...102: c - 87
    default: nil
    }
}

func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

/// A name token: `@` is the origin; relative names are completed with the origin.
func absoluteName(_ token: Token, lexer: Lexer, origin: DomainName) throws(ZoneFileError) -> DomainName {
    let bytes = lexer.bytes(token)
    if bytes.count == 1 && bytes.first == UInt8(ascii: "@") && !token.isQuoted { return origin }
    do throws(WireError) {
        return try DomainName(presentationBytes: bytes, origin: origin, original: lexer.string(token))
    } catch {
        let reason: String
        if case .invalidName(_, let why) = error { reason = why } else { reason = error.description }
        throw lexer.error("invalid domain name: \(reason)", at: token)
    }
}

/// A character-string with `\X` and `\DDD` escapes resolved.
func unescapedString(_ token: Token, lexer: Lexer) throws(ZoneFileError) -> [UInt8] {
    let text = lexer.bytes(token)
    var out: [UInt8] = []
    out.reserveCapacity(text.count)
    var i = text.startIndex
    while i < text.endIndex {
        let c = text[i]
        if c == UInt8(ascii: "\\") {
            guard i + 1 < text.endIndex else { throw lexer.error("backslash at the end of a string", at: token) }
            let d = text[i + 1]
            if isDigit(d) {
                guard i + 3 < text.endIndex, isDigit(text[i + 2]), isDigit(text[i + 3]) else {
                    throw lexer.error("\\DDD escape needs exactly three digits", at: token)
                }
                let value = Int(d - 48) * 100 + Int(text[i + 2] - 48) * 10 + Int(text[i + 3] - 48)
                guard value <= 255 else { throw lexer.error("\\DDD escape \(value) is larger than 255", at: token) }
                out.append(UInt8(value))
                i += 4
            } else {
                out.append(d)
                i += 2
            }
        } else {
            out.append(c)
            i += 1
        }
    }
    return out
}

/// A TTL: seconds, or units (`1h30m`, `2d`, `1w`), at most 2^31 - 1 (RFC 2181 §8).
func parseTTL(_ token: Token, lexer: Lexer) throws(ZoneFileError) -> UInt32 {
    guard let value = TTLText.parse(lexer.bytes(token)), !token.isQuoted else {
        throw lexer.error("expected a TTL: seconds or units such as 1h30m, at most 2147483647", at: token)
    }
    return value
}

/// TTL text with BIND-style units.
public enum TTLText {
    public static func parse(_ text: some Collection<UInt8>) -> UInt32? {
        guard !text.isEmpty else { return nil }
        var total: UInt64 = 0
        var current: UInt64 = 0
        var digits = 0
        var sawUnit = false
        for c in text {
            if isDigit(c) {
                current = current * 10 + UInt64(c - 48)
                digits += 1
                guard digits <= 10 else { return nil }
                continue
            }
            let multiplier: UInt64
            switch c | 0x20 {
            case UInt8(ascii: "s"): multiplier = 1
            case UInt8(ascii: "m"): multiplier = 60
            case UInt8(ascii: "h"): multiplier = 3600
            case UInt8(ascii: "d"): multiplier = 86400
            case UInt8(ascii: "w"): multiplier = 604800
            default: return nil
            }
            guard digits > 0 else { return nil }
            total += current * multiplier
            current = 0
            digits = 0
            sawUnit = true
            guard total <= 0x7FFF_FFFF else { return nil }
        }
        if digits > 0 { total += current } else if !sawUnit { return nil }
        guard total <= 0x7FFF_FFFF else { return nil }
        return UInt32(total)
    }
}
