public import DNSWire
import NetAddress
public import ServiceRegistry

/// The cluster zone compiled from one registry snapshot: every name that exists, with its
/// records, built once per change so that a query is one hash lookup (the Kubernetes DNS
/// specification, schema 1.1.0, as CoreDNS's kubernetes plugin answers it). Immutable.
public struct ClusterZone: Authority {
    // The builder below compiles a snapshot into `nodes` and `pointers`.
    public let configuration: ClusterConfiguration
    public var origin: DomainName { configuration.domain }
    /// False until the registry's first load completes: would-be NXDOMAINs are SERVFAIL.
    public let isLoaded: Bool
    let nodes: [DomainName: Node]
    /// Reverse names (PTR) of cluster IPs and endpoint IPs.
    let pointers: [DomainName: [ResourceRecord]]
    /// Pod IPs per namespace (for `--pods verified`).
    let podIPs: [String: Set<IPAddress>]
    let soa: ResourceRecord
    let podZone: DomainName

    /// The records of one name. A node without records is an empty non-terminal (NODATA).
    struct Node: Sendable {
        var records: [RecordType: [ResourceRecord]] = [:]
        /// Address glue for SRV answers.
        var glue: [RecordType: [ResourceRecord]] = [:]
    }

    public static let maxCNAMEChain = 8

    public init(snapshot: RegistrySnapshot, configuration: ClusterConfiguration) {
        var builder = Builder(configuration: configuration)
        builder.build(snapshot)
        self.configuration = configuration
        isLoaded = snapshot.isLoaded
        nodes = builder.nodes
        pointers = builder.pointers
        podIPs = builder.podIPs
        soa = builder.soa
        podZone = builder.podZone
    }

    public func lookup(_ question: Question) -> Lookup {
        var answer: [ResourceRecord] = []
        var name = question.name
        var seen = Set<DomainName>()
        while true {
            guard let node = node(for: name) else {
                return isLoaded ? .nameError(soa: soa, answer: answer) : .serverFailure
            }
            if question.type != .cname, let cname = node.records[.cname]?.first, case .cname(let target) = cname.data {
                answer.append(cname)
                // Chase the target while it stays in this zone, loop-safe and bounded.
                guard target.isSubdomain(of: origin), seen.insert(name).inserted,
                      seen.count < Self.maxCNAMEChain, !seen.contains(target) else {
                    return .answer(answer, additional: [])
                }
                name = target
                continue
            }
            let records = question.type == .any
                ? node.records.keys.sorted().flatMap { node.records[$0]! }
                : node.records[question.type] ?? []
            if records.isEmpty {
                return answer.isEmpty ? .noData(soa: soa) : .answer(answer, additional: [])
            }
            var additional: [ResourceRecord] = []
            if question.type == .srv {
                additional = (node.glue[.a] ?? []) + (node.glue[.aaaa] ?? [])
            } else if question.type == .ns, name == origin {
                additional = (nodes[nsName]?.records[.a] ?? []) + (nodes[nsName]?.records[.aaaa] ?? [])
            }
            return .answer(answer + records, additional: additional)
        }
    }

    var nsName: DomainName { (try? DomainName("ns.dns").resolved(against: origin)) ?? origin }

    /// The node of a name, including the pod names synthesised in `insecure` mode.
    func node(for name: DomainName) -> Node? {
        if let node = nodes[name] { return node }
        // a-b-c-d.<ns>.pod.<zone>
        guard configuration.pods != .disabled, name.labelCount == podZone.labelCount + 2,
              name.isSubdomain(of: podZone), let first = name.labels.first else { return nil }
        guard let ip = IPAddress.fromDashed(String(decoding: first, as: UTF8.self)) else { return nil }
        let namespace = String(decoding: name.labels[1], as: UTF8.self).lowercased()
        switch configuration.pods {
        case .verified:
            guard podIPs[namespace]?.contains(ip) == true else { return nil }
        case .insecure:
            break
        case .disabled:
            return nil
        }
        var node = Node()
        let record = ResourceRecord(name: name, ttl: configuration.ttl, data: addressData(ip))
        node.records[record.type] = [record]
        return node
    }

