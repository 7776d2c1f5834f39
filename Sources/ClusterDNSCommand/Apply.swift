import ArgumentParser
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

/// `clusterdns apply -f FILE|DIR --state DIR`: creates or updates objects, as kubectl apply.
struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update objects from manifests in a registry's state directory.",
        discussion: "Prints one line per object as kubectl does (created, configured, unchanged); a bad document is reported and the others are still applied. Exits 1 if any document failed."
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A manifest file or directory (repeatable).")
    var files: [String] = []

    @OptionGroup var registryOptions: RegistryOptions

    static let batchSize = 64

    func run() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one -f FILE|DIR") }
        let registry = try registryOptions.open()
        let entries = files.flatMap { Manifest.load(path: $0) }
        var failures = 0
        let objects = entries.compactMap { entry -> RegistryObject? in
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
        // In dependency order, in batches: one durable commit (one fsync) per batch, then its lines.
        let ordered = objects.enumerated().sorted { ($0.element.kind, $0.offset) < ($1.element.kind, $1.offset) }.map(\.element)
        var start = 0
        while start < ordered.count {
            let batch = Array(ordered[start..<min(start + Self.batchSize, ordered.count)])
            start += batch.count
            for (object, result) in zip(batch, registry.apply(contentsOf: batch)) {
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

/// `clusterdns delete -f FILE|DIR --state DIR`: deletes the objects the manifests name.
struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete the objects named by manifests from a registry's state directory.")

    @Option(name: [.customShort("f"), .customLong("filename")], help: "A manifest file or directory (repeatable).")
    var files: [String] = []

    @OptionGroup var registryOptions: RegistryOptions

    func run() throws {
        let registry = try registryOptions.open()
        var failures = 0
        for entry in files.flatMap({ Manifest.load(path: $0) }) {
            guard case .success(let object) = entry.result else {
                if case .failure(let error) = entry.result {
                    if error.isUnservedKind {
                        printError("notice: \(error): skipped (not served by this registry)")
                        continue
                    }
                    printError("error: \(error)")
                }
                failures += 1
                continue
            }
            do {
                try registry.delete(object.key)
                print("\(object.kind.rawValue.lowercased())/\(object.metadata.name) deleted")
            } catch {
                printError("Error from server (NotFound): \(error)")
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// `clusterdns get KIND --state DIR`: lists objects with their allocations.
struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the objects of a registry's state directory.")

    @Argument(help: "services, pods, nodes, namespaces, endpointslices or endpoints.")
    var kind: String

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "Only this namespace.")
    var namespace: String?

    enum Output: String, ExpressibleByArgument, CaseIterable { case table, json }

    @Option(name: [.customShort("o"), .customLong("output")],
            help: "table, or json: a v1 List of the objects as kube-apiserver writes them (kubectl get -o json).")
    var output: Output = .table

    @OptionGroup var registryOptions: RegistryOptions

    func run() throws {
        let kinds: [String: ObjectKind] = [
            "services": .service, "service": .service, "svc": .service, "pods": .pod, "pod": .pod,
            "nodes": .node, "node": .node, "namespaces": .namespace, "namespace": .namespace, "ns": .namespace,
            "endpointslices": .endpointSlice, "endpointslice": .endpointSlice, "endpoints": .endpoints, "ep": .endpoints,
        ]
        guard let objectKind = kinds[kind.lowercased()] else {
            throw ValidationError("the server doesn't have a resource type \"\(kind)\"")
        }
        let snapshot = try registryOptions.open().snapshot()
        let objects = snapshot.list(objectKind, namespace: namespace)
        if output == .json {
            let list = JSONValue.object([
                ("kind", .string("List")), ("apiVersion", .string("v1")),
                ("metadata", .object([("resourceVersion", .string(String(snapshot.resourceVersion)))])),
                ("items", .array(objects.map(\.kubernetesJSON))),
            ])
            print(list.text)
            return
        }
        switch objectKind {
        case .service:
            print(["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "ENDPOINTS"].joined(separator: "\t"))
            for case .service(let s) in objects {
                let ports = s.spec.ports.map { p in
                    (p.nodePort != 0 ? "\(p.port):\(p.nodePort)" : "\(p.port)") + "/\(p.protocol.rawValue)"
                }.joined(separator: ",")
                let external = s.spec.type == .externalName ? s.spec.externalName
                    : (s.status.loadBalancerIngress + s.spec.externalIPs).joined(separator: ",")
                let ready = snapshot.endpoints(of: s.key)?.readyEndpoints.count ?? 0
                print([s.metadata.namespace, s.metadata.name, s.spec.type.rawValue,
                       s.spec.clusterIPs.isEmpty ? "<none>" : s.spec.clusterIPs.joined(separator: ","),
                       external.isEmpty ? (s.spec.type == .loadBalancer ? "<pending>" : "<none>") : external,
                       ports.isEmpty ? "<none>" : ports, String(ready)].joined(separator: "\t"))
            }
        default:
            print(["NAMESPACE", "NAME", "RESOURCE-VERSION"].joined(separator: "\t"))
            for object in objects {
                print([object.metadata.namespace, object.metadata.name, String(object.metadata.resourceVersion)].joined(separator: "\t"))
            }
        }
    }
}
