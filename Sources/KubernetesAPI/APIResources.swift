public import ServiceRegistry

/// A resource the API serves: its URL name, the kind it holds, its group and version, and what
/// discovery says of it (kube-apiserver's APIResource).
public struct APIResource: Sendable, Hashable {
    public let plural: String
    public let singular: String
    public let kind: ObjectKind
    public let shortNames: [String]
    /// "" for the core group (`/api/v1`).
    public let group: String
    public let version: String

    public var namespaced: Bool { kind.isNamespaced }
    public var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    /// Whether `/status` is served (kinds whose status something other than their author writes).
    public var hasStatus: Bool { [.namespace, .service, .pod, .node].contains(kind) }

    /// Every resource served, in discovery order.
    public static let all: [APIResource] = [
        APIResource(plural: "namespaces", singular: "namespace", kind: .namespace, shortNames: ["ns"], group: "", version: "v1"),
        APIResource(plural: "nodes", singular: "node", kind: .node, shortNames: ["no"], group: "", version: "v1"),
        APIResource(plural: "services", singular: "service", kind: .service, shortNames: ["svc"], group: "", version: "v1"),
        APIResource(plural: "pods", singular: "pod", kind: .pod, shortNames: ["po"], group: "", version: "v1"),
        APIResource(plural: "endpoints", singular: "endpoints", kind: .endpoints, shortNames: ["ep"], group: "", version: "v1"),
        APIResource(plural: "endpointslices", singular: "endpointslice", kind: .endpointSlice, shortNames: [],
                    group: "discovery.k8s.io", version: "v1"),
    ]

    /// The resource `plural` of the group version `groupVersion` ("v1", "discovery.k8s.io/v1").
    public static func named(_ plural: String, in groupVersion: String) -> APIResource? {
        all.first { $0.plural == plural && $0.groupVersion == groupVersion }
    }

    public static func of(_ kind: ObjectKind) -> APIResource { all.first { $0.kind == kind }! }

    /// The resource a command line names, as kubectl takes it: plural, singular or short
    /// name, in any case.
    public static func matching(_ word: String) -> APIResource? {
        let word = word.lowercased()
        return all.first { $0.plural == word || $0.singular == word || $0.shortNames.contains(word) }
    }

    /// The URL path of the collection in `namespace` (every namespace when nil), or of the
    /// object `name` in it.
    public func path(namespace: String?, name: String? = nil) -> String {
        var path = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace { path += "/namespaces/\(namespace)" }
        path += "/\(plural)"
        if let name { path += "/\(name)" }
        return path
    }

    /// The verbs every resource supports here.
    static let verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
}
