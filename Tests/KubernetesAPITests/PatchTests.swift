import KubernetesAPI
import ServiceRegistry
import Testing
import YAML

/// A JSON (or YAML) text as a value, its object members sorted so that equal documents compare
/// equal whatever order they were written in.
func json(_ text: String) -> JSONValue {
    guard let node = try? YAMLParser.firstDocument(in: text), let value = try? JSONValue(node) else {
        Issue.record("not JSON: \(text)")
        return .null
    }
    return canonical(value)
}

func canonical(_ value: JSONValue) -> JSONValue {
    switch value {
    case .object(let members): .object(members.map { ($0.0, canonical($0.1)) }.sorted { $0.0 < $1.0 })
    case .array(let items): .array(items.map(canonical))
    default: value
    }
}

struct PatchCase: Sendable, CustomTestStringConvertible {
    var target: String
    var patch: String
    /// The result, or the failure's text.
    var result: String
    var kind: ObjectKind = .service
    var testDescription: String { "\(patch) on \(target)" }
}

struct PatchTests {
    /// RFC 7386, Appendix A: every example.
    static let mergeCases: [PatchCase] = [
        PatchCase(target: #"{"a":"b"}"#, patch: #"{"a":"c"}"#, result: #"{"a":"c"}"#),
        PatchCase(target: #"{"a":"b"}"#, patch: #"{"b":"c"}"#, result: #"{"a":"b","b":"c"}"#),
        PatchCase(target: #"{"a":"b"}"#, patch: #"{"a":null}"#, result: #"{}"#),
        PatchCase(target: #"{"a":"b","b":"c"}"#, patch: #"{"a":null}"#, result: #"{"b":"c"}"#),
        PatchCase(target: #"{"a":["b"]}"#, patch: #"{"a":"c"}"#, result: #"{"a":"c"}"#),
        PatchCase(target: #"{"a":"c"}"#, patch: #"{"a":["b"]}"#, result: #"{"a":["b"]}"#),
        PatchCase(target: #"{"a":{"b":"c"}}"#, patch: #"{"a":{"b":"d","c":null}}"#, result: #"{"a":{"b":"d"}}"#),
        PatchCase(target: #"{"a":[{"b":"c"}]}"#, patch: #"{"a":[1]}"#, result: #"{"a":[1]}"#),
        PatchCase(target: #"["a","b"]"#, patch: #"["c","d"]"#, result: #"["c","d"]"#),
        PatchCase(target: #"{"a":"b"}"#, patch: #"["c"]"#, result: #"["c"]"#),
        PatchCase(target: #"{"a":"foo"}"#, patch: "null", result: "null"),
        PatchCase(target: #"{"a":"foo"}"#, patch: #""bar""#, result: #""bar""#),
        PatchCase(target: #"{"e":null}"#, patch: #"{"a":1}"#, result: #"{"e":null,"a":1}"#),
        PatchCase(target: #"[1,2]"#, patch: #"{"a":"b","c":null}"#, result: #"{"a":"b"}"#),
        PatchCase(target: #"{}"#, patch: #"{"a":{"bb":{"ccc":null}}}"#, result: #"{"a":{"bb":{}}}"#),
    ]

    @Test(arguments: mergeCases)
    func jsonMergePatch(_ c: PatchCase) {
        #expect(canonical(MergePatch.apply(json(c.patch), to: json(c.target))) == json(c.result))
    }

    /// RFC 6902, Appendix A (the examples with a result or an error), and malformed documents.
    static let jsonPatchCases: [PatchCase] = [
        PatchCase(target: #"{"foo":"bar"}"#, patch: #"[{"op":"add","path":"/baz","value":"qux"}]"#, result: #"{"baz":"qux","foo":"bar"}"#),
        PatchCase(target: #"{"foo":["bar","baz"]}"#, patch: #"[{"op":"add","path":"/foo/1","value":"qux"}]"#, result: #"{"foo":["bar","qux","baz"]}"#),
        PatchCase(target: #"{"baz":"qux","foo":"bar"}"#, patch: #"[{"op":"remove","path":"/baz"}]"#, result: #"{"foo":"bar"}"#),
        PatchCase(target: #"{"foo":["bar","qux","baz"]}"#, patch: #"[{"op":"remove","path":"/foo/1"}]"#, result: #"{"foo":["bar","baz"]}"#),
        PatchCase(target: #"{"baz":"qux","foo":"bar"}"#, patch: #"[{"op":"replace","path":"/baz","value":"boo"}]"#, result: #"{"baz":"boo","foo":"bar"}"#),
        PatchCase(target: #"{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}"#,
                  patch: #"[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]"#,
                  result: #"{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}"#),
        PatchCase(target: #"{"foo":["all","grass","cows","eat"]}"#, patch: #"[{"op":"move","from":"/foo/1","path":"/foo/3"}]"#,
                  result: #"{"foo":["all","cows","eat","grass"]}"#),
        PatchCase(target: #"{"baz":"qux","foo":["a",2,"c"]}"#,
                  patch: #"[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]"#,
                  result: #"{"baz":"qux","foo":["a",2,"c"]}"#),
        PatchCase(target: #"{"baz":"qux"}"#, patch: #"[{"op":"test","path":"/baz","value":"bar"}]"#, result: "testing value /baz failed"),
        PatchCase(target: #"{"foo":"bar"}"#, patch: #"[{"op":"add","path":"/child","value":{"grandchild":{}}}]"#,
                  result: #"{"foo":"bar","child":{"grandchild":{}}}"#),
        PatchCase(target: #"{"foo":"bar"}"#, patch: #"[{"op":"add","path":"/baz/bat","value":"qux"}]"#, result: #"/baz/bat: no such member "baz""#),
        PatchCase(target: #"{"/":9,"~1":10}"#, patch: #"[{"op":"test","path":"/~01","value":10}]"#, result: #"{"/":9,"~1":10}"#),
        PatchCase(target: #"{"foo":["bar"]}"#, patch: #"[{"op":"add","path":"/foo/-","value":["abc","def"]}]"#, result: #"{"foo":["bar",["abc","def"]]}"#),
        PatchCase(target: #"{"foo":["bar"]}"#, patch: #"[{"op":"add","path":"/foo/01","value":1}]"#, result: #"/foo/01: "01" is not an array index"#),
        PatchCase(target: #"{"foo":["bar"]}"#, patch: #"[{"op":"remove","path":"/foo/1"}]"#, result: "/foo/1: index 1 is out of range (the array has 1 elements)"),
        PatchCase(target: #"{"a":{"b":1}}"#, patch: #"[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]"#,
                  result: #"{"a":{"b":1},"c":{"b":2}}"#),
        PatchCase(target: #"{"a":{"b":1}}"#, patch: #"[{"op":"move","from":"/a","path":"/a/b/c"}]"#, result: "cannot move /a into its own child /a/b/c"),
        PatchCase(target: "{}", patch: #"{"op":"add"}"#, result: "a JSON patch must be an array of operations"),
        PatchCase(target: "{}", patch: #"[{"op":"frob","path":"/a"}]"#, result: #"operation 0: unknown op "frob""#),
        PatchCase(target: "{}", patch: #"[{"op":"add","path":"a","value":1}]"#, result: #"the path "a" does not start with "/""#),
        PatchCase(target: "{}", patch: #"[{"op":"add","path":"/a~2","value":1}]"#, result: #"the path "/a~2" has a "~" not followed by 0 or 1"#),
        PatchCase(target: "{}", patch: #"[{"op":"add","path":"/a"}]"#, result: #"operation 0 has no "value""#),
        // All or nothing: a failing operation leaves the document as it was (the caller keeps it).
        PatchCase(target: #"{"a":1}"#, patch: #"[{"op":"remove","path":"/a"},{"op":"remove","path":"/a"}]"#, result: #"/a: no such member "a""#),
    ]

    @Test(arguments: jsonPatchCases)
    func jsonPatch(_ c: PatchCase) {
        do {
            let result = try JSONPatch(parsing: json(c.patch)).apply(to: json(c.target))
            #expect(canonical(result) == json(c.result))
        } catch {
            #expect(error.description == c.result)
        }
    }

    /// Strategic merge patches as kubectl apply, edit and label send them, over the list
    /// fields that merge on a key.
    static let strategicCases: [PatchCase] = [
        // Ports merge by `port`: one changed, one added, the rest kept in order.
        PatchCase(target: #"{"spec":{"ports":[{"port":80,"name":"http"},{"port":443,"name":"https"}]}}"#,
                  patch: #"{"spec":{"ports":[{"port":443,"targetPort":8443},{"port":53,"protocol":"UDP"}]}}"#,
                  result: #"{"spec":{"ports":[{"port":80,"name":"http"},{"port":443,"name":"https","targetPort":8443},{"port":53,"protocol":"UDP"}]}}"#),
        // kubectl apply removing a port and keeping the order it was written in.
        PatchCase(target: #"{"spec":{"ports":[{"port":80},{"port":443},{"port":8080}]}}"#,
                  patch: #"{"spec":{"$setElementOrder/ports":[{"port":8080},{"port":80}],"ports":[{"$patch":"delete","port":443}]}}"#,
                  result: #"{"spec":{"ports":[{"port":8080},{"port":80}]}}"#),
        // A list replaced outright.
        PatchCase(target: #"{"spec":{"ports":[{"port":80},{"port":443}]}}"#,
                  patch: #"{"spec":{"ports":[{"$patch":"replace"},{"port":53}]}}"#,
                  result: #"{"spec":{"ports":[{"port":53}]}}"#),
        // A map that replaces, a map deleted, null deleting a key, labels merging.
        PatchCase(target: #"{"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"selector":{"app":"x","v":"1"}}}"#,
                  patch: #"{"metadata":{"labels":{"b":null,"c":"3"}},"spec":{"selector":{"$patch":"replace","app":"y"}}}"#,
                  result: #"{"metadata":{"labels":{"a":"1","c":"3"}},"spec":{"selector":{"app":"y"}}}"#),
        PatchCase(target: #"{"spec":{"selector":{"app":"x"}},"status":{}}"#, patch: #"{"spec":{"selector":{"$patch":"delete"}}}"#,
                  result: #"{"spec":{},"status":{}}"#),
        // Lists without a merge key replace (a Service's externalIPs).
        PatchCase(target: #"{"spec":{"externalIPs":["1.1.1.1","2.2.2.2"]}}"#, patch: #"{"spec":{"externalIPs":["3.3.3.3"]}}"#,
                  result: #"{"spec":{"externalIPs":["3.3.3.3"]}}"#),
        // Primitive lists that merge (finalizers), and what deletes from them.
        PatchCase(target: #"{"metadata":{"finalizers":["a","b"]}}"#,
                  patch: #"{"metadata":{"finalizers":["c"],"$deleteFromPrimitiveList/finalizers":["a"]}}"#,
                  result: #"{"metadata":{"finalizers":["b","c"]}}"#),
        // A pod's containers by name, their ports by containerPort, env by name, conditions by type.
        PatchCase(target: #"{"spec":{"containers":[{"name":"app","image":"a:1","ports":[{"containerPort":80}],"env":[{"name":"X","value":"1"}]},{"name":"side","image":"s"}]},"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Initialized","status":"True"}]}}"#,
                  patch: #"{"spec":{"containers":[{"name":"app","image":"a:2","ports":[{"containerPort":81}],"env":[{"name":"X","value":"2"}]}]},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
                  result: #"{"spec":{"containers":[{"name":"app","image":"a:2","ports":[{"containerPort":80},{"containerPort":81}],"env":[{"name":"X","value":"2"}]},{"name":"side","image":"s"}]},"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"Initialized","status":"True"}]}}"#,
                  kind: .pod),
        // $retainKeys keeps only the keys it names.
        PatchCase(target: #"{"spec":{"a":1,"b":2,"c":3}}"#, patch: #"{"spec":{"$retainKeys":["a","c"],"c":4}}"#,
                  result: #"{"spec":{"a":1,"c":4}}"#),
        // Refusals.
        PatchCase(target: #"{"spec":{"ports":[{"port":80}]}}"#, patch: #"{"spec":{"ports":[{"name":"x"}]}}"#,
                  result: #"an element of spec.ports has no merge key "port""#),
        PatchCase(target: "{}", patch: #"{"spec":{"$patch":"explode"}}"#, result: #"unknown patch directive "explode" at spec"#),
        PatchCase(target: "{}", patch: "[1]", result: "a strategic merge patch must be an object"),
    ]

    @Test(arguments: strategicCases)
    func strategicMergePatch(_ c: PatchCase) {
        do {
            let result = try StrategicMergePatch(kind: c.kind).apply(json(c.patch), to: json(c.target))
            #expect(canonical(result) == json(c.result))
        } catch {
            #expect(error.description == c.result)
        }
    }
}
