import Dispatch

/// How a replica follows the shared store: one list, installed as the difference from what it
/// holds, then every change the store's watch brings, each batch installed as one change.
extension Registry {
    /// Keeps this replica in step with the shared store until the task is cancelled: lists it
    /// (again and again while it cannot be reached), installs the difference from what is held
    /// (the local copy of the last state seen, if any), then follows every change. Problems
    /// (the store out of reach, values that cannot be read) go to `onProblem`; none ends it.
    public func followSharedStore(onProblem: @escaping @Sendable (String) -> Void) async {
        guard let shared, let revision = await listShared(shared, onProblem: onProblem) else { return }
        #if canImport(Glibc)
        // The list's values, JSON and the difference were temporary: give the memory back.
        _ = mallocTrim(0)
        #endif
        let stream = shared.follow(from: revision) { error in
            self.noteStore(available: false, interrupted: true, problem: error.description)
            onProblem("\(shared.name): \(error)")
        }
        do {
            for try await batch in stream {
                noteStore(available: true)
                for problem in adopt(batch) { onProblem(problem) }
            }
        } catch {
            onProblem("stopped following \(shared.name): \(error)")
        }
    }

    /// The first list (tried again while the store cannot be reached), installed as the
    /// difference from what is held; its revision, or nil when cancelled first. A replica
    /// that holds nothing yet (no local copy) installs the list a page at a time as the pages
    /// arrive (`StagedList`), and swaps the result in at the end as one change.
    func listShared(_ shared: any SharedRegistryStore, onProblem: @escaping @Sendable (String) -> Void) async -> Int64? {
        var delay = Duration.milliseconds(100)
        var listed: StoreListing? = nil
        var staged: StagedList? = nil
        while listed == nil && !Task.isCancelled {
            do throws(StoreError) {
                if holdsNothing {
                    let staging = StagedList(configuration: configuration, wallClock: state.withLock { $0.wallClock })
                    staged = staging
                    listed = try await shared.load(at: 0, kinds: nil) { objects, revision in staging.add(objects, revision: revision) }
                } else {
                    staged = nil
                    listed = try await shared.load()
                }
            } catch {
                noteStore(available: false, interrupted: true, problem: error.description)
                onProblem("cannot list the registry in \(shared.name): \(error)")
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        guard var listed else { return nil }
        let problems: [String]
        if let staged {
            let installed = staged.finished()
            if let swapped = swapIn(installed, listed: listed) {
                problems = swapped
            } else {
                // Something was installed meanwhile: the list goes in as the difference after all.
                listed.objects = installed.received
                problems = adopt(StoreBatch(listed))
            }
        } else {
            problems = adopt(StoreBatch(listed))
        }
        for problem in problems { onProblem(problem) }
        let waiting = state.withLock { (state: inout State) in
            state.sharedRevision = UInt64(listed.revision)
            // The list is where this replica's history starts, as kube-apiserver's watch cache
            // starts at its list: its events went to the watchers already there, and a watch
            // from an older version is told to list again rather than replayed a list as changes.
            state.history.removeAll()
            defer { state.listedWaiters.removeAll() }
            return Array(state.listedWaiters.values)
        }
        noteStore(available: true)
        for waiter in waiting { waiter.resume() }
        return listed.revision
    }

    /// Returns once the shared store's first list is installed (`sharedRevision` is set), at
    /// once without a shared store, or when the calling task is cancelled.
    public func waitUntilListed() async {
        guard shared != nil else { return }
        let id = state.withLock { (state: inout State) -> Int in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Cancelled before this point: the handler found nothing to resume, so this does.
                let waits = state.withLock { (state: inout State) -> Bool in
                    guard state.sharedRevision == nil, !Task.isCancelled else { return false }
                    state.listedWaiters[id] = continuation
                    return true
                }
                if !waits { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.listedWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Whether nothing has been installed: a list can be installed apart and swapped in.
    var holdsNothing: Bool { state.withLock { $0.holdsNothing } }

    /// Installs a list staged apart, if this registry still holds nothing (nil otherwise): what
    /// `adopt` of the whole list would have installed, change for change, with its events for
    /// watchers, its local copy and its problems.
    func swapIn(_ installed: StagedList.Installed, listed: StoreListing) -> [String]? {
        var adoption = installed.adoption
        let swapped = state.withLock { (state: inout State) -> Bool in
            guard state.holdsNothing else { return false }
            state.snapshot.objects = installed.snapshot.objects
            state.snapshot.serviceEndpoints = installed.snapshot.serviceEndpoints
            state.snapshot.resourceVersion = installed.snapshot.resourceVersion
            state.snapshot.leasedNodes = listed.leasedNodes
            state.indexes = installed.indexes
            var allocations = installed.allocations
            allocations.takeCursors(from: state.allocations)
            state.allocations = allocations
            // The list is where the history starts (`listShared`): its changes go to watchers only.
            adoption.finish(at: UInt64(listed.revision), nodesChanged: true, state: &state, storage: storage, recordingHistory: false)
            return true
        }
        return swapped ? adoption.problems : nil
    }

    /// Installs what the store says changed, as it says it: nothing is refused for this
    /// replica's allocations (the store's word is final), but an object that is not valid is
    /// not served (and reported). The local copy follows; watchers get the changes.
    func adopt(_ batch: StoreBatch) -> [String] {
        let revision = UInt64(batch.revision)
        let verdicts = validatedOutsideTheLock(batch)
        return state.withLock { (state: inout State) in
            var adoption = Adoption()
            if batch.relisted {
                // The whole state: what is held beyond it is gone, leases included.
                var listed = Set<ObjectKey>()
                var leased = Set<String>()
                for change in batch.changes {
                    switch change {
                    case .put(let object): listed.insert(object.key)
                    case .nodeLease(let node, true, _): leased.insert(node)
                    default: break
                    }
                }
                for key in state.snapshot.objects.keys.sorted() where !listed.contains(key) { adoption.remove(key, at: revision, state: &state) }
                state.snapshot.leasedNodes = leased
            }
            for (index, change) in batch.changes.enumerated() {
                switch change {
                case .put(let object):
                    adoption.put(object, version: batch.relisted ? revision : object.metadata.resourceVersion,
                                 errors: verdicts?[index], state: &state)
                case .delete(let key, let version):
                    adoption.remove(key, at: UInt64(version), state: &state)
                case .nodeLease(let node, let held, _):
                    if held { state.snapshot.leasedNodes.insert(node) } else { state.snapshot.leasedNodes.remove(node) }
                }
            }
            // Node readiness is looked at again only when a node or a lease changed: a scan of
            // every node for each batch of service changes would be work for nothing.
            let touchesNodes = batch.relisted || batch.changes.contains { change in
                switch change {
                case .nodeLease: true
                case .put(let object): object.kind == .node
                case .delete(let key, _): key.kind == .node
                }
            }
            adoption.finish(at: revision, nodesChanged: touchesNodes, state: &state, storage: storage)
            return adoption.problems
        }
    }

    /// What installing the store's changes has done so far: the changes for watchers, the
    /// objects for the local copy, the problems to tell.
    struct Adoption {
        var events: [WatchEvent] = []
        var stored: [RegistryObject] = []
        var removed: [ObjectKey] = []
        var problems: [String] = []

        /// Installs `object` at `version` unless that version is held already; an object that
        /// is not valid (`errors`, or validated here when nil) is taken out instead.
        mutating func put(_ object: RegistryObject, version: UInt64, errors: [FieldError]?, state: inout State) {
            let existing = state.snapshot.objects[object.key]
            if let existing, existing.metadata.resourceVersion == object.metadata.resourceVersion { return }
            let errors = errors ?? Validation.validate(object)
            guard errors.isEmpty else {
                problems.append("\(object.key) in the store is not served: "
                                + RegistryError.invalid(kind: object.kind, name: object.metadata.name, errors: errors).description)
                remove(object.key, at: version, state: &state)
                return
            }
            if let existing { state.allocations.release(existing) }
            state.allocations.adopt(object, snapshot: state.snapshot)
            events.append(Registry.install(object, replacing: existing, version: version, state: &state))
            stored.append(object)
        }

        mutating func remove(_ key: ObjectKey, at version: UInt64, state: inout State) {
            guard let existing = state.snapshot.objects[key] else { return }
            state.allocations.release(existing)
            var event = Registry.uninstall(existing, version: version, state: &state)
            event.object.metadata.resourceVersion = version
            events.append(event)
            removed.append(key)
        }

        /// Node readiness (when `nodesChanged`), the version, the local copy, then the changes
        /// to watchers (and the history, when `recordingHistory`) and waiters.
        mutating func finish(at revision: UInt64, nodesChanged: Bool, state: inout State, storage: any RegistryStorage,
                             recordingHistory: Bool = true) {
            if nodesChanged { Registry.followNodeLeases(at: revision, state: &state, events: &events) }
            state.snapshot.resourceVersion = max(state.snapshot.resourceVersion, revision)
            do throws(RegistryError) {
                if !stored.isEmpty { try storage.commit(upserts: stored, resourceVersion: state.snapshot.resourceVersion) }
                for key in removed { try storage.commit(upsert: nil, delete: key, resourceVersion: state.snapshot.resourceVersion) }
            } catch {
                problems.append("the local copy of the registry is behind: \(error)")
            }
            for event in events { Registry.publish(event, state: &state, recordingHistory: recordingHistory) }
            let snapshot = state.snapshot
            for (id, waiter) in state.waiters where waiter.isSatisfied(snapshot) {
                state.waiters[id] = nil
                waiter.continuation.resume()
            }
        }
    }

    /// The validation errors of a large batch's new objects (a list: a start or a relist),
    /// checked on every core before the lock is taken instead of one by one under it; for each
    /// change, nil where it was not checked (not a put, or a version already held). Nil for a
    /// batch of a few changes, which the watch brings.
    func validatedOutsideTheLock(_ batch: StoreBatch) -> [[FieldError]?]? {
        guard batch.changes.count >= Self.concurrentValidation else { return nil }
        let held = state.withLock { $0.snapshot.objects }
        return inChunksOnEveryCore(batch.changes, atLeast: Self.concurrentValidation / 2) { changes in
            changes.map { change -> [FieldError]? in
                guard case .put(let object) = change,
                      held[object.key]?.metadata.resourceVersion != object.metadata.resourceVersion else { return nil }
                return Validation.validate(object)
            }
        }
    }

    static let concurrentValidation = 256

    /// After a batch: the nodes whose lease has lapsed (or come back) move their endpoints out
    /// of (or back into) every service, and each such node's change goes to watchers as a
    /// modification of its Node, carrying the services whose endpoints changed.
    static func followNodeLeases(at revision: UInt64, state: inout State, events: inout [WatchEvent]) {
        var unreachable = Set<String>()
        for case .node(let node) in state.snapshot.objects.values
            where node.metadata.annotations[RegistrySnapshot.nodeLeaseAnnotation] != nil
                && !state.snapshot.leasedNodes.contains(node.metadata.name) {
            unreachable.insert(node.metadata.name)
        }
        let moved = unreachable.symmetricDifference(state.snapshot.unreachableNodes)
        guard !moved.isEmpty else { return }
        state.snapshot.unreachableNodes = unreachable
        var changed: [ObjectKey] = []
        for key in state.snapshot.serviceEndpoints.keys.sorted() {
            let endpoints = computeEndpoints(for: key, in: state.snapshot, indexes: state.indexes)
            if endpoints != state.snapshot.serviceEndpoints[key] {
                state.snapshot.serviceEndpoints[key] = endpoints
                changed.append(key)
            }
        }
        var first = true
        for name in moved.sorted() {
            guard let node = state.snapshot.objects[ObjectKey(.node, name: name)] else { continue }
            events.append(WatchEvent(resourceVersion: max(revision, state.snapshot.resourceVersion), change: .modified, object: node,
                                     previous: node, endpointsChanged: first ? changed : []))
            first = false
        }
    }
}

extension Registry.State {
    /// No object and no version installed.
    var holdsNothing: Bool { snapshot.objects.isEmpty && snapshot.resourceVersion == 0 }
}
