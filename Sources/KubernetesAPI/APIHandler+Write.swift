import ServiceRegistry
import YAML

/// The media types of patches, and what each means.
enum PatchType: String, CaseIterable {
    case json = "application/json-patch+json"
    case merge = "application/merge-patch+json"
    case strategic = "application/strategic-merge-patch+json"
    /// Server-side apply: the body is a field manager's whole intent (`ServerSideApply`).
    case apply = "application/apply-patch+yaml"
}

extension APIHandler {
    static let objectTypes: Set<String> = ["application/json", "application/yaml"]

    /// The one document in a request body (JSON, or YAML where the media type says so).
    func document(_ request: APIRequest, types: Set<String>) throws(APIError) -> JSONValue {
        let type = request.contentType ?? "application/json"
        guard types.contains(type) else {
            throw APIError(code: 415, reason: "UnsupportedMediaType",
                           message: "the body of the request was in an unknown format - accepted media types include: "
                               + types.sorted().joined(separator: ", "))
        }
        guard request.body.count <= Self.maxBody else {
            throw APIError(code: 413, reason: "RequestEntityTooLarge", message: "the request body is larger than \(Self.maxBody) bytes")
        }
        guard let text = String(validating: request.body, as: UTF8.self) else { throw .badRequest("the request body is not UTF-8") }
        var documents: [YAMLNode] = []
        do {
            try YAMLParser.documents(in: text) { _, node in if !node.isNull { documents.append(node) } }
        } catch {
            throw .badRequest("the request body is not valid \(type == "application/json" ? "JSON" : "YAML"): \(error.message) (line \(error.line), column \(error.column))")
        }
        guard documents.count == 1 else {
            throw .badRequest(documents.isEmpty ? "the request body holds no object" : "the request body holds \(documents.count) documents; one is expected")
        }
        do {
            return try JSONValue(documents[0])
        } catch {
            throw .badRequest("\(error.message) (line \(error.line), column \(error.column) of the request body)")
        }
    }

    /// The object a document describes, for `target`: of its kind (the URL's when the document
    /// names none, as clients generated from the OpenAPI schema send it), in the URL's
    /// namespace (given there when the document has none), named as the URL names it.
    func object(_ document: JSONValue, _ target: Target, name: String?) throws(APIError) -> RegistryObject {
        guard case .object = document else { throw .badRequest("the request body must be an object") }
        var document = document
        if (document["kind"]?.stringValue ?? "").isEmpty {
            document = document.setting("kind", to: .string(target.resource.kind.rawValue))
        }
        if (document["apiVersion"]?.stringValue ?? "").isEmpty {
            document = document.setting("apiVersion", to: .string(target.resource.kind.apiVersion))
        }
        var metadata = document["metadata"] ?? .object([])
        if target.resource.namespaced, let namespace = target.namespace {
            let given = metadata["namespace"]?.stringValue ?? ""
            if given.isEmpty {
                metadata = metadata.setting("namespace", to: .string(namespace))
            } else if given != namespace {
                throw .badRequest("the namespace of the provided object does not match the namespace sent on the request")
            }
        }
        if (metadata["name"]?.stringValue ?? "").isEmpty, name == nil, let prefix = metadata["generateName"]?.stringValue, !prefix.isEmpty {
            metadata = metadata.setting("name", to: .string(prefix + Self.randomSuffix()))
        }
        document = document.setting("metadata", to: metadata)
        if let name, metadata["name"]?.stringValue != name {
            throw .badRequest("the name of the object (\(metadata["name"]?.stringValue ?? "")) does not match the name on the URL (\(name))")
        }
        let entries = Manifest.decode(node: document.node, file: "request body")
        guard entries.count == 1, let entry = entries.first else {
            throw .badRequest("the request body must hold one \(target.resource.kind.rawValue), not a list")
        }
        let object: RegistryObject
        switch entry.result {
        case .success(let decoded): object = decoded
        case .failure(let error) where error.isInvalidObject:
            throw APIError(code: 422, reason: "Invalid", message: error.message,
                           name: metadata["name"]?.stringValue, resource: target.resource.kind.rawValue, group: target.resource.group,
                           causes: error.fieldErrors.map(APIError.Cause.init))
        case .failure(let error):
            throw .badRequest(error.message)
        }
        guard object.kind == target.resource.kind else {
            throw .badRequest("the API version in the data (\(object.kind.apiVersion)) and kind (\(object.kind.rawValue)) do not match the resource \(target.resource.plural)")
        }
        return object
    }

