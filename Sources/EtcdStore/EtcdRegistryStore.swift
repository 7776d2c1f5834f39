public import EtcdClient
import FoundationEssentials
public import ServiceRegistry

/// Something a replica claims in etcd so that no other replica hands it out: a ClusterIP, a
/// node port, a load-balancer IP (kube-apiserver keeps `ranges/serviceips` and
/// `ranges/servicenodeports` for the same reason). The claim's value names its owner.
public enum AllocationClaim: Hashable, Sendable, Comparable, CustomStringConvertible {
    case clusterIP(String)
    case nodePort(Int)
    case loadBalancerIP(String)

    var path: String {
        switch self {
        case .clusterIP(let ip): "ranges/serviceips/\(ip)"
        case .nodePort(let port): "ranges/servicenodeports/\(port)"
        case .loadBalancerIP(let ip): "ranges/loadbalancerips/\(ip)"
        }
    }

    public var description: String {
        switch self {
        case .clusterIP(let ip): "ClusterIP \(ip)"
        case .nodePort(let port): "node port \(port)"
        case .loadBalancerIP(let ip): "load-balancer IP \(ip)"
        }
    }

    /// Everything `object` holds that must be unique across the cluster.
    public static func claims(of object: RegistryObject?) -> Set<AllocationClaim> {
        guard case .service(let service)? = object else { return [] }
        var claims = Set<AllocationClaim>()
        for ip in [service.spec.clusterIP] + service.spec.clusterIPs where ip != "None" && !ip.isEmpty { claims.insert(.clusterIP(ip)) }
        for port in service.spec.ports where port.nodePort != 0 { claims.insert(.nodePort(port.nodePort)) }
        for ip in service.status.loadBalancerIngress where !ip.isEmpty { claims.insert(.loadBalancerIP(ip)) }
        return claims
    }
}

/// One change to write: objects put (each only if it is still at the revision it was read at;
/// 0 for one that must not exist yet), objects deleted (likewise), allocations claimed (only if
/// nobody holds them) and released. All of it happens, or none.
public struct StoreWrite: Sendable {
    public var puts: [(object: RegistryObject, expected: Int64)] = []
    public var deletes: [(key: ObjectKey, expected: Int64)] = []
    public var claims: [AllocationClaim] = []
    public var releases: [AllocationClaim] = []

    public init() {}

    /// `object` replacing `previous` (nil: created), with the claims that change between them.
    public static func replacing(_ previous: RegistryObject?, with object: RegistryObject) -> StoreWrite {
        var write = StoreWrite()
        write.puts = [(object, Int64(previous?.metadata.resourceVersion ?? 0))]
        let before = AllocationClaim.claims(of: previous)
        let after = AllocationClaim.claims(of: object)
        write.claims = after.subtracting(before).sorted()
        write.releases = before.subtracting(after).sorted()
        return write
    }

    /// `object` (as last read) deleted, with everything it claimed.
    public static func deleting(_ object: RegistryObject) -> StoreWrite {
        var write = StoreWrite()
        write.deletes = [(object.key, Int64(object.metadata.resourceVersion))]
        write.releases = AllocationClaim.claims(of: object).sorted()
        return write
    }
}

/// Why a write was not made.
public enum StoreWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The object is not at the revision the write expected (0: it exists, or it does not).
    case conflict(ObjectKey, expected: Int64, actual: Int64)
    /// Another object holds the allocation.
    case taken(AllocationClaim, owner: String)
    case etcd(EtcdError)

    public var description: String {
        switch self {
        case .conflict(let key, let expected, let actual):
            expected == 0 ? "\(key) already exists" : actual == 0 ? "\(key) no longer exists"
                : "\(key) has been modified (revision \(actual), not \(expected))"
        case .taken(let claim, let owner): "\(claim) is already allocated to \(owner)"
        case .etcd(let error): error.description
        }
    }
}

/// A change seen in etcd: an object as it now is (its resourceVersion the revision that wrote
/// it), or an object gone.
public enum StoreChange: Sendable, Equatable {
    case put(RegistryObject)
    case delete(ObjectKey, revision: Int64)
}

/// The changes up to a revision of the store, in order.
public struct StoreBatch: Sendable {
    public var changes: [StoreChange]
    public var revision: Int64
    /// Made by listing again after a compaction, not from the watch: the changes are the
    /// difference between what was known and the list.
    public var relisted: Bool
}

/// The registry's objects in etcd, one key each under `prefix` (`/clusterdns/registry/services/
/// shop/web`), their allocations as claims beside them (`/clusterdns/ranges/serviceips/10.96.0.10`).
/// An object's value is its Codable JSON (uid, creation time and the fields kept unused
/// included); its resourceVersion is the etcd revision that last wrote it, as kube-apiserver
/// makes it. Writes are transactions that compare what they read; every replica follows the
/// prefix with one watch.
public final class EtcdRegistryStore: Sendable {
    public let client: EtcdClient
    public let prefix: String
    /// Told about a value that cannot be read (it is skipped, never fatal): its key and why.
    let onSkipped: @Sendable (String, String) -> Void

