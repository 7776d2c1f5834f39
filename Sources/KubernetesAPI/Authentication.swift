#if canImport(Glibc)
import Glibc
#endif

/// Who a request comes from.
public struct APIUser: Sendable, Hashable {
    public let name: String
    public let uid: String
    public let groups: [String]

    public init(name: String, uid: String = "", groups: [String] = []) {
        self.name = name
        self.uid = uid
        self.groups = groups
    }

    /// The group that may read and watch but not write.
    public static let viewersGroup = "clusterdns:viewers"

    public var mayWrite: Bool { !groups.contains(Self.viewersGroup) }
}

/// Bearer tokens and whom they stand for: kube-apiserver's `--token-auth-file` format, one
/// `token,user,uid,"group1,group2"` per line (the groups column optional, quoted when it holds
/// commas; `#` lines and blank lines ignored).
public struct TokenTable: Sendable {
    var users: [String: APIUser]

    public init(_ users: [String: APIUser]) { self.users = users }

    /// A bad line, with its number.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let line: Int
        public let reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public init(parsing text: String) throws(ParseError) {
        var users: [String: APIUser] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = Self.csvFields(line)
            guard fields.count >= 3 else {
                throw ParseError(line: index + 1, reason: "expected token,user,uid[,\"groups\"], got \(fields.count) field(s)")
            }
            guard !fields[0].isEmpty else { throw ParseError(line: index + 1, reason: "empty token") }
            guard !fields[1].isEmpty else { throw ParseError(line: index + 1, reason: "empty user name") }
            guard users[fields[0]] == nil else { throw ParseError(line: index + 1, reason: "duplicate token") }
            let groups = fields.count > 3 ? fields[3].split(separator: ",").map { $0.trimmingCharacters(in: " ") }.filter { !$0.isEmpty } : []
            users[fields[0]] = APIUser(name: fields[1], uid: fields[2], groups: groups)
        }
        self.users = users
    }

    /// A CSV line's fields: commas separate, double quotes enclose (`""` is a quote inside).
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { current.append("\""); chars.removeFirst() } else { quoted = false }
                } else {
                    current.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                fields.append(current.trimmingCharacters(in: " "))
                current = ""
            } else {
                current.append(c)
            }
        }
        fields.append(current.trimmingCharacters(in: " "))
        return fields
    }

    /// The user of an `Authorization: Bearer TOKEN` header value, if the token is known.
    public func user(authorization: String?) -> APIUser? {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return nil }
        let token = authorization.dropFirst(7).trimmingCharacters(in: " ")
        // Compared in constant time per candidate, so that timing does not tell how much of a
        // token was right.
        var found: APIUser? = nil
        for (candidate, user) in users where Self.constantTimeEqual(candidate, token) { found = user }
        return found
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    /// A new random token: 256 bits from the system's generator (the kernel's getrandom), hex.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef")
        return String((0..<64).map { _ in hex[Int(generator.next() % 16)] })
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
