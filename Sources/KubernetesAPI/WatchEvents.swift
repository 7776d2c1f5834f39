import ServiceRegistry
import Synchronization

/// What one watch request selects: a resource, optionally a namespace, label and field
/// selectors.
struct WatchFilter: Sendable {
    var resource: APIResource
    var namespace: String?
    var labels: LabelSelector?
    var fields: FieldSelector?

    func matches(_ object: RegistryObject) -> Bool {
        object.kind == resource.kind
            && (namespace == nil || object.metadata.namespace == namespace)
            && (labels?.matches(object.metadata.labels) ?? true)
            && (fields?.matches(object) ?? true)
    }

    /// The event a watcher of this filter sees for a registry change, as kube-apiserver words
    /// it: an object that starts matching is ADDED, one that stops matching is DELETED.
    func translate(_ event: WatchEvent) -> (type: String, object: RegistryObject)? {
        guard event.object.kind == resource.kind else { return nil }
        let now = event.change != .deleted && matches(event.object)
        let before = event.previous.map(matches) ?? false
        var object = event.object
        // A deleted object is written with the version of its deletion.
        object.metadata.resourceVersion = event.resourceVersion
        switch (before, now) {
        case (false, true): return ("ADDED", object)
        case (true, true): return ("MODIFIED", object)
        case (true, false): return ("DELETED", object)
        case (false, false): return nil
        }
    }
}

/// The events of one watch as kube-apiserver streams them: `{"type": …, "object": …}` documents,
/// first the current state as ADDED events when the watch starts from no version, then every
/// change, BOOKMARK events when asked for, and an ERROR event with a 410 Status when the
/// version asked for is older than the history kept (or the watcher fell too far behind).
/// The stream ends at `timeoutSeconds`; a client resumes from the last version it saw.
public struct WatchEvents: AsyncSequence, Sendable {
    /// One event, encoded: a JSON document without its line end.
    public typealias Element = [UInt8]

    let initial: [RegistryObject]
    let stream: AsyncStream<[UInt8]>
    let continuation: AsyncStream<[UInt8]>.Continuation
    /// How each object is written: itself, or a Table of one row.
    let render: @Sendable (RegistryObject) -> JSONValue

    /// The largest number of events waiting to be written to a slow client before the watch
    /// ends (the client resumes from what it saw, as after a timeout).
    static let buffer = 10_000

    /// `shared`: events rendered as objects (not Tables) are encoded once for every watch of
    /// the handler (`OpenWatches.encoded`), as kube-apiserver serialises a watch event once for
    /// all its watchers.
    init(registry: Registry, filter: WatchFilter, from resourceVersion: UInt64?, timeout: Duration?,
         bookmarkInterval: Duration?, clock: any Clock<Duration>,
         render: @escaping @Sendable (RegistryObject) -> JSONValue = { $0.kubernetesJSON }, shared: Bool = false,
         open: OpenWatches? = nil) {
        self.render = render
        let (snapshot, changes) = registry.watchWithSnapshot(from: resourceVersion)
        initial = resourceVersion == nil
            ? snapshot.listWithDerived(filter.resource.kind, namespace: filter.namespace).filter(filter.matches) : []
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(Self.buffer))
        let encoded = shared ? open?.encoded : nil
        self.stream = stream
        self.continuation = continuation
        let kind = filter.resource.kind
        // The version of the last change given to the stream (or skipped as not watched): a
        // bookmark may name it because every event up to it is already in the stream.
        let seen = LastVersion(Swift.max(resourceVersion ?? 0, snapshot.resourceVersion))
        let derives = filter.resource.kind == .endpoints || filter.resource.kind == .endpointSlice
        let producer = Task {
            var derived = derives ? DerivedWatch(filter: filter, snapshot: snapshot) : nil
            do {
                events: for try await event in changes {
                    if let resourceVersion, event.resourceVersion <= resourceVersion { continue }
                    // Each change with whether its line is the same for every watch that sends
                    // it: a stored object's always; a derived one's only when read from the
                    // event's own snapshot (a replayed event reads the registry as it is now).
                    var changed: [(type: String, object: RegistryObject, sharable: Bool)] = []
                    if let (type, object) = filter.translate(event) { changed.append((type, object, true)) }
                    if derived != nil, !event.endpointsChanged.isEmpty || event.object.kind == .service {
                        changed += derived!.events(for: event, snapshot: event.snapshot ?? registry.snapshot(),
                                                   replayed: event.resourceVersion <= snapshot.resourceVersion)
                            .map { ($0.type, $0.object, event.snapshot != nil) }
                    }
                    for (type, object, sharable) in changed {
                        func line() -> [UInt8] { JSONValue.object([("type", .string(type)), ("object", render(object))]).bytes }
                        let bytes = sharable
                            ? encoded?.line(resourceVersion: event.resourceVersion, type: type, key: object.key, make: line) ?? line()
                            : line()
                        if case .dropped = continuation.yield(bytes) { break events }
                    }
                    seen.value.withLock { $0 = event.resourceVersion }
                }
            } catch let expired as WatchExpired {
                let status = APIError(code: 410, reason: "Expired", message: expired.description).status
                continuation.yield(JSONValue.object([("type", .string("ERROR")), ("object", status)]).bytes)
            } catch {}
            continuation.finish()
        }
        @Sendable func bookmark() -> [UInt8] {
            let version = seen.value.withLock { $0 }
            return JSONValue.object([("type", .string("BOOKMARK")), ("object", .object([
                ("kind", .string(kind.rawValue)), ("apiVersion", .string(kind.apiVersion)),
                ("metadata", .object([("resourceVersion", .string(String(version)))])),
            ]))]).bytes
        }
        let bookmarks = bookmarkInterval.map { interval in
            Task {
                while (try? await clock.sleep(for: interval)) != nil {
                    continuation.yield(bookmark())
                }
            }
        }
        let deadline = timeout.map { timeout in
            Task {
                guard (try? await clock.sleep(for: timeout)) != nil else { return }
                if bookmarkInterval != nil { continuation.yield(bookmark()) }
                continuation.finish()
            }
        }
        let id = open?.add(continuation)
        continuation.onTermination = { _ in
            producer.cancel()
            bookmarks?.cancel()
            deadline?.cancel()
            if let id { open?.remove(id) }
        }
    }

    /// Ends the watch: what writes it calls when the client has gone (its tasks hold the stream
    /// open otherwise).
    public func finish() { continuation.finish() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var initial: IndexingIterator<[RegistryObject]>
        var stream: AsyncStream<[UInt8]>.AsyncIterator
        let render: @Sendable (RegistryObject) -> JSONValue

        public mutating func next() async -> [UInt8]? {
            if let object = initial.next() {
                return JSONValue.object([("type", .string("ADDED")), ("object", render(object))]).bytes
            }
            return await stream.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(initial: initial.makeIterator(), stream: stream.makeAsyncIterator(), render: render)
    }
}

