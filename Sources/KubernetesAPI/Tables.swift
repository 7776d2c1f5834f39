public import ServiceRegistry

/// What a request's `Accept` header asks for: the objects, or kubectl's server-side printing
/// (`application/json;as=Table;v=v1;g=meta.k8s.io`).
enum Representation: Equatable {
    case objects
    /// A meta.k8s.io Table of this version (v1, or v1beta1 for older clients).
    case table(version: String)

    /// The first media range of `accept` that is served; nil when none is (406).
    static func negotiate(_ accept: String?) -> Representation? {
        guard let accept, !accept.isEmpty else { return .objects }
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { String($0.filter { $0 != " " }) }
            guard let type = parts.first else { continue }
            var parameters: [String: String] = [:]
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map(String.init)
                if pair.count == 2 { parameters[pair[0]] = pair[1] }
            }
            guard ["application/json", "application/*", "*/*"].contains(type) else { continue }
            switch parameters["as"] {
            case nil: return .objects
            case "Table" where parameters["g"] == "meta.k8s.io" && ["v1", "v1beta1"].contains(parameters["v"] ?? ""):
                return .table(version: parameters["v"]!)
            default: continue
            }
        }
        return nil
    }
}

/// The columns kubectl prints for each kind, as kube-apiserver's printers fill them, and the
/// Table documents that carry them.
public enum Tables {
    struct Column {
        var name: String
        var type = "string"
        var format = ""
        var description: String
        /// 0: always printed; 1: with `-o wide`.
        var priority = 0
    }

    static let name = Column(name: "Name", format: "name", description: "Name must be unique within a namespace.")
    static let age = Column(name: "Age", description: "CreationTimestamp is a timestamp representing the server time when this object was created.")

    static func columns(_ kind: ObjectKind) -> [Column] {
        switch kind {
        case .service:
            return [name, Column(name: "Type", description: "How the service is exposed."),
                    Column(name: "Cluster-IP", description: "The IP address of the service, allocated by the registry."),
                    Column(name: "External-IP", description: "The addresses the service is reachable at from outside the cluster."),
                    Column(name: "Port(s)", description: "The ports the service exposes (port[:nodePort]/protocol)."), age,
                    Column(name: "Selector", description: "The labels of the pods the service routes to.", priority: 1)]
        case .endpoints:
            return [name, Column(name: "Endpoints", description: "The addresses and ports of the service's endpoints."), age]
        case .endpointSlice:
            return [name, Column(name: "AddressType", description: "The type of address the slice carries."),
                    Column(name: "Ports", description: "The ports of the slice."),
                    Column(name: "Endpoints", description: "The addresses of the slice's endpoints."), age]
        case .pod:
            return [name, Column(name: "Ready", description: "The number of containers ready over the number of containers."),
                    Column(name: "Status", description: "The phase of the pod."),
                    Column(name: "Restarts", type: "string", description: "The number of times the containers restarted."), age,
                    Column(name: "IP", description: "The pod's IP address.", priority: 1),
                    Column(name: "Node", description: "The node the pod is scheduled to.", priority: 1),
                    Column(name: "Nominated Node", description: "The node the scheduler nominated.", priority: 1),
                    Column(name: "Readiness Gates", description: "Conditions the pod's readiness also waits for.", priority: 1)]
        case .node:
            return [name, Column(name: "Status", description: "The node's Ready condition."),
                    Column(name: "Roles", description: "The roles the node's labels give it."), age,
                    Column(name: "Version", description: "The kubelet version the node reports."),
                    Column(name: "Internal-IP", description: "The node's InternalIP address.", priority: 1),
                    Column(name: "External-IP", description: "The node's ExternalIP address.", priority: 1)]
        case .namespace:
            return [name, Column(name: "Status", description: "The phase of the namespace."), age]
        }
    }

    /// The Table a list of `items` is served as, for a program that prints one without a
    /// server (`clusterdns get --state`), as at `now` (seconds since 1970).
    public static func document(_ items: [RegistryObject], kind: ObjectKind, now: Int64) -> JSONValue {
        table(items, kind: kind, version: "v1", listMetadata: .object([]), includeObject: nil, now: now)
    }

    /// `items`, shown as at `now` (seconds since 1970); each row's object as `includeObject`
    /// says (Metadata by default: kubectl reads the namespace and labels from it).
    static func table(_ items: [RegistryObject], kind: ObjectKind, version: String, listMetadata: JSONValue,
                      includeObject: String?, now: Int64) -> JSONValue {
        .object([
            ("kind", .string("Table")), ("apiVersion", .string("meta.k8s.io/\(version)")), ("metadata", listMetadata),
            ("columnDefinitions", .array(columns(kind).map { column in
                .object([("name", .string(column.name)), ("type", .string(column.type)), ("format", .string(column.format)),
                         ("description", .string(column.description)), ("priority", .int(column.priority))])
            })),
            ("rows", .array(items.map { row($0, version: version, includeObject: includeObject, now: now) })),
        ])
    }