    /// PTR records for a reverse name; `.nameError` for an unknown address inside the service
    /// CIDRs; nil when the name is not ours to answer.
    public func reverseLookup(_ question: Question) -> Lookup? {
        if let records = pointers[question.name] {
            return question.type == .ptr || question.type == .any ? .answer(records, additional: []) : .noData(soa: soa)
        }
        guard let ip = IPAddress.fromReverseName(question.name),
              configuration.serviceCIDRs.contains(where: { $0.contains(ip) }) else { return nil }
        return isLoaded ? .nameError(soa: soa, answer: []) : .serverFailure
    }
}

func addressData(_ ip: IPAddress) -> RecordData {
    switch ip {
    case .v4(let a): .a(a)
    case .v6(let a): .aaaa(a)
    }
}

extension ClusterZone {
    struct Builder {
        let configuration: ClusterConfiguration
        var nodes: [DomainName: Node] = [:]
        var pointers: [DomainName: [ResourceRecord]] = [:]
        var clusterIPPointers = Set<DomainName>()
        var podIPs: [String: Set<IPAddress>] = [:]
        let soa: ResourceRecord
        let podZone: DomainName
        let svcZone: DomainName
        var ttl: UInt32 { configuration.ttl }

        init(configuration: ClusterConfiguration) {
            self.configuration = configuration
            let origin = configuration.domain
            func name(_ text: String) -> DomainName {
                (try? DomainName(text).resolved(against: origin)) ?? origin
            }
            soa = ResourceRecord(name: origin, ttl: configuration.ttl, data: .soa(SOA(
                mname: name("ns.dns"), rname: name("hostmaster"), serial: 1, refresh: 7200, retry: 1800,
                expire: 86400, minimum: configuration.ttl)))
            podZone = name("pod")
            svcZone = name("svc")
        }

        func child(_ label: String, of parent: DomainName) -> DomainName? {
            try? parent.prepending(label: Array(label.utf8))
        }

        /// Adds a record, creating its node and every empty non-terminal above it.
        mutating func add(_ record: ResourceRecord) {
            nodes[record.name, default: Node()].records[record.type, default: []].append(record)
            ensureAncestors(of: record.name)
        }

        mutating func ensure(_ name: DomainName) {
            if nodes[name] == nil { nodes[name] = Node() }
            ensureAncestors(of: name)
        }

        mutating func ensureAncestors(of name: DomainName) {
            var current = name.parent
            while let n = current, n.isSubdomain(of: configuration.domain), n != configuration.domain {
                if nodes[n] != nil { break }
                nodes[n] = Node()
                current = n.parent
            }
        }

        mutating func build(_ snapshot: RegistrySnapshot) {
            let origin = configuration.domain
            add(soa)
            let nsName = child("ns", of: child("dns", of: origin)!)!
            add(ResourceRecord(name: origin, ttl: ttl, data: .ns(nsName)))
            for ip in configuration.serverAddresses { add(ResourceRecord(name: nsName, ttl: ttl, data: addressData(ip))) }
            ensure(nsName)
            if let version = child("dns-version", of: origin) {
                add(ResourceRecord(name: version, ttl: ClusterConfiguration.versionTTL,
                                   data: .txt(TXT(ClusterConfiguration.schemaVersion))))
            }
            ensure(svcZone)
            ensure(podZone)

            // Namespaces exist (NODATA) when they are registered or hold a service.
            var namespaces = Set<String>()
            for case .namespace(let ns) in snapshot.list(.namespace) { namespaces.insert(ns.metadata.name) }
            for case .pod(let pod) in snapshot.list(.pod) {
                for ip in pod.status.podIPs.compactMap(IPAddress.init) {
                    podIPs[pod.metadata.namespace.lowercased(), default: []].insert(ip)
                }
            }
            let services = snapshot.services
            for service in services { namespaces.insert(service.metadata.namespace) }
            for namespace in namespaces {
                if let n = child(namespace, of: svcZone) { ensure(n) }
                if configuration.pods != .disabled, let n = child(namespace, of: podZone) { ensure(n) }
            }
            // Cluster IPs first: their PTRs win over endpoints'.
            for service in services { addService(service, endpoints: snapshot.endpoints(of: service.key)) }
        }

