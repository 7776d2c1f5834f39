import Foundation
@testable import ServiceRegistry
import TestSupport
import Testing

/// The stored objects' JSON read through the tape (`StoredJSON`): the same values as
/// JSONDecoder gives for what JSONEncoder wrote, precise errors for what is not JSON or not the
/// type, and no trap on any input.
struct StoredJSONTests {
    /// Every kind with the fields it can hold, as a registry stores them after defaulting
    /// (uids, timestamps, allocated addresses and node ports).
    static let everyKind = """
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {team: "a"}, annotations: {note: "é \\u00e9 \\"quoted\\" \\\\ slash/"}}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-a, labels: {zone: z1}}
        status: {addresses: [{type: InternalIP, address: 192.0.2.10}, {type: Hostname, address: node-a}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop, labels: {app: web}, annotations: {a: b}}
        spec:
          type: LoadBalancer
          selector: {app: web}
          ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP, targetPort: 5353}]
          sessionAffinity: ClientIP
          sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
          externalTrafficPolicy: Local
          ipFamilyPolicy: PreferDualStack
          externalIPs: [198.51.100.7]
          publishNotReadyAddresses: true
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: db, namespace: shop}
        spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: ext, namespace: shop}
        spec: {type: ExternalName, externalName: api.example.com}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: web-0, namespace: shop, labels: {app: web}}
        spec:
          nodeName: node-a
          hostname: web-0
          subdomain: db
          containers:
          - name: app
            ports: [{name: http, containerPort: 8080}, {containerPort: 9090, protocol: UDP}]
            readinessProbe: {httpGet: {port: http, path: /ready, scheme: HTTPS, httpHeaders: [{name: X-A, value: "1"}]}, periodSeconds: 5, failureThreshold: 2}
            startupProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 3}
          - name: side
            readinessProbe: {grpc: {port: 9090, service: health}, timeoutSeconds: 2, successThreshold: 1}
            livenessProbe: {exec: {command: [cat, /tmp/ok]}}
        status:
          podIP: 10.244.0.5
          podIPs: [{ip: 10.244.0.5}, {ip: "fd00::5"}]
          phase: Running
          conditions: [{type: Ready, status: "True"}]
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: manual, namespace: shop}
        subsets:
        - addresses: [{ip: 10.244.1.1, hostname: one, nodeName: node-a, targetRef: {kind: Pod, namespace: shop, name: one}}]
          notReadyAddresses: [{ip: 10.244.1.2}]
          ports: [{name: http, port: 80}, {name: q, port: 53, protocol: UDP}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: manual-1, namespace: shop, labels: {kubernetes.io/service-name: manual}}
        addressType: IPv6
        endpoints:
        - addresses: ["fd00::1"]
          conditions: {ready: true, serving: true, terminating: false}
          hostname: one
          nodeName: node-a
          zone: z1
          targetRef: {kind: Pod, namespace: shop, name: one}
        - addresses: ["fd00::2"]
          conditions: {ready: false}
        ports: [{name: http, port: 80, protocol: TCP, appProtocol: http}]
        """

    /// The objects of `everyKind` as a registry holds them, with the Endpoints and slices it derives.
    static func storedObjects() throws -> [RegistryObject] {
        let registry = try Registry()
        for entry in Manifest.decode(everyKind, file: "every-kind.yaml") { try registry.apply(try entry.result.get()) }
        let snapshot = registry.snapshot()
        return Array(snapshot.objects.values) + snapshot.derivedObjects(.endpoints) + snapshot.derivedObjects(.endpointSlice)
    }

    @Test func everyKindReadsBackAsJSONDecoderReadsIt() throws {
        let objects = try Self.storedObjects()
        #expect(Set(objects.map(\.kind)) == Set(ObjectKind.allCases), "a fixture of every kind")
        for object in objects {
            let bytes = try object.storedJSON()
            let tape = try RegistryObject(storedJSON: bytes)
            #expect(tape == object, "\(object.key)")
            #expect(tape == (try JSONDecoder().decode(RegistryObject.self, from: Data(bytes))), "\(object.key)")
        }
        // The documented manifests of the encoding tests too.
        for c in ObjectEncodingTests.cases {
            let object = try #require(Manifest.decode(c.manifest, file: "case.yaml").first).result.get()
            #expect(try RegistryObject(storedJSON: object.storedJSON()) == object)
        }
    }

