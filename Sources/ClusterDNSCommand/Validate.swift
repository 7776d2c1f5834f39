import ArgumentParser
import NetAddress
import ServiceRegistry

/// `clusterdns validate -f FILE|DIR`: checks manifests offline, as `kubectl apply --dry-run`
/// would, including the allocations they ask for (a cluster IP or node port wanted twice).
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check Kubernetes manifests offline and print every error in kubectl's form.",
        discussion: """
            Each -f is a YAML or JSON file (several documents, List objects) or a directory of \
            .yaml, .yml and .json files. Every document is decoded strictly (unknown fields are \
            errors), validated as Kubernetes does, then applied to an empty in-memory registry to \
            check that its addresses and ports can be allocated. Exits 1 if anything is wrong.
            """
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A manifest file or directory (repeatable).")
    var files: [String] = []

    @Option(help: "Service CIDR for the allocation check (repeatable: one IPv4, one IPv6).")
    var serviceCIDR: [String] = ["10.96.0.0/12"]

    @Option(help: "NodePort range for the allocation check.")
    var serviceNodePortRange: String = "30000-32767"

    func run() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one -f FILE|DIR") }
        let configuration = try registryConfiguration(serviceCIDRs: serviceCIDR, nodePortRange: serviceNodePortRange)
        let registry = try Registry(configuration: configuration)
        var failures = 0
        var entries = files.flatMap { Manifest.load(path: $0) }
        // Apply (in dependency order, as `apply` does) to find allocation conflicts; report in file order.
        let decoded = entries.indices.filter { (try? entries[$0].result.get()) != nil }
        let results = registry.apply(contentsOf: decoded.compactMap { try? entries[$0].result.get() })
        for (index, result) in zip(decoded, results) {
            if case .failure(let error) = result {
                let entry = entries[index]
                entries[index].result = .failure(ManifestError(file: entry.file, document: entry.document,
                                                               line: entry.line, column: 1, message: "\(error)"))
            }
        }
        var messages = [String?](repeating: nil, count: entries.count)
        var valid = 0
        var skipped = 0
        for (index, entry) in entries.enumerated() {
            if entry.isUnservedKind, case .failure(let error) = entry.result {
                skipped += 1
                printError("notice: \(error): skipped (not served by this registry)")
                continue
            }
            switch entry.result {
            case .success(let object):
                valid += 1
                messages[index] = "\(object.kind.rawValue.lowercased())/\(object.metadata.name) valid"
                    + (object.kind.isNamespaced ? " (namespace \(object.metadata.namespace))" : "")
            case .failure(let error):
                failures += 1
                printError("error: \(error)")
            }
        }
        for message in messages.compactMap({ $0 }) { print(message) }
        print("\(valid) valid, \(failures) invalid" + (skipped > 0 ? ", \(skipped) skipped" : ""))
        if failures > 0 { throw ExitCode(1) }
    }
}

func registryConfiguration(serviceCIDRs: [String], nodePortRange: String) throws -> RegistryConfiguration {
    let cidrs = try serviceCIDRs.map { text in
        do { return try IPPrefix(parsing: text) } catch { throw ValidationError("--service-cidr: \(error)") }
    }
    let parts = nodePortRange.split(separator: "-")
    guard parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]), low <= high else {
        throw ValidationError("--service-node-port-range \(nodePortRange): expected FIRST-LAST, for instance 30000-32767")
    }
    let configuration = RegistryConfiguration(serviceCIDRs: cidrs, nodePortRange: low...high)
    do { try configuration.validate() } catch { throw ValidationError("\(error)") }
    return configuration
}
