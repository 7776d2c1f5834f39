import ServiceRegistry

/// The discovery documents kubectl reads before anything else (kube-apiserver's `/version`,
/// `/api`, `/apis` and each group version's resource list).
enum Discovery {
    static let groups: [(name: String, version: String)] = [("discovery.k8s.io", "v1")]

    static func version() -> JSONValue {
        .object([
            ("major", .string("1")), ("minor", .string("20")), ("gitVersion", .string("v1.20.0-clusterdns")),
            ("gitCommit", .string("")), ("gitTreeState", .string("clean")), ("buildDate", .string("")),
            ("goVersion", .string("")), ("compiler", .string("swift")), ("platform", .string("linux/amd64")),
        ])
    }

    static func coreVersions() -> JSONValue {
        .object([
            ("kind", .string("APIVersions")), ("versions", .array([.string("v1")])),
            ("serverAddressByClientCIDRs", .array([])),
        ])
    }

    static func group(_ name: String, _ version: String) -> JSONValue {
        let groupVersion = JSONValue.object([("groupVersion", .string("\(name)/\(version)")), ("version", .string(version))])
        return .object([
            ("kind", .string("APIGroup")), ("apiVersion", .string("v1")), ("name", .string(name)),
            ("versions", .array([groupVersion])), ("preferredVersion", groupVersion),
        ])
    }

    static func groupList() -> JSONValue {
        .object([
            ("kind", .string("APIGroupList")), ("apiVersion", .string("v1")),
            ("groups", .array(groups.map { group($0.name, $0.version) })),
        ])
    }

    /// The resources of `groupVersion`, or nil when it is not served.
    static func resourceList(_ groupVersion: String) -> JSONValue? {
        let resources = APIResource.all.filter { $0.groupVersion == groupVersion }
        guard !resources.isEmpty else { return nil }
        return .object([
            ("kind", .string("APIResourceList")), ("apiVersion", .string("v1")), ("groupVersion", .string(groupVersion)),
            ("resources", .array(resources.flatMap { r -> [JSONValue] in
                var members: [(String, JSONValue)] = [
                    ("name", .string(r.plural)), ("singularName", .string(r.singular)), ("namespaced", .bool(r.namespaced)),
                    ("kind", .string(r.kind.rawValue)), ("verbs", .array(APIResource.verbs.map(JSONValue.string))),
                ]
                if !r.shortNames.isEmpty { members.append(("shortNames", .array(r.shortNames.map(JSONValue.string)))) }
                // Subresources are listed after their resource, as kube-apiserver lists them.
                guard r.hasStatus else { return [.object(members)] }
                let status: JSONValue = .object([
                    ("name", .string("\(r.plural)/status")), ("singularName", .string("")), ("namespaced", .bool(r.namespaced)),
                    ("kind", .string(r.kind.rawValue)), ("verbs", .array(["get", "patch", "update"].map(JSONValue.string))),
                ])
                return [.object(members), status]
            })),
        ])
    }
}