    /// One reader for many values, as a list's page is read: a value that fails halfway (its
    /// coding path deep in a nested object) leaves nothing behind for the next.
    @Test func aReaderReadsValueAfterValue() throws {
        let objects = try Self.storedObjects()
        let reader = StoredJSONReader()
        for object in objects {
            let bytes = try object.storedJSON()
            let broken = Array(bytes.prefix(bytes.count * 2 / 3)) + Array(#"{"x":[1,{"#.utf8)
            #expect(throws: DecodingError.self) { try broken.withUnsafeBytes { try RegistryObject(storedJSON: $0, reader: reader) } }
            // A name that is not a string: the path starts at the value's top, whatever failed before.
            let wrongType = Array(String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: #""name":""#, with: #""name":7,"x":""#).utf8)
            #expect { try wrongType.withUnsafeBytes { try RegistryObject(storedJSON: $0, reader: reader) } } throws: { error in
                guard case .typeMismatch(_, let context) = error as? DecodingError else { return false }
                return context.codingPath.first?.stringValue.lowercased() == object.kind.rawValue.lowercased()
                    && context.codingPath.last?.stringValue == "name"
            }
            let read = try bytes.withUnsafeBytes { try RegistryObject(storedJSON: $0, reader: reader) }
            #expect(read == (try RegistryObject(storedJSON: bytes)))
        }
    }

    /// A type with every shape the Codable synthesis makes: optionals, nested arrays and maps,
    /// an enum with payloads (nested keyed containers), integers of every width.
    struct Sample: Codable, Equatable {
        enum Payload: Codable, Equatable { case text(String), pair(Int, Bool), empty }
        var name: String
        var optional: String?
        var int8: Int8?
        var uint16: UInt16?
        var int64: Int64?
        var uint64: UInt64?
        var double: Double?
        var float: Float?
        var flags: [Bool?]?
        var matrix: [[Int]]?
        var map: [String: [String]]?
        var labels: [String: String]?
        var payloads: [Payload]?
        var nested: [Sample]?
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let json: String
        /// The decoded value's `name`, or the error's text (a fragment of it).
        let expected: Result<String, Failure>
        struct Failure: Error, Equatable { let text: String }
        var testDescription: String { json.count > 60 ? String(json.prefix(60)) + "…" : json }
        init(_ json: String, name: String) { self.json = json; expected = .success(name) }
        init(_ json: String, error: String) { self.json = json; expected = .failure(Failure(text: error)) }
    }

    static let cases: [Case] = [
        Case(#"{"name":"a"}"#, name: "a"),
        Case(" \t\r\n{ \"name\" : \"a\" } \n", name: "a"),
        Case(#"{"name":"caf\u00e9 \ud83d\ude00 \/ \" \\ \n"}"#, name: "café 😀 / \" \\ \n"),
        Case(#"{"name":"first","name":"last"}"#, name: "first"),
        Case(#"{"name":"a","labels":{"k":"first","k":"last"}}"#, name: "a"),
        Case(#"{"name":"n","int8":1e2,"uint64":18446744073709551615,"int64":-9223372036854775808}"#, name: "n"),
        Case(#"{"name":"n","optional":null,"nested":null}"#, name: "n"),
        // Not JSON: the offset and the reason.
        Case("", error: "byte 0: a value expected, found the end of input"),
        Case(#"{"name":"a",}"#, error: "byte 12: a member's name (a string) expected, found '}'"),
        Case(#"{"name":"a"} x"#, error: "byte 13: unexpected 'x' after the value"),
        Case(#"{"name":"a""#, error: "byte 0: an object without its closing '}'"),
        Case(#"{"name":"a"#, error: "byte 8: a string without its closing quote"),
        Case("{\"name\":\"a\u{1}\"}", error: "byte 10: a control character in a string"),
        Case(#"{"name":"\x"}"#, error: #"byte 9: an unknown escape \'x'"#),
        Case(#"{"name":"\u12"}"#, error: #"byte 9: \u without four hexadecimal digits"#),
        Case(#"{"name":"\ud83d"}"#, error: "a lone surrogate"),
        Case(#"{"name":"a","int8":01}"#, error: "byte 19: a number with a leading zero"),
        Case(#"{"name":"a","int8":1.}"#, error: "byte 21: a digit expected after '.'"),
        Case(#"{"name":"a","int8":-}"#, error: "byte 20: a digit expected"),
        Case(#"{"name":tru}"#, error: "byte 8: a value expected, found 't'"),
        Case(#"{"name" "a"}"#, error: "byte 8: ':' expected"),
        Case(String(repeating: "[", count: 600), error: "nested deeper than 512"),
        // JSON, not the type: the coding path and the reason.
        Case(#"{"optional":"x"}"#, error: "no member \"name\""),
        Case(#"{"name":null}"#, error: "expected String, found null"),
        Case(#"{"name":1}"#, error: "expected String, found a number"),
        Case(#"{"name":"a","int8":300}"#, error: "300 does not fit in Int8"),
        Case(#"{"name":"a","uint16":-1}"#, error: "-1 does not fit in UInt16"),
        Case(#"{"name":"a","int8":1.5}"#, error: "1.5 is not a Int8"),
        Case(#"{"name":"a","double":1e400}"#, error: "1e400 does not fit in Double"),
        Case(#"{"name":"a","matrix":[[1],["x"]]}"#, error: "matrix, Index 1, Index 0"),
        Case(#"{"name":"a","labels":{"k":1}}"#, error: "labels, k"),
        Case(#"{"name":"a","payloads":[{"unknown":{}}]}"#, error: "payloads"),
        Case(#"["name"]"#, error: "expected Dictionary<String, Any>, found an array"),
    ]

    @Test(arguments: cases)
    func decodesOrSaysWhy(_ c: Case) {
        let result = Result { try StoredJSON.decode(Sample.self, from: Array(c.json.utf8)) }
        switch (result, c.expected) {
        case (.success(let sample), .success(let name)):
            #expect(sample.name == name)
            #expect(sample == (try? JSONDecoder().decode(Sample.self, from: Data(c.json.utf8))), "as JSONDecoder reads it")
        case (.failure(let error), .failure(let expected)):
            let text = Self.describe(error)
            #expect(text.contains(expected.text), "\(text)")
        case (.success(let sample), .failure(let expected)):
            Issue.record("decoded \(sample), expected an error containing \(expected.text)")
        case (.failure(let error), .success):
            Issue.record("failed: \(Self.describe(error))")
        }
    }

    /// An error's reason and coding path in one line.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c):
            return c.codingPath.map(\.stringValue).joined(separator: ", ") + ": " + c.debugDescription
        @unknown default:
            return "\(error)"
        }
    }

    /// An EndpointSlice's endpoints are read without Codable (`TapeFastPaths`) where the value
    /// is what a registry writes, and through Codable otherwise: either way as JSONDecoder reads
    /// them, or refused where it refuses them.
    static let endpointArrays: [String] = [
        #"[]"#,
        #"[{"conditions":{"ready":true},"addresses":["10.0.0.1"]}]"#,
        #"[{"addresses":["10.0.0.1","10.0.0.2"],"conditions":{"ready":false,"serving":true,"terminating":false},"hostname":"h","nodeName":"n","zone":"z"}]"#,
        #"[{"addresses":[]},{"addresses":["fd00::1"],"conditions":{}}]"#,
        #"[{"addresses":["a"],"conditions":null,"hostname":null,"nodeName":null,"zone":null,"targetRef":null}]"#,
        #"[{"addresses":["a"],"conditions":{"ready":null,"serving":null,"terminating":null}}]"#,
        #"[{"addresses":["a"],"extra":{"b":[1,{"c":null}]},"conditions":{"ready":true,"other":[true],"addresses":1},"ready":"x"}]"#,
        #"[{"addresses":["a"],"addresses":["b"]}]"#,
        #"[{"addresses":["a"],"conditions":{"ready":true,"ready":false}}]"#,
        #"[{"addr\u0065sses":["a"],"hostname":"h\u00e9"}]"#,
        #"[{"addresses":["caf\u00e9","é"],"zone":"z\n"}]"#,
        #"[{"addresses":["a"],"targetRef":{"kind":"Pod","namespace":"n","name":"p"}}]"#,
        // Not endpoints: refused by both.
        #"[{"addresses":"a"}]"#,
        #"[{"addresses":[1]}]"#,
        #"[{"addresses":[null]}]"#,
        #"[{"addresses":[["a"]]}]"#,
        #"[{"addresses":null}]"#,
        #"[{"conditions":{"ready":true}}]"#,
        #"[{"addresses":["a"],"conditions":[]}]"#,
        #"[{"addresses":["a"],"conditions":{"ready":"yes"}}]"#,
        #"[{"addresses":["a"],"conditions":{"serving":1}}]"#,
        #"[{"addresses":["a"],"hostname":1}]"#,
        #"[{"addresses":["a"],"targetRef":"p"}]"#,
        #"[["a"]]"#,
        #"[null]"#,
        #"{"addresses":["a"]}"#,
    ]

    @Test(arguments: endpointArrays)
    func endpointsReadAsJSONDecoderReadsThem(_ json: String) {
        let tape = Result { try StoredJSON.decode([EndpointSlice.Endpoint].self, from: Array(json.utf8)) }
        let foundation = Result { try JSONDecoder().decode([EndpointSlice.Endpoint].self, from: Data(json.utf8)) }
        switch (tape, foundation) {
        case (.success(let a), .success(let b)): #expect(a == b)
        case (.failure, .failure): break
        case (.success(let a), .failure(let error)): Issue.record("read \(a); JSONDecoder: \(Self.describe(error))")
        case (.failure(let error), .success(let b)): Issue.record("refused (\(Self.describe(error))); JSONDecoder read \(b)")
        }
    }

    /// Every object's metadata is read the same way (`TapeFastPaths.objectMeta`).
    static let metadata: [String] = [
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"5f53552f-21bd-4965-b4c9-2c29f15a7c0a","resourceVersion":3}"#,
        #"{"uid":"u","resourceVersion":0,"annotations":{"a":"1"},"labels":{"k":"v","k":"w"},"namespace":"","name":"x","creationTimestamp":1796628660}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"U","resourceVersion":1e2,"creationTimestamp":null,"preserved":null,"extra":[{}]}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"","resourceVersion":1,"preserved":"{\"spec\":{\"x\":1}}"}"#,
        #"{"name":"caf\u00e9","n\u0061mespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1}"#,
        #"{"name":"a","name":"b","namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1}"#,
        // Not metadata: refused by both.
        #"{"namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1}"#,
        #"{"name":null,"namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1}"#,
        #"{"name":"a","namespace":"n","labels":null,"annotations":{},"uid":"u","resourceVersion":1}"#,
        #"{"name":"a","namespace":"n","labels":{"k":1},"annotations":{},"uid":"u","resourceVersion":1}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":-1}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":"1"}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1,"creationTimestamp":1.5}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":7,"resourceVersion":1}"#,
        #"{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1,"preserved":"{"}"#,
        #"["name"]"#,
    ]

    @Test(arguments: metadata)
    func metadataReadsAsJSONDecoderReadsIt(_ json: String) {
        let tape = Result { try StoredJSON.decode(ObjectMeta.self, from: Array(json.utf8)) }
        let foundation = Result { try JSONDecoder().decode(ObjectMeta.self, from: Data(json.utf8)) }
        switch (tape, foundation) {
        case (.success(let a), .success(let b)): #expect(a == b)
        case (.failure, .failure): break
        case (.success(let a), .failure(let error)): Issue.record("read \(a); JSONDecoder: \(Self.describe(error))")
        case (.failure(let error), .success(let b)): Issue.record("refused (\(Self.describe(error))); JSONDecoder read \(b)")
        }
    }

    /// A Service, read without Codable where the value is what a registry writes
    /// (`TapeFastPaths+Service`) and through Codable otherwise: either way as JSONDecoder
    /// reads it, or refused where it refuses it. `fast`: the reading does not give up.
    struct ServiceCase: CustomTestStringConvertible, Sendable {
        let json: String
        let fast: Bool
        var testDescription: String { json }
        init(spec: String = Self.spec, status: String = #"{"loadBalancerIngress":[]}"#, fast: Bool) {
            json = #"{"metadata":{"name":"a","namespace":"n","labels":{},"annotations":{},"uid":"u","resourceVersion":1},"spec":"#
                + spec + #","status":"# + status + "}"
            self.fast = fast
        }
        /// A spec as a registry stores a ClusterIP service, its ports replaced by `ports`.
        static func spec(ports: String = Self.port, _ extra: String = "") -> String {
            #"{"type":"ClusterIP","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"ipFamilies":["IPv4"],"ports":["#
                + ports + #"],"externalName":"","loadBalancerIP":"","externalIPs":[],"sessionAffinity":"None","publishNotReadyAddresses":false"#
                + extra + "}"
        }
        static let spec = spec()
        static let port = #"{"name":"http","protocol":"TCP","port":80,"targetPort":{"int":{"_0":8080}},"nodePort":0}"#
        static func port(targetPort: String) -> String {
            #"{"name":"http","protocol":"TCP","port":80,"targetPort":"# + targetPort + #","nodePort":0}"#
        }
    }

    static let services: [ServiceCase] = [
        ServiceCase(fast: true),
        ServiceCase(spec: ServiceCase.spec(ports: "", #","selector":{"app":"web"},"ipFamilyPolicy":"PreferDualStack","sessionAffinityTimeoutSeconds":600,"externalTrafficPolicy":"Local","internalTrafficPolicy":"Cluster""#),
                    status: #"{"loadBalancerIngress":["198.51.100.1"]}"#, fast: true),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"string":{"_0":"http"}}"#) + "," + ServiceCase.port),
                    fast: true),
        ServiceCase(spec: #"{"type":"LoadBalancer","clusterIP":"None","clusterIPs":[],"ipFamilies":["IPv4","IPv6"],"ports":[{"name":"","protocol":"UDP","port":53,"nodePort":30053}],"externalName":"x","loadBalancerIP":"192.0.2.1","externalIPs":["198.51.100.7"],"sessionAffinity":"ClientIP","publishNotReadyAddresses":true}"#,
                    fast: true),
        // Optional members null, unknown members at every level, numbers written otherwise.
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: "null"), #","ipFamilyPolicy":null,"selector":null,"sessionAffinityTimeoutSeconds":null,"externalTrafficPolicy":null,"internalTrafficPolicy":null"#),
                    fast: true),
        ServiceCase(spec: ServiceCase.spec(ports: #"{"appProtocol":"h2c","name":"http","protocol":"TCP","port":8e1,"nodePort":0,"targetPort":{"int":{"_0":80.0,"other":[1]}}}"#, #","extra":{"type":1},"loadBalancerIngress":"x""#),
                    status: #"{"loadBalancerIngress":[],"conditions":[{"type":"x"}]}"#, fast: true),
        // Read by Codable (the reading gives up): an escaped or a repeated name, a payload
        // beside an unknown member.
        ServiceCase(spec: ServiceCase.spec().replacingOccurrences(of: #""clusterIP":"#, with: #""cl\u0075sterIP":"#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port, #","clusterIP":"10.96.0.11""#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"int":{"_0":1},"unknown":2}"#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"int":{"_0":1,"_0":2}}"#)), fast: false),
        // Not a Service: refused by both.
        ServiceCase(spec: ServiceCase.spec().replacingOccurrences(of: #""clusterIP":"10.96.0.10","#, with: ""), fast: false),
        ServiceCase(spec: ServiceCase.spec().replacingOccurrences(of: "ClusterIP", with: "Weird"), fast: false),
        ServiceCase(spec: ServiceCase.spec().replacingOccurrences(of: #"["IPv4"]"#, with: #"["IPv5"]"#), fast: false),
        ServiceCase(spec: ServiceCase.spec().replacingOccurrences(of: #""None""#, with: "null"), fast: false),
        ServiceCase(spec: ServiceCase.spec().replacingOccurrences(of: "false", with: #""false""#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: #"{"name":"http","protocol":"TCP","port":80}"#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: #"{"name":"http","protocol":"tcp","port":80,"nodePort":0}"#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: #"{"name":"http","protocol":"TCP","port":80.5,"nodePort":0}"#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: "8080")), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #""http""#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: "{}")), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"int":{}}"#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"int":{"_0":"80"}}"#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"string":{"_0":80}}"#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"float":{"_0":1}}"#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port(targetPort: #"{"int":{"_0":1},"string":{"_0":"a"}}"#)), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port, #","selector":{"app":1}"#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port, #","sessionAffinityTimeoutSeconds":1.5"#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port, #","externalTrafficPolicy":"local""#), fast: false),
        ServiceCase(spec: ServiceCase.spec(ports: ServiceCase.port, #","ipFamilyPolicy":1"#), fast: false),
        ServiceCase(status: "{}", fast: false),
        ServiceCase(status: "null", fast: false),
        ServiceCase(spec: "[]", fast: false),
        ServiceCase(spec: "null", fast: false),
    ]

    @Test(arguments: services)
    func servicesReadAsJSONDecoderReadsThem(_ c: ServiceCase) throws {
        try Self.expectReadAlike(Service.self, c.json, fast: c.fast) { $0.service(at: 0) }
    }

    /// `json` read through the tape as JSONDecoder reads it, or refused by both; `read`, the
    /// reading alone, gives up exactly when it is not `fast`.
    static func expectReadAlike<T: Decodable & Equatable>(_ type: T.Type, _ json: String, fast: Bool,
                                                           _ read: (TapeDecoder) -> T?) throws {
        let bytes = Array(json.utf8)
        let tape = Result { try StoredJSON.decode(T.self, from: bytes) }
        let foundation = Result { try JSONDecoder().decode(T.self, from: Data(bytes)) }
        switch (tape, foundation) {
        case (.success(let a), .success(let b)): #expect(a == b, "\(json)")
        case (.failure, .failure): break
        case (.success(let a), .failure(let error)): Issue.record("\(json): read \(a); JSONDecoder: \(describe(error))")
        case (.failure(let error), .success(let b)): Issue.record("\(json): refused (\(describe(error))); JSONDecoder read \(b)")
        }
        let alone = try reading(bytes, read)
        #expect((alone != nil) == fast, "\(json): the reading \(alone == nil ? "gave up" : "did not give up")")
    }

    /// A reading tracks the members it has seen as bits of a UInt64.
    @Test func theReadingsKnowAtMost64Members() {
        #expect(TapeDecoder.Member.allCases.count <= 64)
        #expect(TapeDecoder.Member.allCases.map(\.rawValue) == Array(0..<TapeDecoder.Member.allCases.count))
    }

    /// What a reading alone gives for `bytes` (nil: it gives up).
    static func reading<T>(_ bytes: [UInt8], _ read: (TapeDecoder) -> T?) throws -> T? {
        try bytes.withUnsafeBytes { raw in
            var nodes: [JSONTape.Node] = []
            let tape = try JSONTape(parsing: raw.assumingMemoryBound(to: UInt8.self), reusing: &nodes)
            return tape.nodes.withUnsafeBufferPointer { nodes in
                read(TapeDecoder(view: TapeView(nodes: nodes, bytes: tape.bytes), current: 0, keys: []))
            }
        }
    }


    /// Services of every shape a registry stores, written by JSONEncoder: the reading takes
    /// every one of them, and gives what JSONDecoder gives.
    @Test func randomServicesAreReadWithoutCodable() throws {
        var random = SplitMix64(state: 5)
        func pick<T>(_ values: [T]) -> T { values[random.below(values.count)] }
        func text() -> String { String((0..<random.below(6)).map { _ in pick(["a", "é", "\"", "\\", "\n", "-", "1"] as [Character]) }) }
        for round in 0..<300 {
            var spec = Service.Spec()
            spec.type = pick(Service.ServiceType.allCases)
            spec.clusterIP = pick(["", "None", "10.96.0.\(round % 250)", text()])
            spec.clusterIPs = (0..<random.below(3)).map { _ in text() }
            spec.ipFamilies = (0..<random.below(3)).map { _ in pick(IPFamily.allCases) }
            spec.ipFamilyPolicy = pick([nil] + Service.IPFamilyPolicy.allCases)
            spec.ports = (0..<random.below(4)).map { _ in
                Service.Port(name: text(), protocol: pick(TransportProtocol.allCases), port: random.below(65536),
                             targetPort: pick([nil, .int(random.below(65536)), .string(text())]), nodePort: random.below(32768))
            }
            spec.selector = random.below(3) == 0 ? nil : Dictionary(uniqueKeysWithValues: (0..<random.below(3)).map { ("k\($0)\(text())", text()) })
            spec.externalName = text()
            spec.loadBalancerIP = text()
            spec.externalIPs = (0..<random.below(3)).map { _ in text() }
            spec.sessionAffinity = pick(Service.SessionAffinity.allCases)
            spec.sessionAffinityTimeoutSeconds = pick([nil, random.below(86400), -1])
            spec.externalTrafficPolicy = pick([nil] + Service.TrafficPolicy.allCases)
            spec.internalTrafficPolicy = pick([nil] + Service.TrafficPolicy.allCases)
            spec.publishNotReadyAddresses = random.below(2) == 0
            var status = Service.Status()
            status.loadBalancerIngress = (0..<random.below(3)).map { _ in text() }
            let service = Service(metadata: ObjectMeta(name: "s\(round)", namespace: text()), spec: spec, status: status)
            let bytes = Array(try JSONEncoder().encode(service))
            #expect(try Self.reading(bytes) { $0.service(at: 0) } == service, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(try StoredJSON.decode(Service.self, from: bytes) == (try JSONDecoder().decode(Service.self, from: Data(bytes))))
        }
    }

    /// A whole EndpointSlice (`TapeFastPaths.endpointSlice`), as the Services above.
    static let slices: [(json: String, fast: Bool)] = {
        let meta = #""metadata":{"name":"a-1","namespace":"n","labels":{"kubernetes.io/service-name":"a"},"annotations":{},"uid":"u","resourceVersion":2}"#
        let endpoint = #"{"addresses":["10.0.0.1"],"conditions":{"ready":true}}"#
        let port = #"{"name":"http","port":80,"protocol":"TCP","appProtocol":""}"#
        func slice(_ members: String) -> String { "{" + meta + "," + members + "}" }
        return [
            (slice(#""addressType":"IPv4","endpoints":["# + endpoint + "," + endpoint + #"],"ports":["# + port + "]"), true),
            (slice(#""ports":[],"endpoints":[],"addressType":"FQDN""#), true),
            (slice(#""addressType":"IPv6","endpoints":[],"ports":[{"appProtocol":"h2c","protocol":"UDP","port":5.3e1,"name":"","x":[]}],"kind":"EndpointSlice""#), true),
            // Read by Codable: an endpoint the endpoints' reading gives up at, a repeated member.
            (slice(#""addressType":"IPv4","endpoints":[{"addresses":["a"],"targetRef":{"kind":"Pod","namespace":"n","name":"p"}}],"ports":[]"#), false),
            (slice(#""addressType":"IPv4","endpoints":[],"ports":[],"ports":[]"#), false),
            // Not a slice: refused by both.
            (slice(#""addressType":"IPv7","endpoints":[],"ports":[]"#), false),
            (slice(#""addressType":"IPv4","endpoints":[],"ports":[{"name":"http","port":80,"protocol":"TCP"}]"#), false),
            (slice(#""addressType":"IPv4","endpoints":[],"ports":[{"name":"http","port":80,"protocol":"tcp","appProtocol":""}]"#), false),
            (slice(#""addressType":"IPv4","endpoints":[],"ports":[{"name":"http","port":"80","protocol":"TCP","appProtocol":""}]"#), false),
            (slice(#""addressType":"IPv4","endpoints":[],"ports":null"#), false),
            (slice(#""addressType":"IPv4","ports":[]"#), false),
            (slice(#""addressType":null,"endpoints":[],"ports":[]"#), false),
            (#"{"addressType":"IPv4","endpoints":[],"ports":[]}"#, false),
        ]
    }()

    @Test(arguments: slices.indices)
    func slicesReadAsJSONDecoderReadsThem(_ index: Int) throws {
        try Self.expectReadAlike(EndpointSlice.self, Self.slices[index].json, fast: Self.slices[index].fast) { $0.endpointSlice(at: 0) }
    }

    /// The stored object around them (`TapeFastPaths.registryObject`): the synthesized coding
    /// of `RegistryObject`, one member naming the kind, holding `_0`.
    static let wrapped: [(json: String, fast: Bool)] = {
        let service = ServiceCase(fast: true).json
        let slice = slices[0].json
        let namespace = #"{"metadata":{"name":"a","namespace":"","labels":{},"annotations":{},"uid":"u","resourceVersion":1}}"#
        return [
            (#"{"service":{"_0":"# + service + "}}", true),
            (#"{"endpointSlice":{"_0":"# + slice + "}}", true),
            (#"{"service":{"x":[1],"_0":"# + service + "}}", true),
            // Read by Codable: an unknown member beside the kind, another kind, a repeated payload.
            (#"{"service":{"_0":"# + service + #"},"x":1}"#, false),
            (#"{"namespace":{"_0":"# + namespace + "}}", false),
            (#"{"service":{"_0":"# + service + #","_0":"# + service + "}}", false),
            // Not a stored object: refused by both.
            (#"{"service":{}}"#, false),
            (#"{"service":[]}"#, false),
            (#"{"service":{"_0":"# + slice + "}}", false),
            (#"{"service":{"_0":"# + service + #"},"endpointSlice":{"_0":"# + slice + "}}", false),
            (#"{"Service":{"_0":"# + service + "}}", false),
            ("{}", false),
        ]
    }()

    @Test(arguments: wrapped.indices)
    func storedObjectsReadAsJSONDecoderReadsThem(_ index: Int) throws {
        try Self.expectReadAlike(RegistryObject.self, Self.wrapped[index].json, fast: Self.wrapped[index].fast) { $0.registryObject(at: 0) }
    }

    /// Random samples, written by JSONEncoder: the tape reads what JSONDecoder reads.
    @Test func randomValuesReadAsJSONDecoderReadsThem() throws {
        var random = SplitMix64(state: 7)
        let alphabet: [Character] = ["a", "é", "😀", "\"", "\\", "/", "\n", "\u{1}", "\u{7f}", " ", "z", "\u{2028}"]
        func text() -> String { String((0..<random.below(8)).map { _ in alphabet[random.below(alphabet.count)] }) }
        func sample(depth: Int) -> Sample {
            var s = Sample(name: text())
            s.optional = random.below(2) == 0 ? nil : text()
            s.int8 = Int8(truncatingIfNeeded: random.next())
            s.uint16 = UInt16(truncatingIfNeeded: random.next())
            s.int64 = Int64(bitPattern: random.next())
            s.uint64 = random.next()
            s.double = Double(Int64(bitPattern: random.next())) / 1e6
            s.float = Float(random.below(1_000_000)) / 64
            s.flags = (0..<random.below(4)).map { _ in [nil, true, false][random.below(3)] }
            s.matrix = (0..<random.below(3)).map { _ in (0..<random.below(3)).map { _ in random.below(100) - 50 } }
            s.map = Dictionary(uniqueKeysWithValues: (0..<random.below(3)).map { i in ("k\(i)\(text())", [text()]) })
            s.labels = Dictionary(uniqueKeysWithValues: (0..<random.below(3)).map { i in ("\(i)\(text())", text()) })
            s.payloads = (0..<random.below(3)).map { _ in [.text(text()), .pair(random.below(9), true), .empty][random.below(3)] }
            if depth < 2, random.below(2) == 0 { s.nested = (0..<random.below(3)).map { _ in sample(depth: depth + 1) } }
            return s
        }
        for _ in 0..<300 {
            let value = sample(depth: 0)
            let bytes = Array(try JSONEncoder().encode(value))
            let tape = try StoredJSON.decode(Sample.self, from: bytes)
            #expect(tape == value)
            #expect(tape == (try JSONDecoder().decode(Sample.self, from: Data(bytes))))
        }
    }

    /// Stored values damaged byte by byte (as anyone with access to etcd could write them):
    /// never a trap, and whatever both decoders accept, they read alike.
    @Test func damagedValuesNeverTrapAndReadAlike() throws {
        let originals = try Self.storedObjects().map { try $0.storedJSON() }
        var random = SplitMix64(state: 11)
        let interesting: [UInt8] = Array(#"{}[]",:"\0123456789-+.eEtrufalsn u"#.utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xFF]
        var agreed = 0
        for _ in 0..<2_000 {
            var bytes = originals[random.below(originals.count)]
            for _ in 0...random.below(3) {
                let at = random.below(bytes.count)
                switch random.below(3) {
                case 0: bytes[at] = interesting[random.below(interesting.count)]
                case 1: bytes.remove(at: at)
                default: bytes.insert(interesting[random.below(interesting.count)], at: at)
                }
            }
            let tape = try? RegistryObject(storedJSON: bytes)
            let foundation = try? JSONDecoder().decode(RegistryObject.self, from: Data(bytes))
            if let tape, let foundation {
                #expect(tape == foundation, "\(String(decoding: bytes, as: UTF8.self))")
                agreed += 1
            }
        }
        #expect(agreed > 100, "some damage leaves a value both read")
    }
}

extension SplitMix64 {
    fileprivate mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}
