#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoundationEssentials

@main
struct ClusterDNSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clusterdns",
        abstract: "An embeddable DNS and service-discovery server for Kubernetes-style clusters.",
        subcommands: [Serve.self, CheckZone.self, Validate.self, Apply.self, Delete.self, Get.self, Plan.self],
        defaultSubcommand: Serve.self
    )

    static func main() async {
        limitMallocArenas()
        raiseDescriptorLimit()
        await main(nil)
    }
}

/// One malloc arena for the whole process, unless the environment chooses (MALLOC_ARENA_MAX, or
/// GLIBC_TUNABLES). glibc gives threads arenas of their own (up to eight per core), and the
/// registry is loaded on one thread while the zone is compiled on another: each arena keeps
/// its own freed memory resident, which `malloc_trim` gives back only in part (at 10,000
/// services: 86 MB resident against 71 MB with one arena). Queries on the fast path do not
/// allocate, so the arena's lock is not on their way. Set before any thread but the main one
/// has allocated; a process that embeds ClusterDNS keeps its own policy.
func limitMallocArenas() {
    #if os(Linux)
    let environment = ProcessInfo.processInfo.environment
    guard (environment["MALLOC_ARENA_MAX"] ?? "").isEmpty, (environment["GLIBC_TUNABLES"] ?? "").firstRange(of: "arena_max") == nil else { return }
    _ = glibcMallopt(-8 /* M_ARENA_MAX */, 1)
    #endif
}

/// The soft limit on open descriptors raised to the hard one: every relayed connection takes
/// two and every DNS TCP connection one, and the usual soft default (1,024) would refuse
/// connections long before the machine has to (haproxy and nginx raise theirs likewise).
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

#if os(Linux)
/// glibc's `mallopt` (in <malloc.h>, which the Glibc module does not export).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// The source this program's own log lines name: the program, as users know it, not the module
/// that holds it (`ClusterDNSCommand`, a name chosen for file systems that ignore case).
let logSource = "clusterdns"
