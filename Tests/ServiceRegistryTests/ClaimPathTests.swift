import ServiceRegistry
import Testing

/// What a shared store's claim keys and owners say, read back: every claim's path parses to
/// itself, and anything else (written into the store by hand, or by another program) to nil.
struct ClaimPathTests {
    @Test(arguments: [AllocationClaim.clusterIP("10.96.0.10"), .clusterIP("fd00::a"), .nodePort(30080), .nodePort(1), .nodePort(65535),
                      .loadBalancerIP("192.0.2.7"), .podIP("10.244.1.7")])
    func aClaimsPathNamesIt(_ claim: AllocationClaim) {
        #expect(AllocationClaim(storePath: claim.storePath) == claim)
    }

    @Test(arguments: ["", "ranges", "ranges/", "ranges/serviceips", "ranges/serviceips/", "ranges/serviceips/10.0.0.1/extra",
                      "registry/services/default/web", "/ranges/serviceips/10.0.0.1", "ranges/unknown/10.0.0.1",
                      "ranges/servicenodeports/0", "ranges/servicenodeports/65536", "ranges/servicenodeports/-80",
                      "ranges/servicenodeports/+80", "ranges/servicenodeports/8O", "ranges/servicenodeports/٣٠٠٨٠",
                      "ranges/servicenodeports/99999999999999999999999"])
    func anythingElseIsNoClaim(_ path: String) {
        #expect(AllocationClaim(storePath: path) == nil)
    }

    @Test(arguments: [ObjectKey(.service, namespace: "shop", name: "web"), ObjectKey(.pod, namespace: "default", name: "worker-0"),
                      ObjectKey(.node, name: "node-a"), ObjectKey(.namespace, name: "shop")])
    func anOwnerNamesItsObject(_ key: ObjectKey) {
        #expect(ObjectKey(parsing: key.description) == key)
    }

    @Test(arguments: ["", "Service", "Service ", "Service shop", "Service shop/", "Service /web", "Service shop/web/x",
                      "Node a/b", "Node ", "Gadget shop/web", "service shop/web", "Serviceshop/web"])
    func anyOtherOwnerIsNoObject(_ text: String) {
        #expect(ObjectKey(parsing: text) == nil)
    }
}
