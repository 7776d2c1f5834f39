import Testing
import YAML

/// A node written compactly: `{k: v}`, `[a, b]`, scalars as `text:type`.
func show(_ node: YAMLNode) -> String {
    switch node {
    case .scalar(let text, let type, _): "\(text):\(type)"
    case .mapping(let pairs, _): "{" + pairs.map { "\($0.key): \(show($0.value))" }.joined(separator: ", ") + "}"
    case .sequence(let items, _): "[" + items.map(show).joined(separator: ", ") + "]"
    }
}

func documents(_ text: String) throws(YAMLError) -> [String] {
    var out: [String] = []
    try YAMLParser.documents(in: text) { _, node in out.append(show(node)) }
    return out
}

struct YAMLParserTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var yaml: String
        var expected: [String]
        var testDescription: String { yaml.debugDescription }
    }

    static let cases: [Case] = [
        // Plain scalars are typed as YAML 1.1 (Kubernetes) does; quoted ones are strings.
        Case(yaml: "a: 80\nb: \"80\"\nc: '80'\nd: 8.5\ne: 1e3\nf: 0x1F\ng: 1_000\n",
             expected: ["{a: 80:int, b: 80:string, c: 80:string, d: 8.5:float, e: 1e3:float, f: 0x1F:int, g: 1_000:int}"]),
        Case(yaml: "a: yes\nb: No\nc: on\nd: y\ne: true\nf: \"true\"\ng: ~\nh:\ni: null\nj: .inf\nk: n0\n",
             expected: ["{a: yes:bool, b: No:bool, c: on:bool, d: y:bool, e: true:bool, f: true:string, g: ~:null, h: :null, i: null:null, j: .inf:float, k: n0:string}"]),
        Case(yaml: "a: -12\nb: +3.5\nc: 1.2.3\nd: 10.0.0.1\ne: 1.5e-3\n",
             expected: ["{a: -12:int, b: +3.5:float, c: 1.2.3:string, d: 10.0.0.1:string, e: 1.5e-3:float}"]),
        // Explicit standard tags win.
        Case(yaml: "a: !!str 80\nb: !!int \"80\"\nc: ! yes\nd: !custom 5\n",
             expected: ["{a: 80:string, b: 80:int, c: yes:string, d: 5:int}"]),
        // Block and flow styles, JSON, block scalars.
        Case(yaml: "{\"kind\": \"Service\", \"ports\": [{\"port\": 80}, {\"port\": 443}], \"x\": null}",
             expected: ["{kind: Service:string, ports: [{port: 80:int}, {port: 443:int}], x: null:null}"]),
        Case(yaml: "items:\n- a\n- - b\n  - c\n-\n  k: v\n", expected: ["{items: [a:string, [b:string, c:string], {k: v:string}]}"]),
        Case(yaml: "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
             expected: ["{text: line one\nline two\n:string, folded: a b\n:string}"]),
        // Documents: separators, empty documents, an explicit end.
        Case(yaml: "a: 1\n---\nb: 2\n...\n---\n- 3\n", expected: ["{a: 1:int}", "{b: 2:int}", "[3:int]"]),
        Case(yaml: "---\n---\na: 1\n", expected: [":null", "{a: 1:int}"]),
        Case(yaml: "", expected: []),
        Case(yaml: "# only a comment\n", expected: []),
        // Anchors, aliases and merge keys: the mapping's own keys win, earlier merges win.
        Case(yaml: "base: &b {x: 1, y: 2}\ncopy: *b\n", expected: ["{base: {x: 1:int, y: 2:int}, copy: {x: 1:int, y: 2:int}}"]),
        Case(yaml: "a: &s hello\nb: *s\n", expected: ["{a: hello:string, b: hello:string}"]),
        Case(yaml: "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n", expected: ["{base: {x: 1:int, y: 2:int}, m: {y: 3:int, x: 1:int}}"]),
        Case(yaml: "p: &p {x: 1}\nq: &q {x: 2, z: 3}\nm:\n  <<: [*p, *q]\n", expected: ["{p: {x: 1:int}, q: {x: 2:int, z: 3:int}, m: {x: 1:int, z: 3:int}}"]),
        Case(yaml: "m: {\"<<\": 1}\n", expected: ["{m: {<<: 1:int}}"]),
        // Anchors belong to their document.
        Case(yaml: "a: &x 1\n---\nb: 2\n", expected: ["{a: 1:int}", "{b: 2:int}"]),
        // Unicode passes through.
        Case(yaml: "name: \"café ☕\"\nescaped: \"\\u00e9\"\n", expected: ["{name: café ☕:string, escaped: é:string}"]),
    ]

    @Test(arguments: cases)
    func reads(_ c: Case) throws {
        #expect(try documents(c.yaml) == c.expected)
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        var yaml: String
        var message: String
        var line: Int
        var column: Int
        var document = 1
        var testDescription: String { message }
    }

    static let bad: [Bad] = [
        Bad(yaml: "apiVersion: v1\nkind: [Service\n", message: "did not find expected ',' or ']'", line: 3, column: 1),
        Bad(yaml: "a: 1\n b: 2\n", message: "mapping values are not allowed in this context", line: 2, column: 3),
        Bad(yaml: "a: *nowhere\n", message: "found undefined alias \"nowhere\"", line: 1, column: 4),
        Bad(yaml: "a: 1\n---\nb: *x\n", message: "found undefined alias \"x\"", line: 3, column: 4, document: 2),
        Bad(yaml: "? [a, b]\n: 1\n", message: "a mapping key must be a scalar, not a mapping or a sequence", line: 1, column: 3),
        Bad(yaml: "m:\n  <<: 5\n", message: "the value of a merge key (<<) must be a mapping or a list of mappings", line: 2, column: 7),
        Bad(yaml: "a: \"unterminated\n", message: "found unexpected end of stream", line: 2, column: 1),
        Bad(yaml: "a: b\n\tc: d\n", message: "found a tab character that violates indentation (while scanning a plain scalar at line 1, column 4)", line: 2, column: 1),
        Bad(yaml: "a: \u{01}\n", message: "control characters are not allowed", line: 1, column: 1),
        Bad(yaml: String(repeating: "[", count: 600), message: "nested deeper than 512 levels", line: 1, column: 513),
    ]

    @Test(arguments: bad)
    func rejects(_ c: Bad) {
        do {
            _ = try documents(c.yaml)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.hasPrefix(c.message), "\(error.message)")
            #expect(error.line == c.line)
            #expect(error.column == c.column)
            #expect(error.document == c.document)
        }
    }

    /// Aliases of aliases ("billion laughs"): the expansion is counted and stopped.
    @Test func aliasBombsStop() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            yaml += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        do {
            _ = try documents(yaml)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("expands to more than"))
        }
    }

    @Test func positionsAreOneBased() throws {
        let root = try #require(try YAMLParser.firstDocument(in: "kind: Service\nspec:\n  ports:\n    - port: 80\n"))
        guard case .mapping(let pairs, let at) = root else { Issue.record("not a mapping"); return }
        #expect(at == .init(line: 1, column: 1))
        #expect(pairs.map(\.keyPosition) == [.init(line: 1, column: 1), .init(line: 2, column: 1)])
        guard case .mapping(let spec, _) = pairs[1].value, case .sequence(let ports, let portsAt) = spec[0].value else {
            Issue.record("unexpected shape"); return
        }
        #expect(portsAt == .init(line: 4, column: 5))
        #expect(ports[0].position == .init(line: 4, column: 7))
    }

    @Test func documentsBeforeAnErrorAreGiven() {
        var seen: [Int] = []
        #expect(throws: YAMLError.self) {
            try YAMLParser.documents(in: "a: 1\n---\nb: 2\n---\nc: [\n") { index, _ in seen.append(index) }
        }
        #expect(seen == [1, 2])
    }
}

