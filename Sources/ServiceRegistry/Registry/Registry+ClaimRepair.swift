/// What one pass of `repairClaims()` found and did.
public struct ClaimRepair: Sendable, Equatable {
    /// Claims nothing held (an owner gone, or one that no longer holds the allocation), released.
    public var released: [HeldClaim] = []
    /// Allocations objects hold without a claim (written around the registry), claimed for them.
    public var restored: [Restored] = []
    /// Allocations two objects hold at once: told, left as they are (one of them must change).
    public var conflicts: [String] = []

    public struct Restored: Sendable, Equatable, CustomStringConvertible {
        public var claim: AllocationClaim
        public var owner: ObjectKey
        public var description: String { "\(claim) (claimed for \(owner))" }
    }

    public init() {}
}

extension Registry {
    /// Brings the shared store's allocation claims in line with the objects, as kube-apiserver's
    /// repair controllers do for `ranges/serviceips` and `ranges/servicenodeports`. Claims are
    /// written in the same transaction as their objects, so they drift only when something
    /// goes around that: an object deleted directly in the store, or a pod deleted after its
    /// node (its addresses no longer inside any pod CIDR, so its delete released nothing). A
    /// claim nothing holds blocks its address for good, its own former owner included.
    ///
    /// Every change is conditional on what this replica saw: a claim is released only if
    /// neither it nor its owner has been written since they were read, and restored only if it
    /// is free and its object unchanged. A replica that is behind, or two replicas repairing at
    /// once, therefore change nothing that is rightly held. Without a shared store: nothing to do.
    public func repairClaims() async throws(StoreError) -> ClaimRepair {
        guard let shared else { return ClaimRepair() }
        let held = try await shared.heldClaims()
        let snapshot = snapshot()
        // What each object holds, by the rule its writes used.
        var holders: [AllocationClaim: [RegistryObject]] = [:]
        for object in snapshot.objects.values where object.kind == .service || object.kind == .pod {
            for claim in AllocationClaim.claims(of: object, podCIDRs: snapshot.podCIDRs(ofNode:)) {
                holders[claim, default: []].append(object)
            }
        }
        var report = ClaimRepair()
        for (claim, objects) in holders where objects.count > 1 {
            report.conflicts.append("\(claim) is held by \(objects.map { "\($0.key)" }.sorted().joined(separator: " and "))")
        }
        report.conflicts.sort()
        var claimed: [AllocationClaim: HeldClaim] = [:]
        for entry in held.sorted(by: { $0.claim < $1.claim }) {
            claimed[entry.claim] = entry
            let ownerKey = ObjectKey(parsing: entry.owner)
            let owner = ownerKey.flatMap { snapshot.objects[$0] }
            if let owner, holders[entry.claim]?.contains(where: { $0.key == owner.key }) == true { continue }
            if try await shared.release(entry, owner: ownerKey, ownerRevision: Int64(owner?.metadata.resourceVersion ?? 0)) {
                report.released.append(entry)
                claimed[entry.claim] = nil
            }
        }
        for (claim, objects) in holders.sorted(by: { $0.key < $1.key }) where objects.count == 1 {
            let object = objects[0]
            if let entry = claimed[claim] {
                if entry.owner != "\(object.key)" {
                    report.conflicts.append("\(claim) is held by \(object.key) but claimed for \(entry.owner)")
                }
                continue
            }
            if try await shared.restore(claim, for: object.key, at: Int64(object.metadata.resourceVersion)) {
                report.restored.append(.init(claim: claim, owner: object.key))
            }
        }
        return report
    }
}
