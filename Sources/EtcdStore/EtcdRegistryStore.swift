public import EtcdClient
public import ServiceRegistry

/// The registry's objects in etcd, one key each under `prefix` (`/clusterdns/registry/services/
/// shop/web`), their allocations as claims beside them (`/clusterdns/ranges/serviceips/10.96.0.10`).
/// An object's value is its Codable JSON (uid, creation time and the fields kept unused
/// included); its resourceVersion is the etcd revision that last wrote it, as kube-apiserver
/// makes it. Writes are transactions that compare what they read; every replica follows the
/// prefix with one watch.
public final class EtcdRegistryStore: SharedRegistryStore {
    public let client: EtcdClient
    public let prefix: String
    /// Told about a value that cannot be read (it is skipped, never fatal): its key and why.
    let onSkipped: @Sendable (String, String) -> Void

    /// `<prefix>/registry/`, under which every object's key lies.
    let objectsPrefix: [UInt8]

    public init(client: EtcdClient, prefix: String = "/clusterdns", onSkipped: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.client = client
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.onSkipped = onSkipped
        objectsPrefix = Array("\(self.prefix)/registry/".utf8)
    }

    /// Where every object of `kind` lives: `<prefix>/registry/<plural>/`.
    func kindPrefix(_ kind: ObjectKind) -> [UInt8] { Array("\(prefix)/registry/\(kind.plural)/".utf8) }

    public func key(for object: ObjectKey) -> [UInt8] {
        kindPrefix(object.kind) + Array("\(object.kind.isNamespaced ? "\(object.namespace)/" : "")\(object.name)".utf8)
    }

    func key(for claim: AllocationClaim) -> [UInt8] { Array("\(prefix)/\(claim.storePath)".utf8) }

    /// Where nodes' leases (their heartbeats) live, as kube-apiserver keeps node leases:
    /// `<prefix>/registry/leases/kube-node-lease/`, then the node's name.
    var leasesPrefix: [UInt8] { Array("\(prefix)/registry/leases/kube-node-lease/".utf8) }

    public func leaseKey(node: String) -> [UInt8] { leasesPrefix + Array(node.utf8) }

    /// The node whose lease `key` is, or nil for any other key.
    func nodeLease(_ key: [UInt8]) -> String? { nodeLease(key, base: leasesPrefix) }

    func nodeLease(_ key: [UInt8], base: [UInt8]) -> String? {
        guard key.count > base.count, key.starts(with: base) else { return nil }
        let name = String(decoding: key[base.count...], as: UTF8.self)
        return name.utf8.contains(UInt8(ascii: "/")) ? nil : name
    }

    /// The object key an etcd key names, or why it names none (read from the key's bytes: a
    /// list reads one per object).
    func objectKey(_ key: [UInt8]) -> Result<ObjectKey, SkipReason> {
        var base: String { "\(prefix)/registry/" }
        guard key.starts(with: objectsPrefix) else { return .failure(SkipReason("not under \(base)")) }
        let parts = key[objectsPrefix.count...].split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard let kind = parts.first.flatMap(ObjectKind.init(plural:)) else {
            return .failure(SkipReason("a key of an unknown kind \"\(parts.first ?? "")\""))
        }
        let expected = kind.isNamespaced ? 3 : 2
        guard parts.count == expected, parts.dropFirst().allSatisfy({ !$0.isEmpty }) else {
            return .failure(SkipReason(kind.isNamespaced ? "expected \(base)\(kind.plural)/NAMESPACE/NAME" : "expected \(base)\(kind.plural)/NAME"))
        }
        return .success(ObjectKey(kind, namespace: kind.isNamespaced ? parts[1] : "", name: parts[expected - 1]))
    }

    struct SkipReason: Error { let text: String; init(_ text: String) { self.text = text } }

    func encode(_ object: RegistryObject) -> [UInt8] {
        var stored = object
        // The revision is etcd's to say, not the value's.
        stored.metadata.resourceVersion = 0
        return (try? stored.storedJSON()) ?? []
    }

    /// The object a stored key-value holds, or nil (told to `onSkipped`) when it cannot be read.
    func decode(_ kv: EtcdKeyValue, reader: StoredJSONReader = StoredJSONReader()) -> RegistryObject? {
        let key: ObjectKey
        switch objectKey(kv.key) {
        case .success(let k): key = k
        case .failure(let reason):
            onSkipped(String(decoding: kv.key, as: UTF8.self), reason.text)
            return nil
        }
        do {
            var object = try kv.value.withUnsafeBytes { try RegistryObject(storedJSON: $0, reader: reader) }
            guard object.key == key else {
                onSkipped(String(decoding: kv.key, as: UTF8.self), "the value is \(object.key), not \(key)")
                return nil
            }
            object.metadata.resourceVersion = UInt64(kv.modRevision)
            return object
        } catch {
            onSkipped(String(decoding: kv.key, as: UTF8.self), "the value does not decode: \(error)")
            return nil
        }
    }

