import ServiceRegistry
import Synchronization

/// The snapshots that paged lists (`limit`/`continue`) are reading: a continued list sees the
/// registry as its first page did, as kube-apiserver's does. A snapshot costs little (the
/// registry's trees are shared), and only the last few are kept.
final class ListPages: Sendable {
    static let kept = 32
    /// Snapshots read back from the shared store share nothing with the live registry (each
    /// is a registry's worth of memory): fewer are kept, and each only while its list goes on,
    /// dropped between one and two of these after the last page read from it.
    static let keptFromStore = 2
    static let keepFromStore: Duration = .seconds(60)

    struct Reading {
        let version: UInt64
        let kinds: Set<ObjectKind>?
        let task: Task<RegistrySnapshot?, any Error>
        /// Read from since the last sweep.
        var used = true
    }

    let snapshots = Mutex<[(version: UInt64, snapshot: RegistrySnapshot)]>([])
    let fromStore = Mutex<(readings: [Reading], sweeping: Bool)>(([], false))

    func keep(_ snapshot: RegistrySnapshot) {
        // One read back from the store stays there, held only while it is read from.
        if fromStore.withLock({ $0.readings.contains { $0.version == snapshot.resourceVersion } }) { return }
        snapshots.withLock { list in
            if list.contains(where: { $0.version == snapshot.resourceVersion }) { return }
            list.append((snapshot.resourceVersion, snapshot))
            if list.count > Self.kept { list.removeFirst() }
        }
    }

    func snapshot(at version: UInt64) -> RegistrySnapshot? {
        snapshots.withLock { list in list.first { $0.version == version }?.snapshot }
    }

    /// How many snapshots read back from the store are held.
    var heldFromStore: Int { fromStore.withLock { $0.readings.count } }

    /// The registry at `version` as its shared store held it (its objects of `kinds`, or all;
    /// nil: no shared store), read once for every list that continues at that version here,
    /// one reading at a time (a page on another replica names any version; each reading lists
    /// those kinds of the whole store).
    func snapshot(at version: UInt64, of kinds: Set<ObjectKind>?, from registry: Registry,
                  clock: any Clock<Duration>) async throws(StoreError) -> RegistrySnapshot? {
        let (task, startSweeping) = fromStore.withLock { state -> (Task<RegistrySnapshot?, any Error>, Bool) in
            if let index = state.readings.firstIndex(where: { $0.version == version && $0.kinds == kinds }) {
                state.readings[index].used = true
                return (state.readings[index].task, false)
            }
            let previous = state.readings.last?.task
            let task = Task { () async throws -> RegistrySnapshot? in
                _ = await previous?.result
                return try await registry.snapshot(atStoreRevision: version, kinds: kinds)
            }
            state.readings.append(Reading(version: version, kinds: kinds, task: task))
            if state.readings.count > Self.keptFromStore { state.readings.removeFirst() }
            let start = !state.sweeping
            state.sweeping = true
            return (task, start)
        }
        if startSweeping { Task { await sweep(clock) } }
        switch await task.result {
        case .success(let snapshot): return snapshot
        case .failure(let error):
            // Not kept: the store may answer the next one.
            fromStore.withLock { state in state.readings.removeAll { $0.version == version && $0.kinds == kinds } }
            throw error as? StoreError ?? .unavailable("\(error)")
        }
    }

    /// Drops, every `keepFromStore`, the snapshots read back from the store that no page has
    /// been read from since the sweep before; ends once none is held.
    func sweep(_ clock: any Clock<Duration>) async {
        while true {
            let cancelled = (try? await clock.sleep(for: Self.keepFromStore)) == nil
            let done = fromStore.withLock { state in
                if cancelled {
                    state.readings.removeAll()
                    state.sweeping = false
                    return true
                }
                state.readings.removeAll { !$0.used }
                for index in state.readings.indices { state.readings[index].used = false }
                if state.readings.isEmpty { state.sweeping = false }
                return state.readings.isEmpty
            }
            if done { return }
        }
    }
}

