/// Kubernetes' name and value formats (k8s.io/apimachinery/pkg/util/validation), with its messages.
enum NameRules {
    static func isAlnumLower(_ c: UInt8) -> Bool { (97...122).contains(c) || (48...57).contains(c) }
    static func isAlnum(_ c: UInt8) -> Bool { isAlnumLower(c) || (65...90).contains(c) }

    static let dns1123LabelMessage = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    static let dns1123SubdomainMessage = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    static let labelValueMessage = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    static let qualifiedNameMessage = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"

    /// DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters. (A leading digit
    /// is allowed, which is what Kubernetes' RelaxedServiceNameValidation does for Services.)
    static func dns1123Label(_ s: String) -> [String] {
        var problems: [String] = []
        if s.utf8.count > 63 { problems.append("must be no more than 63 characters") }
        let b = Array(s.utf8)
        let ok = !b.isEmpty && isAlnumLower(b.first!) && isAlnumLower(b.last!)
            && b.allSatisfy { isAlnumLower($0) || $0 == UInt8(ascii: "-") }
        if !ok { problems.append(dns1123LabelMessage) }
        return problems
    }

    /// DNS-1123 subdomain: labels joined by dots, at most 253 characters.
    static func dns1123Subdomain(_ s: String) -> [String] {
        var problems: [String] = []
        if s.utf8.count > 253 { problems.append("must be no more than 253 characters") }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        let ok = !s.isEmpty && labels.allSatisfy { label in
            let b = Array(label.utf8)
            return !b.isEmpty && isAlnumLower(b.first!) && isAlnumLower(b.last!)
                && b.allSatisfy { isAlnumLower($0) || $0 == UInt8(ascii: "-") }
        }
        if !ok { problems.append(dns1123SubdomainMessage) }
        return problems
    }

    /// IANA_SVC_NAME (RFC 6335): at most 15 characters, lower-case letters, digits and single
    /// inner hyphens, at least one letter.
    static func ianaServiceName(_ s: String) -> [String] {
        var problems: [String] = []
        let b = Array(s.utf8)
        if b.count > 15 { problems.append("must be no more than 15 characters") }
        if !b.allSatisfy({ isAlnumLower($0) || $0 == UInt8(ascii: "-") }) {
            problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
        }
        if s.contains("--") { problems.append("must not contain consecutive hyphens") }
        if !b.contains(where: { (97...122).contains($0) }) { problems.append("must contain at least one letter (a-z)") }
        if b.first == UInt8(ascii: "-") || b.last == UInt8(ascii: "-") { problems.append("must not begin or end with a hyphen") }
        return problems
    }

    static func labelValue(_ s: String) -> [String] {
        var problems: [String] = []
        let b = Array(s.utf8)
        if b.count > 63 { problems.append("must be no more than 63 characters") }
        if !b.isEmpty {
            let ok = isAlnum(b.first!) && isAlnum(b.last!)
                && b.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
            if !ok { problems.append(labelValueMessage) }
        }
        return problems
    }

    /// A label key: an optional DNS-1123 subdomain prefix and `/`, then a name of up to 63 characters.
    static func labelKey(_ s: String) -> [String] {
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var problems: [String] = []
        let name = String(parts.last ?? "")
        if parts.count == 2 {
            let prefix = String(parts[0])
            if prefix.isEmpty { problems.append("prefix part must be non-empty") }
            else { problems += dns1123Subdomain(prefix).map { "prefix part " + $0 } }
        }
        let b = Array(name.utf8)
        if b.isEmpty { problems.append("name part must be non-empty") }
        else {
            if b.count > 63 { problems.append("name part must be no more than 63 characters") }
            let ok = isAlnum(b.first!) && isAlnum(b.last!)
                && b.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
            if !ok { problems.append(qualifiedNameMessage) }
        }
        return problems
    }
}
