import ServiceRegistry

/// A meta.k8s.io Table printed as kubectl prints it: upper-case headers, each column as wide
/// as its widest cell plus three spaces (six at least), the last one unpadded; priority-1
/// columns only when wide. The same printer serves a server's Table and one made offline.
enum TablePrinter {
    static func text(_ table: JSONValue, wide: Bool, namespaceColumn: Bool) -> String {
        guard case .array(let definitions)? = table["columnDefinitions"] else { return "" }
        let shown = definitions.indices.filter { wide || (definitions[$0]["priority"].flatMap(\.intValue) ?? 0) == 0 }
        var lines: [[String]] = [(namespaceColumn ? ["NAMESPACE"] : [])
            + shown.map { (definitions[$0]["name"]?.stringValue ?? "").uppercased() }]
        guard case .array(let rows)? = table["rows"], !rows.isEmpty else { return "" }
        for row in rows {
            guard case .array(let cells)? = row["cells"] else { continue }
            let namespace = row["object"]?["metadata"]?["namespace"]?.stringValue ?? ""
            lines.append((namespaceColumn ? [namespace] : []) + shown.map { $0 < cells.count ? Self.cell(cells[$0]) : "" })
        }
        let columns = lines[0].count
        let widths = (0..<columns).map { column in max(6, lines.map { $0[column].count }.max()! + 3) }
        return lines.map { line in
            line.enumerated().map { column, cell in
                column == columns - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }

    static func cell(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): text
        case .int(let number): String(number)
        case .double(let number): String(number)
        case .bool(let flag): String(flag)
        case .null: "<none>"
        default: value.text
        }
    }
}

extension JSONValue {
    var intValue: Int? {
        if case .int(let value) = self { return value }
        return nil
    }
}