    /// Every object (of `kinds`, or of every kind), read at one revision, `revision` or the
    /// latest (values that cannot be read are skipped and told).
    public func load(at revision: Int64, kinds: Set<ObjectKind>?) async throws(StoreError) -> StoreListing {
        try await listing(at: revision, kinds: kinds, page: nil)
    }

    public func load(at revision: Int64, kinds: Set<ObjectKind>?,
                     page: @escaping @Sendable (_ objects: [RegistryObject], _ revision: Int64) -> Void) async throws(StoreError) -> StoreListing {
        try await listing(at: revision, kinds: kinds, page: page)
    }

    public var name: String { "etcd at \(client.configuration.endpoints.map(\.description).joined(separator: ", "))" }

    /// Every claim under `<prefix>/ranges/`, in pages read at one revision; keys that name no
    /// claim are told to `onSkipped` and left alone.
    public func heldClaims() async throws(StoreError) -> [HeldClaim] {
        let listed: EtcdRange
        do { listed = try await client.list(prefix: Array("\(prefix)/ranges/".utf8), pageSize: Self.pageSize) } catch {
            throw .unavailable(error.description)
        }
        return listed.keyValues.compactMap { kv in
            let path = String(decoding: kv.key.dropFirst(prefix.utf8.count + 1), as: UTF8.self)
            guard let claim = AllocationClaim(storePath: path) else {
                onSkipped(String(decoding: kv.key, as: UTF8.self), "not an allocation claim")
                return nil
            }
            return HeldClaim(claim: claim, owner: String(decoding: kv.value, as: UTF8.self), revision: kv.modRevision)
        }
    }

    public func release(_ held: HeldClaim, owner: ObjectKey?, ownerRevision: Int64) async throws(StoreError) -> Bool {
        let claimKey = key(for: held.claim)
        var compare: [EtcdCompare] = [.modRevision(claimKey, equals: held.revision)]
        if let owner { compare.append(ownerRevision == 0 ? .absent(key(for: owner)) : .modRevision(key(for: owner), equals: ownerRevision)) }
        do {
            return try await client.transaction(if: compare, then: [.delete(claimKey)], else: []).succeeded
        } catch {
            throw .unavailable("\(error)")
        }
    }

    public func restore(_ claim: AllocationClaim, for owner: ObjectKey, at ownerRevision: Int64) async throws(StoreError) -> Bool {
        let claimKey = key(for: claim)
        do {
            return try await client.transaction(if: [.absent(claimKey), .modRevision(key(for: owner), equals: ownerRevision)],
                                                then: [.put(claimKey, Array("\(owner)".utf8))], else: []).succeeded
        } catch {
            throw .unavailable("\(error)")
        }
    }

    /// Makes `write` in one transaction; returns the store's revision after it.
    @discardableResult
    public func write(_ write: StoreWrite) async throws(StoreError) -> Int64 {
        var compare: [EtcdCompare] = []
        var success: [EtcdOperation] = []
        var checked: [(key: [UInt8], check: Check)] = []
        enum Check { case object(ObjectKey, Int64), claim(AllocationClaim) }
        for (object, expected) in write.puts {
            let key = key(for: object.key)
            compare.append(expected == 0 ? .absent(key) : .modRevision(key, equals: expected))
            checked.append((key, .object(object.key, expected)))
            success.append(.put(key, encode(object)))
        }
        for (objectKey, expected) in write.deletes {
            let key = key(for: objectKey)
            compare.append(.modRevision(key, equals: expected))
            checked.append((key, .object(objectKey, expected)))
            success.append(.delete(key))
        }
        let owner = (write.puts.first.map { "\($0.object.key)" } ?? write.deletes.first.map { "\($0.key)" }) ?? ""
        for claim in write.claims {
            let key = key(for: claim)
            compare.append(.absent(key))
            checked.append((key, .claim(claim)))
            success.append(.put(key, Array(owner.utf8)))
        }
        for claim in write.releases { success.append(.delete(key(for: claim))) }
        let result: EtcdTransactionResult
        do {
            result = try await client.transaction(if: compare, then: success, else: checked.map { .get($0.key) })
        } catch {
            throw .unavailable(error.description)
        }
        guard !result.succeeded else { return result.revision }
        // Which comparison failed: each compared key as it is now.
        for ((_, check), read) in zip(checked, result.reads) {
            let current = read.first
            switch check {
            case .object(let key, let expected):
                let actual = current?.modRevision ?? 0
                if actual != expected { throw .conflict(key, expected: expected, actual: actual) }
            case .claim(let claim):
                if let current { throw .taken(claim, owner: String(decoding: current.value, as: UTF8.self)) }
            }
        }
        throw .unavailable("etcd refused the transaction, and no comparison explains why")
    }