    /// An Endpoints or EndpointSlice that the registry derives from a service's selector is
    /// not written by anyone: a write to it would be undone at once (as a cluster's controller
    /// undoes one), so it is refused and the caller told what to change instead.
    func refuseDerived(_ target: Target, _ name: String, creating: Bool = false) throws(APIError) {
        let key = target.key(name)
        guard key.kind == .endpoints || key.kind == .endpointSlice, registry.get(key) == nil,
              let derived = registry.snapshot().getWithDerived(key) else { return }
        let service = DerivedWatch.service(of: derived).name
        let message = "\(target.resource.plural) \"\(name)\" is derived by the registry from the selector of service \"\(service)\" and its pods: change those instead"
        throw creating
            ? APIError(code: 409, reason: "AlreadyExists", message: message, name: name, resource: target.resource.plural, group: target.resource.group)
            : APIError(code: 405, reason: "MethodNotAllowed", message: message, name: name, resource: target.resource.plural, group: target.resource.group)
    }

    /// kube-apiserver's generateName suffix: five characters that never spell a word.
    static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet.randomElement()! })
    }

    static func dryRun(_ request: APIRequest) throws(APIError) -> Bool {
        switch request.query["dryRun"] {
        case nil, "": return false
        case "All": return true
        case let other?: throw .badRequest("unsupported dryRun value \"\(other)\": supported values: \"All\"")
        }
    }

    func write(_ object: RegistryObject, _ target: Target, _ preconditions: WritePreconditions,
               dryRun: Bool) async throws(APIError) -> RegistryObject {
        do {
            return try await registry.write(object, preconditions: preconditions, dryRun: dryRun).stored
        } catch {
            throw .registry(error, target.resource, object.metadata.name)
        }
    }

    func create(_ request: APIRequest, _ target: Target) async throws(APIError) -> APIResponse {
        guard target.namespace != nil || !target.resource.namespaced else { throw .methodNotAllowed(request.method) }
        guard target.subresource == nil else { throw .methodNotAllowed(request.method) }
        let object = try object(try document(request, types: Self.objectTypes), target, name: nil)
        try refuseDerived(target, object.metadata.name, creating: true)
        let stored = try await write(object, target, WritePreconditions(mustNotExist: true), dryRun: try Self.dryRun(request))
        return APIResponse(code: 201, body: stored.kubernetesJSON)
    }

    /// PUT: the object replaced by the body; with `metadata.resourceVersion`, only if nobody
    /// wrote it since that version (409 otherwise). A body without `status` keeps the object's;
    /// `/status` changes the status only.
    func update(_ request: APIRequest, _ target: Target) async throws(APIError) -> APIResponse {
        let name = target.name!
        var document = try document(request, types: Self.objectTypes)
        let metadata = document["metadata"]
        if let given = metadata?["name"]?.stringValue, given != name {
            throw .badRequest("the name of the object (\(given)) does not match the name on the URL (\(name))")
        }
        let version = try Self.version(metadata?["resourceVersion"]?.stringValue, "metadata.resourceVersion")
        let uid = metadata?["uid"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        guard let existing = registry.get(target.key(name)) else { throw .notFound(target.resource, name) }
        let current = existing.kubernetesJSON
        if target.subresource == "status" {
            document = current.setting("status", to: document["status"] ?? .object([]))
        } else if document["status"] == nil, let status = current["status"] {
            document = document.setting("status", to: status)
        }
        let object = try object(document, target, name: name)
        let stored = try await write(object, target, WritePreconditions(mustExist: true, uid: uid, resourceVersion: version),
                                     dryRun: try Self.dryRun(request))
        return APIResponse(code: 200, body: stored.kubernetesJSON)
    }

    /// PATCH: the patch applied to the current object and the result written if nobody wrote it
    /// meanwhile (else applied again to the newer object, as kube-apiserver retries); a patch
    /// that names a `resourceVersion` must name the current one.
    func patch(_ request: APIRequest, _ target: Target) async throws(APIError) -> APIResponse {
        let name = target.name!
        guard let type = PatchType(rawValue: request.contentType ?? "") else {
            throw APIError(code: 415, reason: "UnsupportedMediaType",
                           message: "the body of the request was in an unknown format - accepted media types include: "
                               + PatchType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let patch = try document(request, types: [type.rawValue])
        let dryRun = try Self.dryRun(request)
        let manager = request.query["fieldManager"] ?? ""
        if type == .apply, manager.isEmpty {
            throw APIError(code: 422, reason: "Invalid",
                           message: #"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#,
                           causes: [APIError.Cause(reason: "FieldValueRequired", message: "Required value: is required for apply patch",
                                                   field: "fieldManager")])
        }
        for _ in 0..<8 {
            let existing = registry.get(target.key(name))
            guard existing != nil || (type == .apply && target.subresource == nil) else { throw .notFound(target.resource, name) }
            let current = existing?.kubernetesJSON ?? .object([])
            var patched: JSONValue
            switch type {
            case .json:
                do {
                    patched = try JSONPatch(parsing: patch).apply(to: current)
                } catch {
                    throw error.isMalformed ? .badRequest(error.description) : .invalid(target.resource, name, "the patch cannot be applied: \(error.description)")
                }
            case .merge:
                patched = MergePatch.apply(patch, to: current)
            case .strategic:
                do {
                    patched = try StrategicMergePatch(kind: target.resource.kind).apply(patch, to: current)
                } catch {
                    throw .badRequest(error.description)
                }
            case .apply:
                do {
                    patched = try ServerSideApply(kind: target.resource.kind, manager: manager).apply(patch, to: current)
                } catch {
                    throw .badRequest(error.description)
                }
            }
            let named = patched["metadata"]?["resourceVersion"]?.stringValue
            if let existing, let named, named != current["metadata"]?["resourceVersion"]?.stringValue {
                throw .registry(.conflict(existing.key, .resourceVersion(expected: UInt64(named) ?? 0, actual: existing.metadata.resourceVersion)),
                                target.resource, name)
            }
            if target.subresource == "status" { patched = current.setting("status", to: patched["status"]) }
            let object = try object(patched, target, name: name)
            let preconditions = existing.map { WritePreconditions(mustExist: true, resourceVersion: $0.metadata.resourceVersion) }
                ?? WritePreconditions(mustNotExist: true)
            do {
                let stored = try await registry.write(object, preconditions: preconditions, dryRun: dryRun).stored
                return APIResponse(code: existing == nil ? 201 : 200, body: stored.kubernetesJSON)
            } catch .conflict, .alreadyExists, .notFound {
                continue  // written meanwhile: patch the newer object
            } catch {
                throw .registry(error, target.resource, name)
            }
        }
        throw APIError(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on \(target.resource.plural) \"\(name)\": the object is being written too often to patch it; try again")
    }

    /// DeleteOptions from a DELETE's body (kubectl and client-go send them there) or query.
    func deleteOptions(_ request: APIRequest) throws(APIError) -> (preconditions: WritePreconditions, dryRun: Bool) {
        var preconditions = WritePreconditions(mustExist: true)
        var dryRun = try Self.dryRun(request)
        if !request.body.isEmpty {
            let options = try document(request, types: Self.objectTypes)
            if let given = options["preconditions"] {
                preconditions.uid = given["uid"]?.stringValue
                preconditions.resourceVersion = try Self.version(given["resourceVersion"]?.stringValue, "preconditions.resourceVersion")
            }
            if case .array(let modes)? = options["dryRun"] {
                guard modes.allSatisfy({ $0 == .string("All") }) else { throw .badRequest("unsupported dryRun value: supported values: \"All\"") }
                dryRun = dryRun || !modes.isEmpty
            }
        }
        return (preconditions, dryRun)
    }

    func delete(_ request: APIRequest, _ target: Target) async throws(APIError) -> APIResponse {
        guard target.subresource == nil else { throw .methodNotAllowed(request.method) }
        let name = target.name!
        let (preconditions, dryRun) = try deleteOptions(request)
        let key = target.key(name)
        do throws(RegistryError) {
            if dryRun {
                let existing = registry.get(key)
                try preconditions.check(key, existing: existing)
                return APIResponse(code: 200, body: existing!.kubernetesJSON)
            }
            return APIResponse(code: 200, body: try await registry.delete(key, preconditions: preconditions).kubernetesJSON)
        } catch {
            throw .registry(error, target.resource, name)
        }
    }

    /// DELETE on a collection: every object the selectors select, each as a delete would.
    func deleteCollection(_ request: APIRequest, _ target: Target) async throws(APIError) -> APIResponse {
        let filter = try selectors(request, target)
        let (_, dryRun) = try deleteOptions(request)
        let snapshot = registry.snapshot()
        var deleted: [JSONValue] = []
        for object in snapshot.list(target.resource.kind, namespace: target.namespace) where filter.matches(object) {
            if dryRun {
                deleted.append(object.kubernetesJSON)
                continue
            }
            do {
                deleted.append(try await registry.delete(object.key,
                    preconditions: WritePreconditions(uid: object.metadata.uid)).kubernetesJSON)
            } catch .notFound, .conflict {
                continue  // deleted (or replaced) meanwhile: not this request's to delete
            } catch {
                throw .registry(error, target.resource, object.metadata.name)
            }
        }
        return APIResponse(code: 200, body: .object([
            ("kind", .string(target.resource.kind.rawValue + "List")), ("apiVersion", .string(target.resource.groupVersion)),
            ("metadata", .object([("resourceVersion", .string(String(registry.resourceVersion)))])),
            ("items", .array(deleted)),
        ]))
    }
}
