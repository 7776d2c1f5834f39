// The pod index's memory for BENCHMARKS.md (issue 17, autopath): the heap a cluster zone holds
// with `--pods verified` (pods indexed by address) against `--pods insecure` (no index), over
// the same registry of pods with one IPv4 and, with `dual`, one IPv6 address each.
//
//   swift run -c release PodIndexBench [PODS] [dual]      (default 100000)
import CHeap
import Foundation
import KubernetesDNS
import ServiceRegistry

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 100_000 : 100_000
let dual = CommandLine.arguments.contains("dual")
func heap() -> Int {
    _ = cheap_trim()
    return Int(cheap_in_use())
}

let registry = try Registry()
var objects: [RegistryObject] = [.namespace(Namespace(metadata: ObjectMeta(name: "load")))]
for i in 0..<count {
    var pod = Pod(metadata: ObjectMeta(name: String(format: "web-%08x-%05d", UInt32(truncatingIfNeeded: i &* 2_654_435_761), i), namespace: "load"))
    pod.spec.containers = [Pod.Container(name: "c")]
    pod.status.podIP = "10.\(i >> 16).\((i >> 8) & 255).\(i & 255)"
    pod.status.podIPs = [pod.status.podIP] + (dual ? [String(format: "fd00::%x:%x", i >> 16, i & 0xffff)] : [])
    pod.status.phase = "Running"
    objects.append(.pod(pod))
}
for result in await registry.apply(contentsOf: objects) { _ = try result.get() }
registry.markLoaded()
objects = []
let snapshot = registry.snapshot()
let start = heap()
let insecure = ClusterAuthority(configuration: ClusterConfiguration(pods: .insecure), snapshot: snapshot)
let withoutIndex = heap() - start
let verified = ClusterAuthority(configuration: ClusterConfiguration(pods: .verified), snapshot: snapshot)
let withIndex = heap() - start - withoutIndex
print("\(count) pods\(dual ? " (dual-stack)" : ""): zone heap \(withoutIndex / 1024) KiB with --pods insecure, \(withIndex / 1024) KiB with --pods verified")
print(String(format: "pod index: %.1f bytes per pod (%.2f MB)", Double(withIndex - withoutIndex) / Double(count),
             Double(withIndex - withoutIndex) / 1_048_576))
withExtendedLifetime((insecure, verified)) {}
