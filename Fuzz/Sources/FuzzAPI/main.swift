import Dispatch
import FuzzDriver
import KubernetesAPI
import ServiceRegistry
import YAML

/// The Kubernetes API's parsers of outside input: request paths, queries, bodies and patches
/// through the whole handler, and each parser on its own. The first byte picks which; any bytes
/// must give an answer or an error, never a trap, a hang or a 500.
///
/// Requests are written `METHOD PATH[?QUERY]\nCONTENT-TYPE\nACCEPT\nBODY`.
let handler: APIHandler = {
    let registry = try! Registry()
    for entry in Manifest.decode("""
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop, labels: {app: web}}
        spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: web-0, namespace: shop, labels: {app: web}}
        spec: {containers: [{name: app, ports: [{containerPort: 80}]}]}
        status: {podIP: 10.244.0.5}
        """) { try! registry.apply(try! entry.result.get()) }
    return APIHandler(registry: registry, tokens: TokenTable(["t": APIUser(name: "admin")]))
}()

let codes: Set<Int> = [200, 201, 400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 504]

final class Box<T>: @unchecked Sendable { var value: T?; init() {} }

func request(_ bytes: ArraySlice<UInt8>) {
    let parts = bytes.split(separator: 0x0A, maxSplits: 3, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let line = parts.first ?? ""
    let method = String(line.prefix { $0 != " " })
    let target = line.drop { $0 != " " }.dropFirst()
    let path = String(target.prefix { $0 != "?" })
    var query: [String: String] = [:]
    for pair in target.drop(while: { $0 != "?" }).dropFirst().split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1)
        query[String(kv.first ?? "")] = kv.count > 1 ? String(kv[1]) : ""
    }
    let body = parts.count > 3 ? Array(parts[3].utf8) : []
    let apiRequest = APIRequest(method: method, path: path, query: query, authorization: "Bearer t",
                                contentType: parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil,
                                accept: parts.count > 2 && !parts[2].isEmpty ? parts[2] : nil, body: body)
    let done = DispatchSemaphore(value: 0)
    let box = Box<APIResponse>()
    Task {
        box.value = await handler.handle(apiRequest)
        done.signal()
    }
    done.wait()
    let response = box.value!
    response.events?.finish()
    guard codes.contains(response.code) else { fatalError("HTTP \(response.code) for \(method) \(path): \(response.body.text)") }
    if response.code >= 400 && response.body["kind"] != .string("Status") {
        fatalError("an error that is not a Status: \(response.body.text)")
    }
}

func document(_ bytes: ArraySlice<UInt8>) -> JSONValue? {
    guard let node = try? YAMLParser.firstDocument(in: String(decoding: bytes, as: UTF8.self)) else { return nil }
    return try? JSONValue(node)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let mode = bytes.first else { return 0 }
    let rest = bytes.dropFirst()
    // Two documents, split at the first NUL: a target and a patch.
    let halves = rest.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
    switch mode % 6 {
    case 0:
        request(rest)
    case 1:
        if halves.count == 2, let target = document(halves[0]), let patch = document(halves[1]) {
            _ = try? StrategicMergePatch(kind: ObjectKind.allCases[Int(mode / 6) % ObjectKind.allCases.count]).apply(patch, to: target)
            _ = MergePatch.apply(patch, to: target)
        }
    case 2:
        if halves.count == 2, let target = document(halves[0]), let patch = document(halves[1]) {
            _ = try? JSONPatch(parsing: patch).apply(to: target)
        }
    case 3:
        let text = String(decoding: rest, as: UTF8.self)
        if let selector = try? LabelSelector(parsing: text) { _ = selector.matches(["app": "web", "a": ""]) }
        _ = try? FieldSelector(parsing: text, for: .pod)
    case 4:
        if let table = try? TokenTable(parsing: String(decoding: rest, as: UTF8.self)) {
            _ = table.user(authorization: "Bearer " + String(decoding: rest.prefix(16), as: UTF8.self))
        }
    default:
        _ = document(rest)
    }
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main`; hand control to libFuzzer.
@_cdecl("FuzzAPI_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    return FuzzDriver.run(argc, argv, fuzz)
}
