// swift-tools-version: 6.1
// libFuzzer targets for the decoders. Build and run (from this directory):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//   mkdir -p corpus && .build/release/FuzzDecoders -max_total_time=300 corpus/ seeds/
// A crash found here becomes a named vector in Tests/DNSWireTests/HostileVectorTests.swift.
import PackageDescription

let package = Package(
    name: "ClusterDNSFuzz",
    dependencies: [.package(name: "ClusterDNS", path: "..")],
    targets: [
        .executableTarget(
            name: "FuzzDecoders",
            dependencies: [
                .product(name: "DNSWire", package: "ClusterDNS"),
                .product(name: "ZoneFile", package: "ClusterDNS"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
