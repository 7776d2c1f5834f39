public import ServiceRegistry

/// A test's shared store that only lists: writes are refused, its watch brings no batch, it
/// holds no claims. A test store conforms and writes what its test scripts (its listing, and
/// whatever else it overrides).
public protocol ListOnlyStore: SharedRegistryStore {}

extension ListOnlyStore {
    public func write(_ write: StoreWrite) async throws(StoreError) -> Int64 { throw .unavailable("\(name) takes no writes") }

    public func follow(from revision: Int64, onError: @escaping @Sendable (StoreError) -> Void) -> AsyncThrowingStream<StoreBatch, any Error> {
        AsyncThrowingStream { _ in }
    }

    public func heldClaims() async throws(StoreError) -> [HeldClaim] { [] }

    public func release(_ held: HeldClaim, owner: ObjectKey?, ownerRevision: Int64) async throws(StoreError) -> Bool { false }

    public func restore(_ claim: AllocationClaim, for owner: ObjectKey, at ownerRevision: Int64) async throws(StoreError) -> Bool { false }
}

/// A store whose list waits until the test opens it: what is done before a replica's first
/// list, and when it comes.
public final class GatedStore: ListOnlyStore {
    public let listing: StoreListing
    let gate: AsyncStream<Void>
    let opener: AsyncStream<Void>.Continuation

    public init(_ listing: StoreListing) {
        self.listing = listing
        (gate, opener) = AsyncStream<Void>.makeStream()
    }

    /// Lets every list waiting (and every later one) through.
    public func open() { opener.finish() }

    public var name: String { "a gated store" }

    public func load(at revision: Int64, kinds: Set<ObjectKind>?) async throws(StoreError) -> StoreListing {
        for await _ in gate {}
        return listing
    }
}
