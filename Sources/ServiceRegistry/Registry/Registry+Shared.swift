import Dispatch
import NetAddress

/// A writer waiting until this replica has seen the shared store reach a state.
struct SharedWaiter {
    let isSatisfied: @Sendable (RegistrySnapshot) -> Bool
    let continuation: CheckedContinuation<Void, Never>
}

/// The registry over a store shared by several replicas (etcd). A write is prepared here
/// (validated, defaulted, allocated against what this replica has seen and what its own writes
/// have in flight), then made in the store as one transaction that compares the revision it
/// read and claims its allocations; it is installed here when the store's change comes back
/// through the follow loop, as every other replica's is. So each replica serves exactly the
/// store's sequence of changes, and a write answers only once its own replica serves it.
extension Registry {
    /// How long a writer waits to see its write come back from the store; past it, the answer
    /// is what was written (the store has it; this replica is late in seeing it).
    static let sharedCatchUp: Duration = .seconds(10)
    /// Attempts of a write that keeps meeting other replicas' writes (a stale copy, an address
    /// taken meanwhile) before it gives up.
    static let sharedAttempts = 64
    /// Writes of one batch in flight at once.
    static let sharedConcurrency = 32
    /// How long a write tries again while the store cannot take it (a member going away, an
    /// election), before it is refused as unavailable.
    static let unavailableBudget: Duration = .seconds(2)

    /// Makes the object to write from the one given and the one stored now (nil: none).
    public typealias Merge = @Sendable (_ given: RegistryObject, _ existing: RegistryObject?) -> RegistryObject

    struct SharedPlan: Sendable {
        var object: RegistryObject
        var existing: RegistryObject?
        var outcome: ApplyOutcome
        var reserved: [AllocationClaim]
        /// The transaction: the object, and the claims it makes and gives up.
        var write: StoreWrite
    }

    /// The registry as the shared store held it at `revision` (its objects of `kinds`, or of
    /// every kind), read from the store into a registry apart from this one (nothing here
    /// changes), derived endpoints and node readiness included when what they derive from is
    /// read: what a paged list begun on another replica continues from once this one has moved
    /// past the list's version, as kube-apiserver reads etcd at the revision of a list's first
    /// page. Nil without a shared store; `.expired` once the store has compacted past
    /// `revision`, `.futureRevision` before it has reached it.
    public func snapshot(atStoreRevision revision: UInt64, kinds: Set<ObjectKind>? = nil) async throws(StoreError) -> RegistrySnapshot? {
        guard let shared else { return nil }
        let listing = try await shared.load(at: Int64(revision), kinds: kinds)
        let wallClock = state.withLock { $0.wallClock }
        guard let past = try? Registry(configuration: configuration, wallClock: wallClock) else { return nil }
        _ = past.adopt(StoreBatch(listing))
        return past.snapshot()
    }

    /// The revision of the shared store's first complete list, once this replica has read it
    /// (nil until then, and without a shared store).
    public var sharedRevision: UInt64? { state.withLock { $0.sharedRevision } }

    /// How the exchanges with the shared store are going.
    public var sharedStatus: SharedStoreStatus { state.withLock { $0.sharedStatus } }

    func noteStore(available: Bool, refusedWrite: Bool = false, interrupted: Bool = false, problem: String? = nil) {
        state.withLock { state in
            state.sharedStatus.isAvailable = available
            if refusedWrite { state.sharedStatus.refusedWrites += 1 }
            if interrupted { state.sharedStatus.interruptions += 1 }
            if let problem { state.sharedStatus.lastProblem = problem }
        }
    }

