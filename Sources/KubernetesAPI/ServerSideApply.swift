import ServiceRegistry

/// Server-side apply (`application/apply-patch+yaml`, `kubectl apply --server-side`): the body
/// is a field manager's whole intent. The object is created when missing; otherwise what the
/// manager applied last and leaves out now is removed, then the intent is merged in as a
/// strategic merge patch, so fields set by others stay. What each manager applied last is kept
/// on the object in an annotation of its own (`applied.clusterdns.io/MANAGER`), as kubectl's
/// client-side apply keeps `last-applied-configuration`, instead of kube-apiserver's
/// managedFields: there are no ownership conflicts between managers.
struct ServerSideApply {
    let kind: ObjectKind
    let manager: String

    static let annotationPrefix = "applied.clusterdns.io/"

    /// The annotation that holds `manager`'s last intent: its name is the manager's, with
    /// what an annotation name may not hold replaced, at most 63 characters.
    static func annotation(for manager: String) -> String {
        var name = String(manager.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "-" }.prefix(63))
        while let first = name.first, !(first.isLetter || first.isNumber) { name.removeFirst() }
        while let last = name.last, !(last.isLetter || last.isNumber) { name.removeLast() }
        return annotationPrefix + (name.isEmpty ? "unnamed" : name)
    }

    /// `current` with `intent` applied (`current` is `{}` for an object that does not exist).
    func apply(_ intent: JSONValue, to current: JSONValue) throws(StrategicMergePatch.Failure) -> JSONValue {
        let key = Self.annotation(for: manager)
        // The intent as remembered: without the annotation itself, whatever the caller sent.
        let remembered = Self.removing(annotation: key, from: intent)
        var object = current
        if let text = current["metadata"]?["annotations"]?[key]?.stringValue,
           let last = try? JSONValue(parsing: Array(text.utf8)) {
            object = removeAbsent(last: last, intent: remembered, live: object, path: []) ?? .object([])
        }
        object = try StrategicMergePatch(kind: kind).apply(remembered, to: object)
        let metadata = object["metadata"] ?? .object([])
        let annotations = (metadata["annotations"] ?? .object([])).setting(key, to: .string(remembered.text))
        return object.setting("metadata", to: metadata.setting("annotations", to: annotations))
    }

    static func removing(annotation key: String, from intent: JSONValue) -> JSONValue {
        guard let annotations = intent["metadata"]?["annotations"], annotations[key] != nil else { return intent }
        let rest = annotations.setting(key, to: nil)
        let metadata = intent["metadata"]!.setting("annotations", to: rest.members?.isEmpty == true ? nil : rest)
        return intent.setting("metadata", to: metadata)
    }

    /// `live` without what `last` set and `intent` no longer sets: fields by name, elements of
    /// merging lists by their key (or value); a field both set is looked into. Lists that do
    /// not merge are replaced by the intent's anyway.
    func removeAbsent(last: JSONValue, intent: JSONValue, live: JSONValue, path: [String]) -> JSONValue? {
        guard case .object(let lastMembers) = last, case .object = live else { return live }
        var live = live
        for (field, lastValue) in lastMembers {
            guard let liveValue = live[field] else { continue }
            guard let intended = intent[field] else {
                if !(path.isEmpty && ["apiVersion", "kind"].contains(field)) && !(path == ["metadata"] && ["name", "namespace"].contains(field)) {
                    live = live.setting(field, to: nil)
                }
                continue
            }
            switch (lastValue, intended, liveValue) {
            case (.object, .object, .object):
                live = live.setting(field, to: removeAbsent(last: lastValue, intent: intended, live: liveValue, path: path + [field]))
            case (.array(let lastItems), .array(let intendedItems), .array(let liveItems)):
                switch StrategicMergePatch.listStrategy(kind, path + [field]) {
                case .mergeOnKey(let mergeKey)?:
                    var kept: [JSONValue] = []
                    for item in liveItems {
                        let id = item[mergeKey]
                        let before = lastItems.first { $0[mergeKey] == id }
                        let now = intendedItems.first { $0[mergeKey] == id }
                        switch (before, now) {
                        case (.some, nil): continue  // the manager's element, no longer intended
                        case (let before?, let now?):
                            kept.append(removeAbsent(last: before, intent: now, live: item, path: path + [field]) ?? item)
                        default: kept.append(item)
                        }
                    }
                    live = live.setting(field, to: .array(kept))
                case .mergePrimitives?:
                    live = live.setting(field, to: .array(liveItems.filter { !lastItems.contains($0) || intendedItems.contains($0) }))
                case nil:
                    break
                }
            default:
                break
            }
        }
        return live
    }
}