extension APIHandler {
    func get(_ request: APIRequest, _ target: Target, _ representation: Representation) throws(APIError) -> APIResponse {
        let name = target.name!
        guard let object = registry.snapshot().getWithDerived(target.key(name)) else { throw .notFound(target.resource, name) }
        return APIResponse(code: 200, body: renderer(request, target, representation)(object))
    }

    /// How a watch or a list writes each object: itself, or a Table of one row.
    func renderer(_ request: APIRequest, _ target: Target, _ representation: Representation) -> @Sendable (RegistryObject) -> JSONValue {
        guard case .table(let version) = representation else { return { $0.kubernetesJSON } }
        let include = request.query["includeObject"]
        let wallClock = wallClock
        let kind = target.resource.kind
        return { object in
            Tables.table([object], kind: kind, version: version,
                         listMetadata: .object([("resourceVersion", .string(String(object.metadata.resourceVersion)))]),
                         includeObject: include, now: wallClock())
        }
    }

    func selectors(_ request: APIRequest, _ target: Target) throws(APIError) -> WatchFilter {
        let labels = try request.query["labelSelector"].map { (s) throws(APIError) in try LabelSelector(parsing: s) }
        var fields = try request.query["fieldSelector"].map { (s) throws(APIError) in try FieldSelector(parsing: s, for: target.resource.kind) }
        if let name = target.name {  // `/watch/…/NAME`
            fields = try FieldSelector(parsing: "metadata.name=\(name)" + (fields.map { "," + $0.text } ?? ""), for: target.resource.kind)
        }
        return WatchFilter(resource: target.resource, namespace: target.namespace, labels: labels, fields: fields)
    }

    static func version(_ text: String?, _ parameter: String) throws(APIError) -> UInt64? {
        guard let text, !text.isEmpty else { return nil }
        guard let version = UInt64(text) else {
            throw .badRequest("invalid \(parameter) \"\(text)\": a resource version is a decimal number here")
        }
        return version
    }

