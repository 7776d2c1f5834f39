// swift-tools-version: 6.1
// The benchmarks are a package of their own so that building and testing ClusterDNS never
// builds the benchmark harness. Run from this directory: swift package benchmark
import PackageDescription

let package = Package(
    name: "ClusterDNSBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "ClusterDNS", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "WireBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "DNSWire", package: "ClusterDNS"),
                .product(name: "ZoneFile", package: "ClusterDNS"),
            ],
            path: "Benchmarks/WireBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Not an ordo-one benchmark: it measures latencies across tasks and process memory.
        // swift run -c release RegistryBench MANIFESTS [STATE_DIR]
        .executableTarget(
            name: "RegistryBench",
            dependencies: [.product(name: "ServiceRegistry", package: "ClusterDNS")],
            path: "Benchmarks/RegistryBench"
        ),
        // The Kubernetes API against the Swift API: swift run -c release APIBench PATH/TO/clusterdns
        .executableTarget(
            name: "APIBench",
            dependencies: [
                .product(name: "KubernetesAPI", package: "ClusterDNS"),
                .product(name: "KubernetesAPIClient", package: "ClusterDNS"),
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
            ],
            path: "Benchmarks/APIBench"
        ),
        // The registry shared through etcd: swift run -c release EtcdBench MODE ... (see main.swift)
        .executableTarget(
            name: "EtcdBench",
            dependencies: [
                .product(name: "ClusterDNS", package: "ClusterDNS"),
                .product(name: "EtcdClient", package: "ClusterDNS"),
                .product(name: "EtcdStore", package: "ClusterDNS"),
                .product(name: "DispatchSockets", package: "ClusterDNS"),
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
            ],
            path: "Benchmarks/EtcdBench"
        ),
        .target(name: "CHeap", path: "Benchmarks/CHeap"),
        // swift run -c release ZoneBench STATE_DIR
        .executableTarget(
            name: "ZoneBench",
            dependencies: [
                "CHeap",
                .product(name: "DNSAuthority", package: "ClusterDNS"),
                .product(name: "KubernetesDNS", package: "ClusterDNS"),
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
            ],
            path: "Benchmarks/ZoneBench"
        ),
        // swift run -c release PodIndexBench [PODS] [dual]
        .executableTarget(
            name: "PodIndexBench",
            dependencies: [
                "CHeap",
                .product(name: "KubernetesDNS", package: "ClusterDNS"),
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
            ],
            path: "Benchmarks/PodIndexBench"
        ),
    ],
    swiftLanguageModes: [.v6]
)
