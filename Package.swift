// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// The release daemon's link on Linux (ARCHITECTURE, "The daemon's code in memory"): the
// toolchain's lld; relative relocations packed (RELR, glibc 2.36 or later), so the loader reads
// 0.4 MB of relocations instead of 1.9 MB; the functions a daemon runs first, in the order of
// scripts/clusterdns.order (written by scripts/link-order), and every private helper beside them
// (scripts/private-text.ld), so that the code it runs shares pages instead of pulling in
// 64 KB around each of a few hundred places. Functions get sections of their own, which that
// order needs, only with scripts/build-release; a plain release build links in this order
// what it can.
let releaseLink: [LinkerSetting] = [
    .unsafeFlags([
        "-use-ld=lld",
        "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
        "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/scripts/clusterdns.order",
        "-Xlinker", "--no-warn-symbol-ordering",
        "-Xlinker", "-T", "-Xlinker", "\(Context.packageDirectory)/scripts/private-text.ld",
    ], .when(platforms: [.linux], configuration: .release)),
]

let package = Package(
    name: "ClusterDNS",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "NetAddress", targets: ["NetAddress"]),
        .library(name: "YAML", targets: ["YAML"]),
        .library(name: "DNSWire", targets: ["DNSWire"]),
        .library(name: "ZoneFile", targets: ["ZoneFile"]),
        .library(name: "ServiceRegistry", targets: ["ServiceRegistry"]),
        .library(name: "DNSAuthority", targets: ["DNSAuthority"]),
        .library(name: "KubernetesDNS", targets: ["KubernetesDNS"]),
        .library(name: "DNSResolver", targets: ["DNSResolver"]),
        .library(name: "DNSServer", targets: ["DNSServer"]),
        .library(name: "DispatchSockets", targets: ["DispatchSockets"]),
        .library(name: "ClusterDNS", targets: ["ClusterDNS"]),
        .library(name: "EndpointForwarder", targets: ["EndpointForwarder"]),
        .library(name: "KubernetesAPI", targets: ["KubernetesAPI"]),
        .library(name: "KubernetesAPIServer", targets: ["KubernetesAPIServer"]),
        .library(name: "KubernetesAPIClient", targets: ["KubernetesAPIClient"]),
        .library(name: "EtcdClient", targets: ["EtcdClient"]),
        .library(name: "EtcdStore", targets: ["EtcdStore"]),
        .library(name: "WorkloadProbes", targets: ["WorkloadProbes"]),
        .library(name: "ProbeWire", targets: ["ProbeWire"]),
        .executable(name: "clusterdns", targets: ["ClusterDNSCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.30.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.0.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.0"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CIDN2",
            pkgConfig: "libidn2",
            providers: [.apt(["libidn2-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .target(name: "CShims"),
        .target(name: "YAML", dependencies: ["CYAML"], swiftSettings: strict),
        .target(name: "NetAddress", swiftSettings: strict),
        .target(name: "DispatchSockets", dependencies: [
            "NetAddress", "CShims", .product(name: "HeapModule", package: "swift-collections"),
        ], swiftSettings: strict),
        .target(name: "DNSWire", dependencies: ["NetAddress", "CIDN2"], swiftSettings: strict),
        .target(name: "ZoneFile", dependencies: ["DNSWire", "NetAddress"], swiftSettings: strict),
        .target(
            name: "ServiceRegistry",
            dependencies: [
                "NetAddress", "DNSWire", "CSQLite", "YAML",
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "DNSAuthority",
            dependencies: [
                "DNSWire", "ZoneFile", "NetAddress",
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // The cluster zone as an ordinary authority: the only part of the query engine that
        // knows the registry, so an embedder serving static zones links no SQLite and no YAML.
        .target(
            name: "KubernetesDNS",
            dependencies: [
                "DNSAuthority", "DNSWire", "ServiceRegistry", "NetAddress",
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "DNSResolver",
            dependencies: ["DNSWire", "DispatchSockets", "NetAddress"],
            swiftSettings: strict
        ),
        .target(
            name: "DNSServer",
            dependencies: [
                "DNSAuthority", "DNSResolver", "DNSWire", "DispatchSockets", "NetAddress",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EndpointForwarder",
            dependencies: [
                "ServiceRegistry", "NetAddress", "DispatchSockets", "CShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ClusterDNS",
            dependencies: [
                "DNSServer", "DNSResolver", "DNSAuthority", "KubernetesDNS", "DNSWire", "DispatchSockets", "ServiceRegistry", "NetAddress", "ZoneFile",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The `clusterdns` executable. The directory is not named `clusterdns`: it would differ
        // from `ClusterDNS` only in case, which a case-insensitive file system cannot hold.
        .executableTarget(
            name: "ClusterDNSCommand",
            dependencies: [
                "KubernetesAPI", "KubernetesAPIServer", "KubernetesAPIClient",
                "ZoneFile", "DNSWire", "ServiceRegistry", "NetAddress", "DNSAuthority", "KubernetesDNS", "DNSResolver", "DNSServer", "DispatchSockets", "ClusterDNS",
                "EndpointForwarder", "YAML", "EtcdClient", "EtcdStore", "WorkloadProbes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict,
            linkerSettings: releaseLink
        ),
        // etcd's v3 API over gRPC (grpc-swift-2, swift-protobuf): the messages and clients
        // generated by scripts/generate-etcd-protos and committed, a Swift API over them.
        .target(
            name: "EtcdClient",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ],
            swiftSettings: strict
        ),
        // The registry's objects and allocations in etcd: keys, values, transactions, following.
        .target(name: "EtcdStore", dependencies: ["EtcdClient", "ServiceRegistry"], swiftSettings: strict),
        // A client of that API (or of kube-apiserver) for the commands: kubeconfig, HTTPS on NIO.
        .target(
            name: "KubernetesAPIClient",
            dependencies: [
                "ServiceRegistry", "YAML",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // The registry as a Kubernetes API, free of any HTTP framework: paths, verbs, Status
        // objects, selectors, patches and watches over `Registry` (what the fuzzers link).
        .target(name: "KubernetesAPI", dependencies: ["ServiceRegistry", "YAML"], swiftSettings: strict),
        // That API served over HTTPS (Hummingbird, NIO SSL) with its certificate and kubeconfig;
        // DNS does not link it.
        .target(
            name: "KubernetesAPIServer",
            dependencies: [
                "KubernetesAPI", "ServiceRegistry", "NetAddress", "DispatchSockets",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Readiness and startup probes run as the kubelet runs them (TCP, HTTP(S) on NIO), the
        // results written through the registry as each pod's Ready condition.
        // The bytes of the probes no library reads for us (the gRPC health check over HTTP/2):
        // pure, so that the fuzzers link it without NIO.
        .target(name: "ProbeWire", swiftSettings: strict),
        .target(
            name: "WorkloadProbes",
            dependencies: [
                "ServiceRegistry", "NetAddress", "CShims", "ProbeWire", "DispatchSockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // What the tests share: a seeded generator, waiting for a condition (not a product:
        // nothing else links it).
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .target(name: "TestSupport", dependencies: ["CTestSupport"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"], swiftSettings: strict),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport", "CTestSupport"], swiftSettings: strict),
        .testTarget(name: "DispatchSocketsTests", dependencies: ["DispatchSockets", "NetAddress", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "DNSWireTests",
            dependencies: ["DNSWire", "NetAddress", "TestSupport"],
            exclude: ["Vectors"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ZoneFileTests",
            dependencies: ["ZoneFile", "DNSWire"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DNSAuthorityTests",
            dependencies: ["DNSAuthority", "DNSWire", "NetAddress", "ZoneFile", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KubernetesDNSTests",
            dependencies: ["KubernetesDNS", "DNSAuthority", "DNSWire", "ServiceRegistry", "NetAddress", "ZoneFile", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DNSServerTests",
            dependencies: [
                "DNSServer", "DNSResolver", "DNSAuthority", "KubernetesDNS", "DNSWire", "ServiceRegistry", "NetAddress", "DispatchSockets",
                "TestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ClusterDNSTests",
            dependencies: [
                "ClusterDNS", "DNSWire", "DNSAuthority", "KubernetesDNS", "DNSResolver", "DispatchSockets", "ServiceRegistry", "NetAddress",
                "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EndpointForwarderTests",
            dependencies: [
                "EndpointForwarder", "ServiceRegistry", "NetAddress", "DispatchSockets", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "DNSResolverTests", dependencies: ["DNSResolver", "DNSWire", "DispatchSockets", "NetAddress"], swiftSettings: strict),
        .testTarget(name: "YAMLTests", dependencies: ["YAML"], swiftSettings: strict),
        .testTarget(
            name: "KubernetesAPITests",
            dependencies: ["KubernetesAPI", "ServiceRegistry", "NetAddress", "YAML", "TestSupport", "RegistryTestSupport"],
            swiftSettings: strict
        ),
        // A shared store for tests that only lists (and one whose list waits on the test).
        .target(name: "RegistryTestSupport", dependencies: ["ServiceRegistry"], path: "Tests/RegistryTestSupport", swiftSettings: strict),
        .testTarget(name: "ServiceRegistryTests", dependencies: ["ServiceRegistry", "NetAddress", "TestSupport", "RegistryTestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "KubernetesAPIClientTests", dependencies: ["KubernetesAPIClient"], swiftSettings: strict),
        .testTarget(name: "EtcdClientTests", dependencies: [
            "EtcdClient", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            // A scripted etcd member (a gRPC server of one method) for what a real one cannot
            // be made to do on cue.
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ], swiftSettings: strict),
        .testTarget(
            name: "WorkloadProbesTests",
            dependencies: [
                "WorkloadProbes", "ProbeWire", "ServiceRegistry", "NetAddress", "DispatchSockets", "TestSupport", "RegistryTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "EtcdStoreTests", dependencies: ["EtcdStore", "EtcdClient", "ServiceRegistry", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(
            name: "ClusterDNSToolTests",
            dependencies: [
                "ClusterDNSCommand", "ServiceRegistry", "NetAddress", "DNSResolver", "DNSWire", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Clients"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