    /// A list: every object selected, as of one version. `resourceVersion` (with
    /// `resourceVersionMatch`) asks for a version: "0" or none is the current state, as is any
    /// version not newer than it (NotOlderThan); Exact needs the version still at hand.
    func list(_ request: APIRequest, _ target: Target, _ representation: Representation) async throws(APIError) -> APIResponse {
        let filter = try selectors(request, target)
        let limit = try request.query["limit"].flatMap { (text) throws(APIError) -> Int? in
            guard let n = Int(text), n >= 0 else { throw .badRequest("invalid limit \"\(text)\"") }
            return n == 0 ? nil : n
        }
        var snapshot = registry.snapshot()
        var start: ObjectKey? = nil
        if let token = request.query["continue"], !token.isEmpty {
            let (version, key) = try ContinueToken.parse(token, kind: target.resource.kind)
            guard let kept = try await self.snapshot(at: version, current: snapshot, kind: target.resource.kind,
                                                     tooNew: .badRequest("continue key is not valid: \"\(token)\"")) else {
                throw APIError(code: 410, reason: "Expired",
                               message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            }
            snapshot = kept
            start = key
        } else if let version = try Self.version(request.query["resourceVersion"], "resourceVersion"), version > 0 {
            if request.query["resourceVersionMatch"] == "Exact" {
                let tooNew = APIError(code: 504, reason: "Timeout", message: "Too large resource version: \(version), current: \(snapshot.resourceVersion)")
                guard let kept = try await self.snapshot(at: version, current: snapshot, kind: target.resource.kind, tooNew: tooNew) else {
                    throw APIError(code: 410, reason: "Expired", message: "too old resource version: \(version) (\(snapshot.resourceVersion))")
                }
                snapshot = kept
            } else if version > snapshot.resourceVersion {
                throw APIError(code: 504, reason: "Timeout",
                               message: "Too large resource version: \(version), current: \(snapshot.resourceVersion)")
            }
        }
        var items = snapshot.listWithDerived(target.resource.kind, namespace: target.namespace).filter(filter.matches)
        if let start { items = Array(items.drop { $0.key <= start }) }
        var metadata: [(String, JSONValue)] = [("resourceVersion", .string(String(snapshot.resourceVersion)))]
        if let limit, items.count > limit {
            let remaining = items.count - limit
            items = Array(items.prefix(limit))
            pages.keep(snapshot)
            metadata.append(("continue", .string(ContinueToken.make(version: snapshot.resourceVersion, after: items.last!.key))))
            metadata.append(("remainingItemCount", .int(remaining)))
        }
        if case .table(let version) = representation {
            return APIResponse(code: 200, body: Tables.table(items, kind: target.resource.kind, version: version,
                                                             listMetadata: .object(metadata),
                                                             includeObject: request.query["includeObject"], now: wallClock()))
        }
        return APIResponse(code: 200, body: .object([
            ("kind", .string(target.resource.kind.rawValue + "List")), ("apiVersion", .string(target.resource.groupVersion)),
            ("metadata", .object(metadata)),
            ("items", .array(items.map(\.kubernetesJSON))),
        ]))
    }

    /// The registry at `version`: the current snapshot, one a paged list here is reading, or
    /// (a list begun on another replica of a shared registry, or an exact version asked for)
    /// the shared store read at that revision, as kube-apiserver reads etcd; nil when none
    /// holds it any more, `tooNew` when the store has not reached it. Read from the store, it
    /// holds what a list of `kind` needs: that kind's objects, or every kind for endpoints
    /// and slices, which are derived from services and pods as well.
    func snapshot(at version: UInt64, current: RegistrySnapshot, kind: ObjectKind, tooNew: APIError) async throws(APIError) -> RegistrySnapshot? {
        if current.resourceVersion == version { return current }
        if let kept = pages.snapshot(at: version) { return kept }
        guard registry.sharedRevision != nil else { return nil }
        let kinds: Set<ObjectKind>? = kind == .endpoints || kind == .endpointSlice ? nil : [kind]
        do throws(StoreError) {
            return try await pages.snapshot(at: version, of: kinds, from: registry, clock: clock)
        } catch .expired {
            return nil
        } catch .futureRevision {
            throw tooNew
        } catch {
            throw APIError(code: 503, reason: "ServiceUnavailable", message: "the registry's store is unavailable: \(error)")
        }
    }

    func watch(_ request: APIRequest, _ target: Target, _ representation: Representation) throws(APIError) -> APIResponse {
        let filter = try selectors(request, target)
        var version = try Self.version(request.query["resourceVersion"], "resourceVersion")
        if version == 0 { version = nil }  // "0": from any version, i.e. the current state first
        let timeout = try request.query["timeoutSeconds"].map { (text) throws(APIError) -> Duration in
            guard let seconds = Int(text), seconds >= 0 else { throw .badRequest("invalid timeoutSeconds \"\(text)\"") }
            return .seconds(seconds)
        } ?? defaultWatchTimeout
        let events = WatchEvents(registry: registry, filter: filter, from: version, timeout: timeout,
                                 bookmarkInterval: Self.isTrue(request.query["allowWatchBookmarks"]) ? bookmarkInterval : nil,
                                 clock: clock, render: renderer(request, target, representation),
                                 shared: representation == .objects, open: watches)
        return APIResponse(code: 200, body: .null, events: events)
    }
}

/// `continue`: the version a paged list reads and the last key it gave, as text
/// (`VERSION/NAMESPACE/NAME`; names and namespaces hold no "/").
enum ContinueToken {
    static func make(version: UInt64, after key: ObjectKey) -> String {
        "\(version)/\(key.namespace)/\(key.name)"
    }

    static func parse(_ token: String, kind: ObjectKind) throws(APIError) -> (UInt64, ObjectKey) {
        let parts = token.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, let version = UInt64(parts[0]), !parts[2].isEmpty else {
            throw .badRequest("continue key is not valid: \"\(token)\"")
        }
        return (version, ObjectKey(kind, namespace: String(parts[1]), name: String(parts[2])))
    }
}
