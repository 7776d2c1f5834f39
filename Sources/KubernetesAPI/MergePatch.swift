public import ServiceRegistry

/// RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge member by member,
/// `null` deletes, anything else (arrays included) replaces.
public enum MergePatch {
    public static func apply(_ patch: JSONValue, to target: JSONValue) -> JSONValue {
        guard case .object(let changes) = patch else { return patch }
        var members = target.members ?? []
        for (key, change) in changes {
            let index = members.firstIndex { $0.0 == key }
            if change == .null {
                if let index { members.remove(at: index) }
            } else if let index {
                members[index].1 = apply(change, to: members[index].1)
            } else {
                members.append((key, apply(change, to: .null)))
            }
        }
        return .object(members)
    }
}

/// Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`), what kubectl
/// apply, edit, label and annotate send: a merge patch in which lists that Kubernetes declares
/// mergeable merge element by element on a key (a Service's `ports` by `port`, a Pod's
/// `containers` by `name`) instead of being replaced, with the directives `$patch`
/// (replace/delete/merge), `$setElementOrder/FIELD`, `$deleteFromPrimitiveList/FIELD` and
/// `$retainKeys` as apimachinery's strategicpatch defines them.
public struct StrategicMergePatch: Sendable {
    /// How a list field merges.
    public enum ListStrategy: Sendable, Hashable {
        /// Elements are objects matched on this key.
        case mergeOnKey(String)
        /// Elements are scalars; the patch's are added to the set.
        case mergePrimitives
    }

    /// The list fields of `kind` that merge, by their path of field names from the object's
    /// root (list indices left out): the `patchStrategy:"merge"` tags of the Kubernetes types.
    public static func listStrategy(_ kind: ObjectKind, _ path: [String]) -> ListStrategy? {
        switch path {
        case ["metadata", "finalizers"]: return .mergePrimitives
        case ["metadata", "ownerReferences"]: return .mergeOnKey("uid")
        default: break
        }
        // A container's lists: spec.containers[].ports, spec.initContainers[].env, …
        if kind == .pod, path.count == 3, path[0] == "spec", path[1].hasSuffix("ontainers") {
            switch path[2] {
            case "ports": return .mergeOnKey("containerPort")
            case "env": return .mergeOnKey("name")
            case "volumeMounts": return .mergeOnKey("mountPath")
            case "volumeDevices": return .mergeOnKey("devicePath")
            default: return nil
            }
        }
        switch (kind, path) {
        case (.service, ["spec", "ports"]): return .mergeOnKey("port")
        case (.pod, ["spec", "containers"]), (.pod, ["spec", "initContainers"]), (.pod, ["spec", "ephemeralContainers"]),
             (.pod, ["spec", "volumes"]), (.pod, ["spec", "imagePullSecrets"]):
            return .mergeOnKey("name")
        case (.pod, ["spec", "hostAliases"]): return .mergeOnKey("ip")
        case (.pod, ["status", "conditions"]): return .mergeOnKey("type")
        case (.pod, ["status", "podIPs"]): return .mergeOnKey("ip")
        case (.node, ["spec", "podCIDRs"]): return .mergePrimitives
        case (.node, ["status", "addresses"]), (.node, ["status", "conditions"]): return .mergeOnKey("type")
        default: return nil
        }
    }

    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public let kind: ObjectKind

    public init(kind: ObjectKind) { self.kind = kind }

    public func apply(_ patch: JSONValue, to target: JSONValue) throws(Failure) -> JSONValue {
        guard case .object = patch else { throw Failure(description: "a strategic merge patch must be an object") }
        return try mergeObject(target, patch, path: []) ?? .object([])
    }