final class LastVersion: Sendable {
    let value: Mutex<UInt64>
    init(_ version: UInt64) { value = Mutex(version) }
}

/// The watches being served, so that a server shutting down ends them (an HTTP server drains
/// its requests before it stops, and a watch would otherwise last until its timeout).
public final class OpenWatches: Sendable {
    struct State {
        var watches: [Int: AsyncStream<[UInt8]>.Continuation] = [:]
        var next = 0
        var closed = false
    }
    let state = Mutex(State())
    /// Events encoded for one watch, kept for the others.
    let encoded = EncodedEvents()

    public init() {}

    func add(_ continuation: AsyncStream<[UInt8]>.Continuation) -> Int? {
        let id = state.withLock { state -> Int? in
            if state.closed { return nil }
            defer { state.next += 1 }
            state.watches[state.next] = continuation
            return state.next
        }
        if id == nil { continuation.finish() }
        return id
    }

    func remove(_ id: Int) {
        // Continuations are finished outside the lock (their termination handlers come here).
        _ = state.withLock { $0.watches.removeValue(forKey: id) }
    }

    public var count: Int { state.withLock { $0.watches.count } }

    /// Ends every watch, and every watch started from now on.
    public func closeAll() {
        let all = state.withLock { state in
            state.closed = true
            defer { state.watches = [:] }
            return Array(state.watches.values)
        }
        for continuation in all { continuation.finish() }
    }
}

/// Watch events as encoded lines, shared by the watches that send the same event of the same
/// object in the same form: the first encodes it, the others copy the bytes. The most recent
/// few hundred are kept: a watcher that lags further encodes its own.
final class EncodedEvents: Sendable {
    struct Key: Hashable {
        var resourceVersion: UInt64
        var type: String
        var object: ObjectKey
    }

    struct State {
        var lines: [Key: [UInt8]] = [:]
        var order: [Key] = []
        var next = 0
    }

    static let capacity = 512
    let state = Mutex(State())

    func line(resourceVersion: UInt64, type: String, key: ObjectKey, make: () -> [UInt8]) -> [UInt8] {
        let key = Key(resourceVersion: resourceVersion, type: type, object: key)
        if let line = state.withLock({ $0.lines[key] }) { return line }
        let line = make()
        state.withLock { state in
            guard state.lines[key] == nil else { return }
            if state.order.count < Self.capacity {
                state.order.append(key)
            } else {
                state.lines[state.order[state.next]] = nil
                state.order[state.next] = key
                state.next = (state.next + 1) % Self.capacity
            }
            state.lines[key] = line
        }
        return line
    }
}
