import CIDN2

extension DomainName {
    /// Builds a name from Unicode text (IDNA2008 with UTS #46 non-transitional processing through
    /// libidn2). Labels that are plain ASCII are taken as they are, escapes included, so names such
    /// as `ab--cd` or `_http` pass untouched; every other label becomes its A-label (`xn--…`).
    /// The ideographic full stops U+3002, U+FF0E and U+FF61 separate labels as `.` does.
    public init(unicode text: String) throws(WireError) {
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            try self.init(text)
            return
        }
        var ascii: [String] = []
        var absolute = false
        let separators: Set<Character> = [".", "\u{3002}", "\u{FF0E}", "\u{FF61}"]
        let parts = text.split(omittingEmptySubsequences: false, whereSeparator: { separators.contains($0) })
        for (index, part) in parts.enumerated() {
            if part.isEmpty {
                if index == parts.count - 1 && index > 0 {
                    absolute = true
                    continue
                }
                throw .invalidName(text, reason: "empty label")
            }
            if part.utf8.allSatisfy({ $0 < 0x80 }) {
                ascii.append(String(part))
            } else {
                ascii.append(try Self.toALabel(String(part), in: text))
            }
        }
        try self.init(ascii.joined(separator: ".") + (absolute ? "." : ""))
    }

    static func toALabel(_ label: String, in text: String) throws(WireError) -> String {
        // STD3 (RFC 1123) for the ASCII part of an internationalised label: letters, digits and
        // hyphens only. Checked here because libidn2 silently drops some characters (a space).
        for byte in label.utf8 where byte < 0x80 {
            let ok = (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45
            if !ok {
                throw .invalidName(text, reason: "label \"\(label)\": the ASCII character \"\(Unicode.Scalar(byte))\" is not allowed in an internationalised label")
            }
        }
        var output: UnsafeMutablePointer<CChar>? = nil
        let flags = Int32(IDN2_NONTRANSITIONAL.rawValue) | Int32(IDN2_NFC_INPUT.rawValue)
            | Int32(IDN2_USE_STD3_ASCII_RULES.rawValue)
        let rc = idn2_to_ascii_8z(label, &output, flags)
        defer { free(output) }
        guard rc == Int32(IDN2_OK.rawValue), let output else {
            let reason = String(cString: idn2_strerror(rc))
            throw .invalidName(text, reason: "label \"\(label)\": \(reason)")
        }
        return String(cString: output)
    }

    /// Presentation text with A-labels (`xn--…`) shown as Unicode where libidn2 can decode them;
    /// other labels, and A-labels that do not decode, are shown as in `description`.
    public var unicodeDescription: String {
        var parts: [String] = []
        for label in labels {
            let plain = DomainName.describe([UInt8(label.count)] + label)
            if label.count > 4, label.prefix(4).map(asciiLowercase).elementsEqual("xn--".utf8),
               let decoded = Self.toULabel(plain) {
                parts.append(decoded)
            } else {
                parts.append(plain)
            }
        }
        if parts.isEmpty { return isAbsolute ? "." : "" }
        return parts.joined(separator: ".") + (isAbsolute ? "." : "")
    }

    /// Decodes an A-label, accepting it only if it encodes back to the same A-label (a label
    /// that merely starts with `xn--` but is not valid IDNA is left alone).
    static func toULabel(_ label: String) -> String? {
        var output: UnsafeMutablePointer<CChar>? = nil
        let rc = idn2_to_unicode_8z8z(label, &output, 0)
        defer { free(output) }
        guard rc == Int32(IDN2_OK.rawValue), let output else { return nil }
        let unicode = String(cString: output)
        guard let back = try? toALabel(unicode, in: unicode), back == label.lowercased() else { return nil }
        return unicode
    }
}
