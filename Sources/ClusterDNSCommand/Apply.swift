import ArgumentParser
import FoundationEssentials
import KubernetesAPI
import ServiceRegistry
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by the commands that open a registry.
struct RegistryOptions: ParsableArguments {
    @Option(help: "The registry's state directory (its SQLite database), or `memory` for none.")
    var state: String = "memory"

    @Option(help: "Service CIDR (repeatable: one IPv4, one IPv6).")
    var serviceCIDR: [String] = ["10.96.0.0/12"]

    @Option(help: "NodePort range.")
    var serviceNodePortRange: String = "30000-32767"

    func open() throws -> Registry {
        let configuration = try registryConfiguration(serviceCIDRs: serviceCIDR, nodePortRange: serviceNodePortRange)
        do {
            if state == "memory" { return try Registry(configuration: configuration) }
            return try Registry(configuration: configuration, storage: SQLiteStorage(directory: state))
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// The objects that manifests name, in dependency order (namespaces first), each bad
/// document reported; unserved kinds skipped with a notice.
func manifestObjects(_ files: [String], failures: inout Int) -> [RegistryObject] {
    let objects = files.flatMap { Manifest.load(path: $0) }.compactMap { entry -> RegistryObject? in
        switch entry.result {
        case .success(let object): return object
        case .failure(let error) where error.isUnservedKind:
            printError("notice: \(error): skipped (not served by this registry)")
            return nil
        case .failure(let error):
            printError("error: \(error)")
            failures += 1
            return nil
        }
    }
    return objects.enumerated().sorted { ($0.element.kind, $0.offset) < ($1.element.kind, $1.offset) }.map(\.element)
}

/// `clusterdns apply -f FILE|DIR (--state DIR | --server URL | --kubeconfig FILE)`: creates or
/// updates objects, as kubectl apply.
struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update objects from manifests, in a state directory or on a running server.",
        discussion: "Prints one line per object as kubectl does (created, configured, unchanged); a bad document is reported and the others are still applied. Exits 1 if any document failed."
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A manifest file or directory (repeatable).")
    var files: [String] = []

    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var remote: RemoteOptions

    static let batchSize = 64

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one -f FILE|DIR") }
        try remote.validate(against: registryOptions)
    }

    func run() async throws {
        var failures = 0
        let ordered = manifestObjects(files, failures: &failures)
        if remote.isRemote {
            try await remote.client().withConnection { connection in
                let registry = RemoteRegistry(connection: connection)
                for object in ordered {
                    do {
                        let outcome = try await registry.apply(object)
                        writeLine("\(object.kind.rawValue.lowercased())/\(object.metadata.name) \(outcome.rawValue)")
                    } catch let refusal as RemoteRegistry.Refusal {
                        printError("\(refusal)")
                        failures += 1
                    }
                }
            }
            if failures > 0 { throw ExitCode(1) }
            return
        }
        let registry = try registryOptions.open()
        // In batches: one durable commit (one fsync) per batch, then its lines.
        var start = 0
        while start < ordered.count {
            let batch = Array(ordered[start..<min(start + Self.batchSize, ordered.count)])
            start += batch.count
            for (object, result) in zip(batch, await registry.apply(contentsOf: batch)) {
                switch result {
                case .success(let outcome):
                    // Written unbuffered: a line printed is a change acknowledged (and durable).
                    writeLine("\(object.kind.rawValue.lowercased())/\(object.metadata.name) \(outcome.rawValue)")
                case .failure(let error):
                    printError("error: \(error)")
                    failures += 1
                }
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `clusterdns delete -f FILE|DIR (--state DIR | --server URL | --kubeconfig FILE)`: deletes the
/// objects the manifests name.
struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete the objects named by manifests, from a state directory or a running server.")

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A manifest file or directory (repeatable).")
    var files: [String] = []

    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var remote: RemoteOptions

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one -f FILE|DIR") }
        try remote.validate(against: registryOptions)
    }

    func run() async throws {
        var failures = 0
        // Dependents first: what a namespace holds goes before the namespace.
        let objects = manifestObjects(files, failures: &failures).reversed()
        if remote.isRemote {
            try await remote.client().withConnection { connection in
                let registry = RemoteRegistry(connection: connection)
                for object in objects {
                    do {
                        try await registry.delete(object)
                        writeLine("\(object.kind.rawValue.lowercased()) \"\(object.metadata.name)\" deleted")
                    } catch let refusal as RemoteRegistry.Refusal {
                        printError("\(refusal)")
                        failures += 1
                    }
                }
            }
        } else {
            let registry = try registryOptions.open()
            for object in objects {
                do {
                    try await registry.delete(object.key)
                    writeLine("\(object.kind.rawValue.lowercased()) \"\(object.metadata.name)\" deleted")
                } catch {
                    printError("Error from server (NotFound): \(error)")
                    failures += 1
                }
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `clusterdns get KIND (--state DIR | --server URL | --kubeconfig FILE)`: lists objects with
/// their allocations, in kubectl's columns.
struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the objects of a state directory or a running server, as kubectl get does.")

    @Argument(help: "services, pods, nodes, namespaces, endpointslices or endpoints (or a singular or short name: svc, ep, ...).")
    var kind: String

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "Only this namespace (default: every namespace, with a NAMESPACE column).")
    var namespace: String?

    enum Output: String, ExpressibleByArgument, CaseIterable { case table, wide, json }

    @Option(name: [.customShort("o"), .customLong("output")],
            help: "table (kubectl's columns), wide (and -o wide's), or json: a v1 List of the objects as kube-apiserver writes them (kubectl get -o json).")
    var output: Output = .table

    @OptionGroup var registryOptions: RegistryOptions
    @OptionGroup var remote: RemoteOptions

    func validate() throws {
        try remote.validate(against: registryOptions)
    }

    func run() async throws {
        guard let resource = APIResource.matching(kind) else {
            throw ValidationError("the server doesn't have a resource type \"\(kind)\"")
        }
        let namespaceColumn = namespace == nil && resource.namespaced
        if remote.isRemote {
            let listed: JSONValue
            do {
                listed = try await remote.client().withConnection { connection in
                    try await RemoteRegistry(connection: connection).list(resource, namespace: namespace, table: output != .json)
                }
            } catch let refusal as RemoteRegistry.Refusal {
                printError("\(refusal)")
                throw ExitCode(1)
            }
            if output == .json {
                guard case .array(let items)? = listed["items"] else { throw ValidationError("the server's list has no items") }
                print(Self.list(items, resourceVersion: listed["metadata"]?["resourceVersion"]?.stringValue ?? "").text)
            } else {
                Self.printTable(listed, wide: output == .wide, namespaceColumn: namespaceColumn)
            }
            return
        }
        let snapshot = try registryOptions.open().snapshot()
        let objects = snapshot.listWithDerived(resource.kind, namespace: namespace)
        if output == .json {
            print(Self.list(objects.map(\.kubernetesJSON), resourceVersion: String(snapshot.resourceVersion)).text)
        } else {
            let now = Int64(Date().timeIntervalSince1970)
            Self.printTable(Tables.document(objects, kind: resource.kind, now: now), wide: output == .wide,
                            namespaceColumn: namespaceColumn)
        }
    }

    static func list(_ items: [JSONValue], resourceVersion: String) -> JSONValue {
        .object([
            ("kind", .string("List")), ("apiVersion", .string("v1")),
            ("metadata", .object([("resourceVersion", .string(resourceVersion))])),
            ("items", .array(items)),
        ])
    }

    static func printTable(_ table: JSONValue, wide: Bool, namespaceColumn: Bool) {
        let text = TablePrinter.text(table, wide: wide, namespaceColumn: namespaceColumn)
        if text.isEmpty {
            printError("No resources found")
        } else {
            print(text, terminator: "")
        }
    }
}