    /// Every change after `revision`, in order, for as long as the stream is read. When etcd
    /// has compacted past what the stream needs, it lists again and sends the whole state as
    /// one relisted batch (the reader, having taken every batch before it, takes the
    /// difference), then follows on: nothing is missed. While etcd cannot be reached, it tries again
    /// (`onError` is told) and resumes where it was.
    public func follow(from revision: Int64,
                       onError: @escaping @Sendable (StoreError) -> Void = { _ in }) -> AsyncThrowingStream<StoreBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream<StoreBatch, any Error>.makeStream()
        let task = Task {
            var next = revision + 1
            var delay: Duration = .milliseconds(50)
            while !Task.isCancelled {
                do {
                    for try await batch in client.watch(prefix: objectsPrefix, from: next, announcingStart: true) {
                        delay = .milliseconds(50)
                        if batch.events.isEmpty {
                            // The watch is (again) in place: an empty batch says the store is
                            // reachable, without claiming any revision not yet seen.
                            continuation.yield(StoreBatch(changes: [], revision: next - 1, relisted: false))
                            continue
                        }
                        var changes: [StoreChange] = []
                        for event in batch.events {
                            next = max(next, event.keyValue.modRevision + 1)
                            if let node = nodeLease(event.keyValue.key) {
                                changes.append(.nodeLease(node: node, held: event.kind == .put, revision: event.keyValue.modRevision))
                                continue
                            }
                            switch event.kind {
                            case .put:
                                guard let object = decode(event.keyValue) else { continue }
                                changes.append(.put(object))
                            case .delete:
                                guard case .success(let key) = objectKey(event.keyValue.key) else { continue }
                                changes.append(.delete(key, revision: event.keyValue.modRevision))
                            }
                        }
                        if !changes.isEmpty {
                            continuation.yield(StoreBatch(changes: changes, revision: next - 1, relisted: false))
                        }
                    }
                } catch EtcdError.compacted {
                    do throws(StoreError) {
                        let listing = try await load()
                        next = listing.revision + 1
                        continuation.yield(StoreBatch(listing))
                    } catch {
                        onError(error)
                        try? await Task.sleep(for: delay)
                    }
                } catch let error as EtcdError {
                    onError(.unavailable(error.description))
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(2))
                } catch {
                    break
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Holds `node`'s lease for as long as the task runs: a key under the node leases bound to
    /// an etcd lease of `ttl`, renewed every quarter of it (the kubelet renews its 40 s node
    /// lease every 10 s). When the process stops without a word, etcd drops the key after
    /// `ttl` and every replica sees the node go; on cancellation the lease is revoked at once.
    /// Trouble with etcd goes to `onError`; the lease is taken again when it was lost.
    public func holdNodeLease(_ node: String, ttl: Duration = .seconds(40),
                              onError: @escaping @Sendable (String) -> Void = { _ in }) async {
        let seconds = max(1, ttl.components.seconds)
        let key = leaseKey(node: node)
        var lease: Int64? = nil
        while !Task.isCancelled {
            do throws(EtcdError) {
                if let held = lease {
                    if try await client.renewLease(held) <= 0 { lease = nil; continue }
                } else {
                    let granted = try await client.grantLease(ttl: seconds).id
                    let value = #"{"holderIdentity":"\#(node)","leaseDurationSeconds":\#(seconds)}"#
                    try await client.put(key, Array(value.utf8), lease: granted)
                    lease = granted
                }
            } catch {
                onError("the lease of node \(node) in etcd: \(error)")
                lease = nil
            }
            try? await Task.sleep(for: .seconds(seconds) / 4)
        }
        // Revoked apart from this task, which is cancelled and would cancel the call with it.
        if let lease {
            let client = client
            await Task.detached { try? await client.revokeLease(lease) }.value
        }
    }
}