    public init(client: EtcdClient, prefix: String = "/clusterdns", onSkipped: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.client = client
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.onSkipped = onSkipped
    }

    var objectsPrefix: [UInt8] { Array("\(prefix)/registry/".utf8) }

    public func key(for object: ObjectKey) -> [UInt8] {
        let namespace = object.kind.isNamespaced ? "\(object.namespace)/" : ""
        return Array("\(prefix)/registry/\(object.kind.plural)/\(namespace)\(object.name)".utf8)
    }

    func key(for claim: AllocationClaim) -> [UInt8] { Array("\(prefix)/\(claim.path)".utf8) }

    /// The object key an etcd key names, or why it names none.
    func objectKey(_ key: [UInt8]) -> Result<ObjectKey, SkipReason> {
        let text = String(decoding: key, as: UTF8.self)
        let base = "\(prefix)/registry/"
        guard text.hasPrefix(base) else { return .failure(SkipReason("not under \(base)")) }
        let parts = text.dropFirst(base.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let kind = ObjectKind.allCases.first(where: { $0.plural == parts.first }) else {
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
        return (try? Array(JSONEncoder().encode(stored))) ?? []
    }

    /// The object a stored key-value holds, or nil (told to `onSkipped`) when it cannot be read.
    func decode(_ kv: EtcdKeyValue) -> RegistryObject? {
        let key: ObjectKey
        switch objectKey(kv.key) {
        case .success(let k): key = k
        case .failure(let reason):
            onSkipped(String(decoding: kv.key, as: UTF8.self), reason.text)
            return nil
        }
        do {
            var object = try JSONDecoder().decode(RegistryObject.self, from: Data(kv.value))
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

    /// Every object, read at one revision (values that cannot be read are skipped and told).
    public func load() async throws(EtcdError) -> (objects: [RegistryObject], revision: Int64) {
        let listed = try await client.list(prefix: objectsPrefix)
        return (listed.keyValues.compactMap(decode), listed.revision)
    }

    /// Makes `write` in one transaction; returns the store's revision after it.
    @discardableResult
    public func write(_ write: StoreWrite) async throws(StoreWriteError) -> Int64 {
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
            throw .etcd(error)
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
        throw .etcd(.refused("the transaction failed, and no comparison explains why"))
    }

    /// Every change after `revision`, in order, for as long as the stream is read. When etcd
    /// has compacted past what the stream needs, it lists again and sends the difference from
    /// `known` (each object's last revision, as the caller holds it) as one relisted batch, then
    /// follows on: nothing is sent twice or missed. While etcd cannot be reached, it tries again
    /// (`onError` is told) and resumes where it was.
    public func follow(from revision: Int64, known: [ObjectKey: Int64],
                       onError: @escaping @Sendable (EtcdError) -> Void = { _ in }) -> AsyncThrowingStream<StoreBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream<StoreBatch, any Error>.makeStream()
        let task = Task {
            var known = known
            var next = revision + 1
            var delay: Duration = .milliseconds(50)
            while !Task.isCancelled {
                do {
                    for try await batch in client.watch(prefix: objectsPrefix, from: next) {
                        delay = .milliseconds(50)
                        var changes: [StoreChange] = []
                        for event in batch.events {
                            next = max(next, event.keyValue.modRevision + 1)
                            switch event.kind {
                            case .put:
                                guard let object = decode(event.keyValue) else { continue }
                                known[object.key] = event.keyValue.modRevision
                                changes.append(.put(object))
                            case .delete:
                                guard case .success(let key) = objectKey(event.keyValue.key) else { continue }
                                known[key] = nil
                                changes.append(.delete(key, revision: event.keyValue.modRevision))
                            }
                        }
                        if !changes.isEmpty {
                            continuation.yield(StoreBatch(changes: changes, revision: next - 1, relisted: false))
                        }
                    }
                } catch EtcdError.compacted {
                    do throws(EtcdError) {
                        let (objects, listed) = try await load()
                        var changes: [StoreChange] = []
                        var now: [ObjectKey: Int64] = [:]
                        for object in objects {
                            let version = Int64(object.metadata.resourceVersion)
                            now[object.key] = version
                            if known[object.key] != version { changes.append(.put(object)) }
                        }
                        for key in known.keys.sorted() where now[key] == nil { changes.append(.delete(key, revision: listed)) }
                        known = now
                        next = listed + 1
                        continuation.yield(StoreBatch(changes: changes, revision: listed, relisted: true))
                    } catch {
                        onError(error)
                        try? await Task.sleep(for: delay)
                    }
                } catch let error as EtcdError {
                    onError(error)
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
}
