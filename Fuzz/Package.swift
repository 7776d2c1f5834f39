// swift-tools-version: 6.1
// libFuzzer targets for every parser of outside input. `./run` builds them and runs each for a
// bounded time (CI does, on every change); by hand, from this directory:
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   mkdir -p corpus/decoders && .build/release/FuzzDecoders -max_total_time=300 corpus/decoders seeds/decoders
// A crash found here becomes a named vector in the tests of the module it crashed
// (Tests/DNSWireTests/HostileVectorTests.swift for the decoders).
import PackageDescription

let package = Package(
    name: "ClusterDNSFuzz",
    dependencies: [.package(name: "ClusterDNS", path: "..")],
    targets: [
        .target(name: "FuzzDriver"),
        // DNS messages, the query fast path's parse, zone files, resolv.conf.
        .executableTarget(
            name: "FuzzDecoders",
            dependencies: [
                "FuzzDriver",
                .product(name: "DNSResolver", package: "ClusterDNS"),
                .product(name: "DNSWire", package: "ClusterDNS"),
                .product(name: "ZoneFile", package: "ClusterDNS"),
            ]
        ),
        // YAML and JSON manifests, through the YAML reader and the strict object decoding; the
        // same bytes as a kubeconfig.
        .executableTarget(
            name: "FuzzManifests",
            dependencies: [
                "FuzzDriver",
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
                .product(name: "KubernetesAPIClient", package: "ClusterDNS"),
            ]
        ),
        // Any bytes as a query to a responder over a cluster and a zone file: never a trap, and
        // the fast path's reply always the general path's; from a pod with autopath, every walk
        // ends in a reply that decodes, whatever the upstream says to each step.
        .executableTarget(
            name: "FuzzResponder",
            dependencies: [
                "FuzzDriver",
                .product(name: "DNSAuthority", package: "ClusterDNS"),
                .product(name: "KubernetesDNS", package: "ClusterDNS"),
                .product(name: "NetAddress", package: "ClusterDNS"),
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
                .product(name: "ZoneFile", package: "ClusterDNS"),
            ]
        ),
        // The Kubernetes API: requests through the handler (paths, queries, bodies, media
        // types), patches, selectors and token files.
        .executableTarget(
            name: "FuzzAPI",
            dependencies: [
                "FuzzDriver",
                .product(name: "KubernetesAPI", package: "ClusterDNS"),
                .product(name: "ServiceRegistry", package: "ClusterDNS"),
                .product(name: "YAML", package: "ClusterDNS"),
            ]
        ),
        // A gRPC server's side of the health probe, read whole and cut into pieces.
        .executableTarget(
            name: "FuzzProbes",
            dependencies: [
                "FuzzDriver",
                .product(name: "ProbeWire", package: "ClusterDNS"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