        mutating func addService(_ service: Service, endpoints: ServiceEndpoints?) {
            guard let nsName = child(service.metadata.namespace, of: svcZone),
                  let name = child(service.metadata.name, of: nsName) else { return }
            let spec = service.spec
            if spec.type == .externalName {
                // An IP-valued externalName is ignored, as CoreDNS does.
                let text = spec.externalName.hasSuffix(".") ? String(spec.externalName.dropLast()) : spec.externalName
                guard IPAddress(text) == nil, let target = try? DomainName(text + ".") else { return }
                add(ResourceRecord(name: name, ttl: ttl, data: .cname(target)))
                return
            }
            let ready = endpoints?.endpoints.filter(\.isReady) ?? []
            // Endpoint names: hostname if set, and the dashed IP of every address.
            var endpointNames: [(ResolvedEndpoint, DomainName)] = []
            for endpoint in ready {
                var names: [DomainName] = []
                if !endpoint.hostname.isEmpty, let n = child(endpoint.hostname, of: name) { names.append(n) }
                for ip in endpoint.addresses { if let n = child(ip.dashed, of: name) { names.append(n) } }
                for n in names {
                    for ip in endpoint.addresses { add(ResourceRecord(name: n, ttl: ttl, data: addressData(ip))) }
                }
                if let primary = names.first { endpointNames.append((endpoint, primary)) }
                for ip in endpoint.addresses {
                    let reverse = ip.reverseName
                    guard !clusterIPPointers.contains(reverse), let target = names.first else { continue }
                    pointers[reverse, default: []].append(ResourceRecord(name: reverse, ttl: ttl, data: .ptr(target)))
                }
            }

            if spec.isHeadless {
                // The service name answers every ready endpoint's addresses; none: it does not exist.
                var seen = Set<IPAddress>()
                for endpoint in ready {
                    for ip in endpoint.addresses where seen.insert(ip).inserted {
                        add(ResourceRecord(name: name, ttl: ttl, data: addressData(ip)))
                    }
                }
                addSRV(name: name, ports: spec.ports, endpoints: endpointNames)
            } else {
                for ip in spec.clusterIPs.compactMap(IPAddress.init) {
                    add(ResourceRecord(name: name, ttl: ttl, data: addressData(ip)))
                    let reverse = ip.reverseName
                    clusterIPPointers.insert(reverse)
                    pointers[reverse] = [ResourceRecord(name: reverse, ttl: ttl, data: .ptr(name))]
                }
                addSRV(name: name, ports: spec.ports, endpoints: nil)
                ensure(name)
            }
        }

        /// `_port._proto.<svc>` per named port, and the bare service name with every port.
        mutating func addSRV(name: DomainName, ports: [Service.Port], endpoints: [(ResolvedEndpoint, DomainName)]?) {
            var bare: [(SRVTarget)] = []
            for port in ports {
                var targets: [SRVTarget] = []
                if let endpoints {
                    for (endpoint, target) in endpoints {
                        guard let resolved = endpoint.ports.first(where: { $0.name == port.name && $0.protocol == port.protocol })
                        else { continue }
                        targets.append(SRVTarget(port: resolved.port, target: target, addresses: endpoint.addresses))
                    }
                } else {
                    targets.append(SRVTarget(port: port.port, target: name, addresses: []))
                }
                bare += targets
                guard !port.name.isEmpty, !targets.isEmpty,
                      let protoName = child("_" + port.protocol.rawValue.lowercased(), of: name),
                      let portName = child("_" + port.name, of: protoName) else { continue }
                addSRVRecords(at: portName, targets)
            }
            if !bare.isEmpty { addSRVRecords(at: name, bare) }
        }

        struct SRVTarget {
            var port: Int
            var target: DomainName
            var addresses: [IPAddress]
        }

        mutating func addSRVRecords(at owner: DomainName, _ targets: [SRVTarget]) {
            let weight = UInt16(100 / max(1, targets.count))
            for t in targets {
                add(ResourceRecord(name: owner, ttl: ttl, data: .srv(SRV(priority: 0, weight: weight, port: UInt16(t.port), target: t.target))))
                for ip in t.addresses {
                    let glue = ResourceRecord(name: t.target, ttl: ttl, data: addressData(ip))
                    if nodes[owner]!.glue[glue.type]?.contains(glue) != true {
                        nodes[owner]!.glue[glue.type, default: []].append(glue)
                    }
                }
            }
        }
    }
}