    static func row(_ object: RegistryObject, version: String, includeObject: String?, now: Int64) -> JSONValue {
        var members: [(String, JSONValue)] = [("cells", .array(cells(object, now: now)))]
        switch includeObject {
        case "None": break
        case "Object": members.append(("object", object.kubernetesJSON))
        default:
            members.append(("object", .object([
                ("kind", .string("PartialObjectMetadata")), ("apiVersion", .string("meta.k8s.io/\(version)")),
                ("metadata", object.kubernetesJSON["metadata"] ?? .object([])),
            ])))
        }
        return .object(members)
    }

    static func cells(_ object: RegistryObject, now: Int64) -> [JSONValue] {
        let age = JSONValue.string(object.metadata.creationTimestamp.map { humanDuration(seconds: now - $0) } ?? "<unknown>")
        let name = JSONValue.string(object.metadata.name)
        switch object {
        case .service(let service):
            let spec = service.spec
            let clusterIP = spec.type == .externalName ? "<none>" : (spec.clusterIP.isEmpty ? "<none>" : spec.clusterIP)
            var external: String
            switch spec.type {
            case .externalName: external = spec.externalName
            case .loadBalancer:
                let addresses = service.status.loadBalancerIngress + spec.externalIPs
                external = addresses.isEmpty ? "<pending>" : addresses.joined(separator: ",")
            default: external = spec.externalIPs.isEmpty ? "<none>" : spec.externalIPs.joined(separator: ",")
            }
            let ports = spec.ports.map { port in
                port.nodePort > 0 ? "\(port.port):\(port.nodePort)/\(port.protocol.rawValue)" : "\(port.port)/\(port.protocol.rawValue)"
            }
            return [name, .string(spec.type.rawValue), .string(clusterIP), .string(external),
                    .string(ports.isEmpty ? "<none>" : ports.joined(separator: ",")), age, .string(selector(spec.selector ?? [:]))]
        case .endpoints(let endpoints):
            var addresses: [String] = []
            for subset in endpoints.subsets {
                for address in subset.addresses {
                    if subset.ports.isEmpty { addresses.append(address.ip) }
                    for port in subset.ports { addresses.append(hostPort(address.ip, port.port)) }
                }
            }
            return [name, .string(abbreviated(addresses)), age]
        case .endpointSlice(let slice):
            let ports = slice.ports.map { String($0.port) }
            return [name, .string(slice.addressType.rawValue), .string(ports.isEmpty ? "<unset>" : ports.joined(separator: ",")),
                    .string(abbreviated(slice.endpoints.flatMap(\.addresses))), age]
        case .pod(let pod):
            let total = pod.spec.containers.count
            let phase = !pod.status.phase.isEmpty ? pod.status.phase : (pod.status.podIP.isEmpty ? "Pending" : "Running")
            return [name, .string("\(pod.isReady ? total : 0)/\(total)"), .string(phase), .string("0"), age,
                    .string(pod.status.podIP.isEmpty ? "<none>" : pod.status.podIP),
                    .string(pod.spec.nodeName.isEmpty ? "<none>" : pod.spec.nodeName), .string("<none>"), .string("<none>")]
        case .node(let node):
            let roles = node.metadata.labels.keys.compactMap { $0.removingPrefix("node-role.kubernetes.io/") }.sorted()
            func address(_ type: String) -> JSONValue {
                .string(node.addresses.first { $0.type == type }?.address ?? "<none>")
            }
            // No kubelet reports a Ready condition here, so the status is kubectl's Unknown.
            return [name, .string("Unknown"), .string(roles.isEmpty ? "<none>" : roles.joined(separator: ",")), age, .string(""),
                    address("InternalIP"), address("ExternalIP")]
        case .namespace:
            return [name, .string("Active"), age]
        }
    }

    static func selector(_ labels: [String: String]) -> String {
        labels.isEmpty ? "<none>" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    static func hostPort(_ ip: String, _ port: Int) -> String { ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    /// The first three, then how many more (kubectl's endpoints column).
    static func abbreviated(_ items: [String]) -> String {
        if items.isEmpty { return "<none>" }
        if items.count <= 3 { return items.joined(separator: ",") }
        return items.prefix(3).joined(separator: ",") + " + \(items.count - 3) more..."
    }

    /// A duration as kubectl's AGE column writes it: two units at most, coarser as it grows
    /// (`45s`, `3m20s`, `25m`, `5h10m`, `20h`, `3d4h`, `40d`, `2y30d`, `9y`).
    static func humanDuration(seconds: Int64) -> String {
        if seconds < -1 { return "<invalid>" }
        if seconds < 0 { return "0s" }
        if seconds < 120 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 { return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s" }
        if minutes < 180 { return "\(minutes)m" }
        let hours = seconds / 3600
        if hours < 8 { return minutes % 60 == 0 ? "\(hours)h" : "\(hours)h\(minutes % 60)m" }
        if hours < 48 { return "\(hours)h" }
        let days = hours / 24
        if hours < 24 * 8 { return hours % 24 == 0 ? "\(days)d" : "\(days)d\(hours % 24)h" }
        if hours < 24 * 365 * 2 { return "\(days)d" }
        let years = days / 365
        if hours < 24 * 365 * 8 { return days % 365 == 0 ? "\(years)y" : "\(years)y\(days % 365)d" }
        return "\(years)y"
    }
}