/// Hostile and broken texts: every prefix of a real manifest, bytes flipped at random, and
/// deep or wide structures either parse or give an error with a position; nothing traps.
@Suite struct YAMLHostileInputTests {
    static let manifest = """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          namespace: shop
          labels: &labels {app: web, tier: "front"}
        spec:
          selector: *labels
          ports:
          - {name: http, port: 80, targetPort: 8080}
          - name: https
            port: 443
        ---
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
        """

    @Test func everyPrefixParsesOrFailsWithAPosition() {
        let bytes = Array(Self.manifest.utf8)
        for end in 0...bytes.count {
            let text = String(decoding: bytes[0..<end], as: UTF8.self)
            do {
                try YAMLParser.documents(in: text) { _, _ in }
            } catch {
                #expect(error.line >= 1 && error.column >= 1, "prefix \(end): \(error)")
                #expect(error.line <= text.split(separator: "\n", omittingEmptySubsequences: false).count + 1)
            }
        }
    }

    @Test func flippedBytesNeverTrap() {
        var generator = SystemRandomNumberGenerator()
        let bytes = Array(Self.manifest.utf8)
        let specials = Array("{}[]:,-&*!|>'\"#%@`\t\n ?<".utf8)
        var failures = 0
        for _ in 0..<2_000 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let at = Int.random(in: 0..<mutated.count, using: &generator)
                mutated[at] = Bool.random(using: &generator) ? specials.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
            }
            do {
                try YAMLParser.documents(in: String(decoding: mutated, as: UTF8.self)) { _, _ in }
            } catch {
                failures += 1
                #expect(error.line >= 1 && !error.message.isEmpty)
            }
        }
        #expect(failures > 0, "some mutations must be refused")
    }

    @Test func deepAndWideStructuresAreBounded() throws {
        // Deep block nesting within the bound parses; beyond it, a clear error.
        var deep = ""
        for level in 0..<200 { deep += String(repeating: " ", count: level) + "k\(level):\n" }
        #expect(throws: Never.self) { _ = try YAMLParser.firstDocument(in: deep) }
        #expect(throws: YAMLError.self) { _ = try YAMLParser.firstDocument(in: String(repeating: "{a: ", count: 1_000)) }
        // Wide: 100,000 entries in one sequence.
        let wide = "[" + Array(repeating: "1", count: 100_000).joined(separator: ",") + "]"
        guard case .sequence(let items, _) = try #require(try YAMLParser.firstDocument(in: wide)) else {
            Issue.record("not a sequence"); return
        }
        #expect(items.count == 100_000)
    }
}