    func writeShared(_ given: RegistryObject, preconditions: WritePreconditions, dryRun: Bool,
                     store: any SharedRegistryStore, merge: Merge? = nil) async throws(RegistryError) -> (outcome: ApplyOutcome, stored: RegistryObject) {
        let key = given.key
        let requested = AllocationClaim.claims(of: given, podCIDRs: snapshot().podCIDRs(ofNode:))
        // One uid for every attempt: a create that the store took although its answer was
        // lost is then recognised as this write's when the attempt after it meets it.
        var given = given
        if given.metadata.uidValue.isEmpty { given.metadata.uidValue = .random() }
        let uid = given.metadata.uidValue
        if let version = preconditions.resourceVersion { await catchUp(to: version) }
        var attempt = 0
        while true {
            attempt += 1
            let plan = try state.withLock { (state: inout State) throws(RegistryError) -> SharedPlan in
                let existing = state.snapshot.objects[key]
                try preconditions.check(key, existing: existing)
                // Merged again with what is there on every attempt: a write that met another
                // replica's keeps what that one added.
                var input = merge.map { $0(given, existing) } ?? given
                input.metadata.uidValue = uid
                var base = state.allocations
                for claim in state.reserved { base.reserve(claim) }
                let (object, allocations) = try Self.prepared(input, existing: existing, allocations: base, snapshot: state.snapshot,
                                                              wallClock: state.wallClock, isRestore: false)
                if let existing, existing == object {
                    return SharedPlan(object: existing, existing: existing, outcome: .unchanged, reserved: [], write: StoreWrite())
                }
                state.allocations.takeCursors(from: allocations)
                let write = StoreWrite.replacing(existing, with: object, podCIDRs: state.snapshot.podCIDRs(ofNode:))
                let claims = dryRun ? [] : write.claims
                state.reserved.formUnion(claims)
                return SharedPlan(object: object, existing: existing, outcome: existing == nil ? .created : .configured, reserved: claims,
                                  write: write)
            }
            if dryRun || plan.outcome == .unchanged { return (plan.outcome, plan.object) }
            let result: Result<Int64, StoreError>
            var uncertain = false
            do throws(StoreError) {
                result = .success(try await Self.write(plan.write, to: store, uncertain: &uncertain))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let revision):
                noteStore(available: true)
                let version = UInt64(revision)
                await waitShared { $0.resourceVersion >= version }
                unreserve(plan.reserved)
                if let seen = snapshot().objects[key], seen.metadata.resourceVersion == version { return (plan.outcome, seen) }
                var stored = plan.object
                stored.metadata.resourceVersion = version
                return (plan.outcome, stored)
            case .failure(.unavailable(let reason)):
                unreserve(plan.reserved)
                noteStore(available: false, refusedWrite: true, problem: reason)
                throw .unavailable(reason)
            case .failure(.expired(let revision)), .failure(.futureRevision(let revision)):
                // A write reads at no revision: a store that says so is refusing it.
                unreserve(plan.reserved)
                throw .unavailable("the store refused a write over revision \(revision)")
            case .failure(.conflict(_, let expected, let actual)):
                unreserve(plan.reserved)
                if let version = preconditions.resourceVersion {
                    throw .conflict(key, .resourceVersion(expected: version, actual: UInt64(actual)))
                }
                if uncertain, actual != 0 {
                    // An attempt whose answer was lost may have been made: then what the store
                    // holds is exactly what this write wrote.
                    await waitUntilSeen(key, expected: expected, actual: actual)
                    if let seen = snapshot().objects[key], seen.metadata.resourceVersion == UInt64(actual) {
                        var written = plan.object
                        written.metadata.resourceVersion = seen.metadata.resourceVersion
                        if written == seen { return (plan.outcome, seen) }
                    }
                }
                if preconditions.mustNotExist && actual != 0 { throw .alreadyExists(key) }
                guard attempt < Self.sharedAttempts else {
                    throw .conflict(key, .resourceVersion(expected: UInt64(expected), actual: UInt64(actual)))
                }
                // This replica's copy is behind the store: see what the store holds, then again.
                await waitUntilSeen(key, expected: expected, actual: actual)
            case .failure(.taken(let claim, let owner)):
                unreserve(plan.reserved)
                if requested.contains(claim) || attempt >= Self.sharedAttempts {
                    throw .allocation(kind: given.kind, name: given.metadata.name, errors: [Self.fieldError(claim, owner: owner, in: plan.object)])
                }
                // Another replica took it a moment ago: take another, from elsewhere in the range.
                state.withLock { state in
                    state.allocations.reserve(claim)
                    state.allocations.scatterCursors()
                }
            }
        }
    }

    func deleteShared(_ key: ObjectKey, preconditions: WritePreconditions, store: any SharedRegistryStore) async throws(RegistryError) -> RegistryObject {
        if let version = preconditions.resourceVersion { await catchUp(to: version) }
        if key.kind == .namespace {
            let contained = try state.withLock { (state: inout State) throws(RegistryError) -> [ObjectKey] in
                try preconditions.check(key, existing: state.snapshot.objects[key])
                guard state.snapshot.objects[key] != nil else { throw .notFound(key) }
                return state.snapshot.contents(ofNamespace: key.name)
            }
            for object in contained {
                do throws(RegistryError) { _ = try await deleteShared(object, preconditions: .none, store: store) } catch .notFound {}
            }
        }
        var attempt = 0
        while true {
            attempt += 1
            let (existing, write) = try state.withLock { (state: inout State) throws(RegistryError) -> (RegistryObject, StoreWrite) in
                let existing = state.snapshot.objects[key]
                try preconditions.check(key, existing: existing)
                guard let existing else { throw .notFound(key) }
                return (existing, StoreWrite.deleting(existing, podCIDRs: state.snapshot.podCIDRs(ofNode:)))
            }
            var uncertain = false
            do throws(StoreError) {
                let revision = UInt64(try await Self.write(write, to: store, uncertain: &uncertain))
                noteStore(available: true)
                await waitShared { $0.resourceVersion >= revision }
                return existing
            } catch .conflict(_, let expected, let actual) {
                // Gone, after an attempt whose answer was lost: that attempt deleted it.
                if uncertain && actual == 0 {
                    await waitUntilSeen(key, expected: expected, actual: actual)
                    return existing
                }
                if let version = preconditions.resourceVersion {
                    throw .conflict(key, .resourceVersion(expected: version, actual: UInt64(actual)))
                }
                guard attempt < Self.sharedAttempts else {
                    throw .conflict(key, .resourceVersion(expected: UInt64(expected), actual: UInt64(actual)))
                }
                await waitUntilSeen(key, expected: expected, actual: actual)
            } catch .unavailable(let reason) {
                noteStore(available: false, refusedWrite: true, problem: reason)
                throw .unavailable(reason)
            } catch {
                throw .unavailable(error.description)
            }
        }
    }

    /// A batch through the shared store: kinds in dependency order, the objects of a kind
    /// written side by side (each its own transaction), the documents naming one object in
    /// their order. Each object gets its own result, as `kubectl apply` reports them.
    func applyShared(contentsOf objects: [RegistryObject], store: any SharedRegistryStore,
                     merge: Merge? = nil) async -> [Result<ApplyOutcome, RegistryError>] {
        var results = [Result<ApplyOutcome, RegistryError>](repeating: .success(.unchanged), count: objects.count)
        let byKind = Dictionary(grouping: objects.indices) { objects[$0].kind }.sorted { $0.key < $1.key }
        for (_, indices) in byKind {
            var byObject: [ObjectKey: [Int]] = [:]
            var order: [ObjectKey] = []
            for index in indices {
                if byObject[objects[index].key] == nil { order.append(objects[index].key) }
                byObject[objects[index].key, default: []].append(index)
            }
            await withTaskGroup(of: [(Int, Result<ApplyOutcome, RegistryError>)].self) { group in
                var pending = order.makeIterator()
                func start(_ key: ObjectKey) {
                    let documents = byObject[key] ?? []
                    group.addTask {
                        var done: [(Int, Result<ApplyOutcome, RegistryError>)] = []
                        for index in documents {
                            do throws(RegistryError) {
                                done.append((index, .success(try await self.writeShared(objects[index], preconditions: .none,
                                                                                         dryRun: false, store: store,
                                                                                         merge: merge).outcome)))
                            } catch {
                                done.append((index, .failure(error)))
                            }
                        }
                        return done
                    }
                }
                for _ in 0..<Self.sharedConcurrency {
                    guard let key = pending.next() else { break }
                    start(key)
                }
                for await done in group {
                    for (index, result) in done { results[index] = result }
                    if let key = pending.next() { start(key) }
                }
            }
        }
        return results
    }

    /// `write` made in `store`, tried again while the store is unavailable (up to
    /// `unavailableBudget`). `uncertain` tells whether an attempt failed in a way that leaves
    /// open whether the store made it.
    static func write(_ write: StoreWrite, to store: any SharedRegistryStore, uncertain: inout Bool) async throws(StoreError) -> Int64 {
        var delay = Duration.milliseconds(100)
        var waited = Duration.zero
        while true {
            do throws(StoreError) {
                return try await store.write(write)
            } catch .unavailable(let reason) {
                uncertain = true
                guard waited < unavailableBudget else { throw .unavailable(reason) }
                let pause = min(delay, unavailableBudget - waited)
                try? await Task.sleep(for: pause)
                waited += pause
                delay *= 2
            }
        }
    }

    /// Waits until `condition` holds of what this replica has seen of the store, or `timeout`.
    func waitShared(timeout: Duration = Registry.sharedCatchUp, _ condition: @escaping @Sendable (RegistrySnapshot) -> Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLock { (state: inout State) -> Int? in
                if condition(state.snapshot) { return nil }
                let id = state.nextWaiter
                state.nextWaiter += 1
                state.waiters[id] = SharedWaiter(isSatisfied: condition, continuation: continuation)
                return id
            }
            guard let id else { return continuation.resume() }
            let (seconds, attoseconds) = timeout.components
            let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) {
                self.state.withLock { $0.waiters.removeValue(forKey: id) }?.continuation.resume()
            }
        }
    }

    /// Waits until this replica has seen the store at `version` (a client read it elsewhere).
    func catchUp(to version: UInt64) async {
        await waitShared(timeout: .seconds(2)) { $0.resourceVersion >= version }
    }

    /// After a conflict: waits until this replica's copy of `key` is what the store said it is.
    func waitUntilSeen(_ key: ObjectKey, expected: Int64, actual: Int64) async {
        if actual > 0 {
            await waitShared { $0.resourceVersion >= UInt64(actual) }
        } else {
            await waitShared { $0.objects[key].map { Int64($0.metadata.resourceVersion) != expected } ?? true }
        }
    }

    func unreserve(_ claims: [AllocationClaim]) {
        guard !claims.isEmpty else { return }
        state.withLock { $0.reserved.subtract(claims) }
    }

    /// A claim another object holds, in the words kube-apiserver uses for it.
    static func fieldError(_ claim: AllocationClaim, owner: String, in object: RegistryObject) -> FieldError {
        switch claim {
        case .clusterIP(let ip):
            return .invalid("spec.clusterIPs", "[\"\(ip)\"]", "failed to allocate IP \(ip): provided IP is already allocated")
        case .nodePort(let port):
            var index = 0
            if case .service(let service) = object { index = service.spec.ports.firstIndex { $0.nodePort == port } ?? 0 }
            return .invalid("spec.ports[\(index)].nodePort", String(port), "provided port is already allocated")
        case .loadBalancerIP(let ip):
            return .invalid("spec.loadBalancerIP", FieldError.quoted(ip), "provided IP is already allocated")
        case .podIP(let ip):
            guard case .pod(let pod) = object else { return .invalid("status.podIPs", FieldError.quoted(ip), "already in use by another pod") }
            let index = pod.status.podIPs.firstIndex { IPAddress($0)?.description == ip } ?? 0
            return .invalid("status.podIPs[\(index)].ip", FieldError.quoted(ip), "already in use by another pod on node \(pod.spec.nodeName)")
        }
    }
}