    /// `target` with `patch` merged in; nil when the patch deletes the whole object.
    func mergeObject(_ target: JSONValue, _ patch: JSONValue, path: [String]) throws(Failure) -> JSONValue? {
        guard case .object(let changes) = patch else { return patch }
        var members = target.members ?? []
        switch changes.first(where: { $0.0 == "$patch" })?.1 {
        case .string("replace")?: return .object(changes.filter { $0.0 != "$patch" })
        case .string("delete")?: return nil
        case .string("merge")?, nil: break
        case let other?: throw Failure(description: "unknown patch directive \(other.text) at \(written(path))")
        }
        if let retain = changes.first(where: { $0.0 == "$retainKeys" })?.1 {
            guard case .array(let keys) = retain else { throw Failure(description: "$retainKeys at \(written(path)) must be a list") }
            let kept = Set(keys.compactMap(\.stringValue))
            members.removeAll { !kept.contains($0.0) }
        }
        var orders: [(String, [JSONValue])] = []
        for (key, change) in changes {
            if key == "$patch" || key == "$retainKeys" { continue }
            if let field = key.removingPrefix("$setElementOrder/") {
                guard case .array(let order) = change else { throw Failure(description: "\(key) at \(written(path)) must be a list") }
                orders.append((field, order))
                continue
            }
            if let field = key.removingPrefix("$deleteFromPrimitiveList/") {
                guard case .array(let gone) = change else { throw Failure(description: "\(key) at \(written(path)) must be a list") }
                if let index = members.firstIndex(where: { $0.0 == field }), case .array(let items) = members[index].1 {
                    members[index].1 = .array(items.filter { !gone.contains($0) })
                }
                continue
            }
            let index = members.firstIndex { $0.0 == key }
            if change == .null {
                if let index { members.remove(at: index) }
                continue
            }
            let merged: JSONValue?
            switch (index.map { members[$0].1 }, change) {
            case (.object?, .object): merged = try mergeObject(members[index!].1, change, path: path + [key])
            case (.array(let items)?, .array(let additions)): merged = try mergeList(items, additions, path: path + [key])
            default: merged = try cleaned(change, path: path + [key])
            }
            if let index {
                if let merged { members[index].1 = merged } else { members.remove(at: index) }
            } else if let merged {
                members.append((key, merged))
            }
        }
        for (field, order) in orders {
            if let index = members.firstIndex(where: { $0.0 == field }), case .array(let items) = members[index].1 {
                members[index].1 = .array(reorder(items, by: order, strategy: Self.listStrategy(kind, path + [field])))
            }
        }
        return .object(members)
    }

    func mergeList(_ items: [JSONValue], _ additions: [JSONValue], path: [String]) throws(Failure) -> JSONValue {
        let strategy = Self.listStrategy(kind, path)
        // `[{"$patch": "replace"}, …]`: the list is the patch's other elements.
        if additions.contains(where: { $0["$patch"] == .string("replace") }) {
            return .array(try additions.filter { $0["$patch"] != .string("replace") }.map { (item) throws(Failure) in try cleaned(item, path: path) ?? .null })
        }
        switch strategy {
        case nil:
            var replaced: [JSONValue] = []
            for item in additions { if let item = try cleaned(item, path: path) { replaced.append(item) } }
            return .array(replaced)
        case .mergePrimitives?:
            var merged = items
            for item in additions where !merged.contains(item) { merged.append(item) }
            return .array(merged)
        case .mergeOnKey(let key)?:
            var merged = items
            for addition in additions {
                guard let value = addition[key] else {
                    throw Failure(description: "an element of \(written(path)) has no merge key \"\(key)\"")
                }
                let index = merged.firstIndex { $0[key] == value }
                if addition["$patch"] == .string("delete") {
                    merged.removeAll { $0[key] == value }
                } else if let index {
                    if let result = try mergeObject(merged[index], addition, path: path) { merged[index] = result } else { merged.remove(at: index) }
                } else if let added = try cleaned(addition, path: path) {
                    merged.append(added)
                }
            }
            return .array(merged)
        }
    }

    /// A patch value that lands where nothing was: its directives applied to nothing.
    func cleaned(_ value: JSONValue, path: [String]) throws(Failure) -> JSONValue? {
        switch value {
        case .object: return try mergeObject(.object([]), value, path: path)
        case .array(let items): return try mergeList([], items, path: path)
        default: return value
        }
    }

    /// The elements named in `order` first, in its order, then the rest as they were.
    func reorder(_ items: [JSONValue], by order: [JSONValue], strategy: ListStrategy?) -> [JSONValue] {
        func identity(_ item: JSONValue) -> JSONValue {
            if case .mergeOnKey(let key)? = strategy { return item[key] ?? item }
            return item
        }
        let wanted = order.map(identity)
        var rest = items
        var sorted: [JSONValue] = []
        for id in wanted {
            if let index = rest.firstIndex(where: { identity($0) == id }) { sorted.append(rest.remove(at: index)) }
        }
        return sorted + rest
    }

    func written(_ path: [String]) -> String { path.isEmpty ? "the root" : path.joined(separator: ".") }
}

extension String {
    func removingPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
