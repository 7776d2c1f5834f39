public import ServiceRegistry

/// A label selector as `?labelSelector=` writes it: requirements joined by commas, each
/// `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)` or `key notin (a,b)`.
public struct LabelSelector: Sendable, Hashable {
    enum Requirement: Sendable, Hashable {
        case exists(String)
        case doesNotExist(String)
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)

        func matches(_ labels: [String: String]) -> Bool {
            switch self {
            case .exists(let k): labels[k] != nil
            case .doesNotExist(let k): labels[k] == nil
            case .equals(let k, let v): labels[k] == v
            case .notEquals(let k, let v): labels[k] != v
            case .isIn(let k, let values): labels[k].map(values.contains) ?? false
            case .notIn(let k, let values): !(labels[k].map(values.contains) ?? false)
            }
        }
    }

    let requirements: [Requirement]

    public init(parsing text: String) throws(APIError) {
        var requirements: [Requirement] = []
        var rest = Substring(text)
        func fail(_ why: String) -> APIError { .badRequest("unable to parse requirement: \(why) in \"\(text)\"") }
        while true {
            rest = rest.drop { $0 == " " }
            if rest.isEmpty { break }
            // One requirement: up to the next comma outside parentheses.
            var depth = 0
            let end = rest.firstIndex { c in
                if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
                return c == "," && depth == 0
            } ?? rest.endIndex
            let part = rest[..<end].trimmingCharacters(in: " ")
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
            guard !part.isEmpty else { throw fail("empty requirement") }
            if part.hasPrefix("!") {
                let key = String(part.dropFirst()).trimmingCharacters(in: " ")
                guard Self.isKey(key) else { throw fail("invalid label key \"\(key)\"") }
                requirements.append(.doesNotExist(key))
            } else if let range = part.firstRange(of: "!=") {
                let key = part[..<range.lowerBound].trimmingCharacters(in: " ")
                let value = part[range.upperBound...].trimmingCharacters(in: " ")
                guard Self.isKey(key) else { throw fail("invalid label key \"\(key)\"") }
                requirements.append(.notEquals(key, value))
            } else if let range = part.firstRange(of: "==") ?? part.firstRange(of: "=") {
                let key = part[..<range.lowerBound].trimmingCharacters(in: " ")
                let value = part[range.upperBound...].trimmingCharacters(in: " ")
                guard Self.isKey(key) else { throw fail("invalid label key \"\(key)\"") }
                requirements.append(.equals(key, value))
            } else if let open = part.firstIndex(of: "(") {
                guard part.hasSuffix(")") else { throw fail("missing \")\"") }
                let head = part[..<open].split(separator: " ", omittingEmptySubsequences: true)
                guard head.count == 2, Self.isKey(String(head[0])) else { throw fail("expected KEY in|notin (VALUES)") }
                let values = Set(part[part.index(after: open)..<part.index(before: part.endIndex)]
                    .split(separator: ",").map { $0.trimmingCharacters(in: " ") })
                switch head[1] {
                case "in": requirements.append(.isIn(String(head[0]), values))
                case "notin": requirements.append(.notIn(String(head[0]), values))
                default: throw fail("unknown operator \"\(head[1])\"")
                }
            } else {
                guard Self.isKey(part) else { throw fail("invalid label key \"\(part)\"") }
                requirements.append(.exists(part))
            }
        }
        self.requirements = requirements
    }

    static func isKey(_ key: String) -> Bool {
        !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
    }

    public func matches(_ labels: [String: String]) -> Bool { requirements.allSatisfy { $0.matches(labels) } }
}

/// A field selector: `field=value`, `field==value` or `field!=value`, joined by commas, over
/// the fields kube-apiserver selects on for each kind here.
public struct FieldSelector: Sendable, Hashable {
    let requirements: [(field: String, value: String, equal: Bool)]
    /// The selector as written.
    let text: String

    public static func == (a: FieldSelector, b: FieldSelector) -> Bool {
        a.requirements.elementsEqual(b.requirements) { $0.field == $1.field && $0.value == $1.value && $0.equal == $1.equal }
    }

    public func hash(into hasher: inout Hasher) {
        for r in requirements { hasher.combine(r.field); hasher.combine(r.value); hasher.combine(r.equal) }
    }

    public init(parsing text: String, for kind: ObjectKind) throws(APIError) {
        var requirements: [(String, String, Bool)] = []
        for part in text.split(separator: ",") {
            let (field, value, equal): (String, String, Bool)
            if let r = part.firstRange(of: "!=") {
                (field, value, equal) = (String(part[..<r.lowerBound]), String(part[r.upperBound...]), false)
            } else if let r = part.firstRange(of: "==") ?? part.firstRange(of: "=") {
                (field, value, equal) = (String(part[..<r.lowerBound]), String(part[r.upperBound...]), true)
            } else {
                throw .badRequest("invalid selector: '\(text)'; can't understand '\(part)'")
            }
            guard Self.fields(of: kind).contains(field) else {
                throw .badRequest("field label not supported: \(field)")
            }
            requirements.append((field, value, equal))
        }
        self.requirements = requirements
        self.text = text
    }

    static func fields(of kind: ObjectKind) -> [String] {
        switch kind {
        case .service: ["metadata.name", "metadata.namespace", "spec.type", "spec.clusterIP"]
        case .pod: ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "status.podIP"]
        default: ["metadata.name", "metadata.namespace"]
        }
    }

    static func value(of field: String, in object: RegistryObject) -> String {
        switch (field, object) {
        case ("metadata.name", _): object.metadata.name
        case ("metadata.namespace", _): object.metadata.namespace
        case ("spec.type", .service(let s)): s.spec.type.rawValue
        case ("spec.clusterIP", .service(let s)): s.spec.clusterIP
        case ("spec.nodeName", .pod(let p)): p.spec.nodeName
        case ("status.phase", .pod(let p)): p.status.phase
        case ("status.podIP", .pod(let p)): p.status.podIP
        default: ""
        }
    }

    public func matches(_ object: RegistryObject) -> Bool {
        requirements.allSatisfy { (Self.value(of: $0.field, in: object) == $0.value) == $0.equal }
    }
}
