public import DNSWire
import HashTreeCollections
import NetAddress
public import ServiceRegistry

/// The cluster zone (the Kubernetes DNS specification, schema 1.1.0, as CoreDNS's kubernetes
/// plugin answers it): every name that exists, with its records and its pre-encoded answers.
///
/// It is an immutable value built from persistent maps, and it is updated incrementally: a
/// registry change recompiles only the services it touched (`updated(with:snapshot:)`), in
/// time proportional to those services, and the previous value stays valid for readers.
public struct ClusterZone: Authority {
    public let configuration: ClusterConfiguration
    public var origin: DomainName { configuration.domain }
    /// False until the registry's first load completes: would-be NXDOMAINs are SERVFAIL.
    public private(set) var isLoaded: Bool
    let soa: ResourceRecord
    let podZone: DomainName
    let svcZone: DomainName
    let nsName: DomainName

    /// The apex's own names (SOA, NS and its address, dns-version, svc, pod).
    let base: [DomainName: Node]
    /// Names contributed by services, namespaces and their empty non-terminals.
    var nodes: TreeDictionary<DomainName, Node> = [:]
    /// What each service contributed, to take it back when the service changes.
    var fragments: TreeDictionary<ObjectKey, Fragment> = [:]
    /// Services and Namespace objects per namespace: `<ns>.svc` exists while it is above zero.
    var namespaceUses: TreeDictionary<String, Int> = [:]
    var namespaceObjects: Set<String> = []
    /// Reverse names: cluster-IP PTRs win over endpoint PTRs.
    var pointers: TreeDictionary<DomainName, PointerSet> = [:]
    /// Pod IPs, per pod and per namespace (for `--pods verified`).
    var podAddresses: TreeDictionary<ObjectKey, [IPAddress]> = [:]
    var podIPs: TreeDictionary<String, TreeDictionary<IPAddress, Int>> = [:]
    /// In-zone ExternalName services: their pre-encoded answers include their target's records.
    var aliases: Set<DomainName> = []
    /// Pre-encoded answers by name, for the fast path (see `CompiledZone`).
    var compiled = CompiledZone()
    /// Set while a whole snapshot is loaded: `compileName` leaves the names for the end.
    private var compilationDeferred = false
    /// The apex and `pod.<zone>` in lower-cased wire form, without the final zero (fast path).
    let apexKey: [UInt8]
    let podKey: [UInt8]
    /// The SOA as the fast path writes it into NXDOMAIN and NODATA answers.
    let soaTemplate: (bytes: [UInt8], pointers: [Int])

    /// The records of one name. A node without records is an empty non-terminal (NODATA).
    struct Node: Hashable, Sendable {
        var records = RecordSets()
        /// Address glue for SRV answers.
        var glue = RecordSets()
    }

    struct Fragment: Sendable {
        var names: [DomainName] = []
        var namespace: String
        var pointers: [Pointer] = []
        var alias: DomainName? = nil
    }

    /// A PTR a service contributes: reverse name, target, and whether it is a cluster IP's.
    struct Pointer: Sendable {
        var name: DomainName
        var target: DomainName
        var isClusterIP: Bool
    }

    /// The PTR targets of one reverse name (records are made when asked: they are the same
    /// but for the target, and 110,000 of them at 10,000 services).
    struct PointerSet: Sendable {
        var clusterIP: [DomainName] = []
        var endpoints: [DomainName] = []
        /// In a fixed order, whatever order the services were applied in.
        func records(owner: DomainName, ttl: UInt32) -> [ResourceRecord] {
            (clusterIP.isEmpty ? endpoints : clusterIP).sorted { $0.description < $1.description }
                .map { ResourceRecord(name: owner, ttl: ttl, data: .ptr($0)) }
        }
        var isEmpty: Bool { clusterIP.isEmpty && endpoints.isEmpty }
    }

    public static let maxCNAMEChain = 8

    /// An empty zone for `configuration` (the apex and its fixed names only).
    public init(configuration: ClusterConfiguration) {
        self.configuration = configuration
        let origin = configuration.domain
        func name(_ text: String) -> DomainName { (try? DomainName(text).resolved(against: origin)) ?? origin }
        nsName = name("ns.dns")
        soa = ResourceRecord(name: origin, ttl: configuration.ttl, data: .soa(SOA(
            mname: nsName, rname: name("hostmaster"), serial: 1, refresh: 7200, retry: 1800,
            expire: 86400, minimum: configuration.ttl)))
        podZone = name("pod")
        svcZone = name("svc")
        apexKey = Array(origin.lookupKey.dropLast())
        podKey = Array(podZone.lookupKey.dropLast())
        soaTemplate = Self.soaTemplate(soa, apexKey: apexKey)
        isLoaded = false
        var base: [DomainName: Node] = [:]
        func add(_ record: ResourceRecord) { base[record.name, default: Node()].records.append(record) }
        add(soa)
        add(ResourceRecord(name: origin, ttl: configuration.ttl, data: .ns(nsName)))
        for ip in configuration.serverAddresses { add(ResourceRecord(name: nsName, ttl: configuration.ttl, data: addressData(ip))) }
        add(ResourceRecord(name: name("dns-version"), ttl: ClusterConfiguration.versionTTL, data: .txt(TXT(ClusterConfiguration.schemaVersion))))
        for empty in [nsName, name("dns"), svcZone, podZone] where base[empty] == nil { base[empty] = Node() }
        self.base = base
        for name in base.keys { compileName(name) }
    }

    /// The zone of a whole snapshot.
    public init(snapshot: RegistrySnapshot, configuration: ClusterConfiguration) {
        self.init(configuration: configuration)
        // Names are compiled once each at the end, straight into the table, rather than one
        // change at a time (which would leave the change map's memory behind as garbage).
        compilationDeferred = true
        for case .namespace(let ns) in snapshot.list(.namespace) { namespaceObjects.insert(ns.metadata.name) }
        for namespace in namespaceObjects { adjustNamespace(namespace, by: 1) }
        for case .pod(let pod) in snapshot.list(.pod) { setPod(pod.key, pod.status.podIPs.compactMap(IPAddress.init)) }
        for service in snapshot.services { replaceService(service.key, in: snapshot, recompileAliases: false) }
        compilationDeferred = false
        let zone = self
        compiled = CompiledZone(names: Array(base.keys) + Array(nodes.keys)) { name in
            CompiledZone.answers(for: name, node: zone.base[name] ?? zone.nodes[name]!, in: zone)
        }
        isLoaded = snapshot.isLoaded
    }

    /// This zone after `events`, reading the current objects from `snapshot` (the registry's
    /// state at or after the last event). Only what the events touch is recompiled.
    public func updated(with events: some Sequence<WatchEvent>, snapshot: RegistrySnapshot) -> ClusterZone {
        var zone = self
        var services = Set<ObjectKey>()
        for event in events {
            services.formUnion(event.endpointsChanged)
            switch event.object {
            case .service(let s): services.insert(s.key)
            case .namespace(let ns):
                let name = ns.metadata.name
                if event.change == .deleted {
                    if zone.namespaceObjects.remove(name) != nil { zone.adjustNamespace(name, by: -1) }
                } else if zone.namespaceObjects.insert(name).inserted {
                    zone.adjustNamespace(name, by: 1)
                }
            case .pod(let pod):
                zone.setPod(pod.key, event.change == .deleted ? [] : pod.status.podIPs.compactMap(IPAddress.init))
            default:
                break
            }
        }
        for key in services.sorted() { zone.replaceService(key, in: snapshot, recompileAliases: false) }
        if !services.isEmpty { zone.recompileAliases() }
        zone.compiled.compactIfNeeded()
        zone.isLoaded = snapshot.isLoaded
        return zone
    }

    // MARK: Lookup

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
                ? node.records.all
                : node.records[question.type] ?? []
            if records.isEmpty {
                return answer.isEmpty ? .noData(soa: soa) : .answer(answer, additional: [])
            }
            var additional: [ResourceRecord] = []
            if question.type == .srv {
                additional = (node.glue[.a] ?? []) + (node.glue[.aaaa] ?? [])
            } else if question.type == .ns, name == origin {
                additional = (base[nsName]?.records[.a] ?? []) + (base[nsName]?.records[.aaaa] ?? [])
            }
            return .answer(answer + records, additional: additional)
        }
    }

    /// The node of a name, including the pod names synthesised at lookup.
    func node(for name: DomainName) -> Node? {
        if let node = base[name] ?? nodes[name] { return node }
        // a-b-c-d.<ns>.pod.<zone>
        guard configuration.pods != .disabled, name.labelCount == podZone.labelCount + 2,
              name.isSubdomain(of: podZone), let first = name.labels.first else { return nil }
        guard let ip = IPAddress.fromDashed(String(decoding: first, as: UTF8.self)) else { return nil }
        let namespace = String(decoding: name.labels[1], as: UTF8.self).lowercased()
        switch configuration.pods {
        case .verified:
            guard podIPs[namespace]?[ip] != nil else { return nil }
        case .insecure:
            break
        case .disabled:
            return nil
        }
        var node = Node()
        let record = ResourceRecord(name: name, ttl: configuration.ttl, data: addressData(ip))
        node.records.append(record)
        return node
    }

    /// PTR records for a reverse name; `.nameError` for an unknown address inside the service
    /// CIDRs; nil when the name is not ours to answer.
    public func reverseLookup(_ question: Question) -> Lookup? {
        if let set = pointers[question.name], !set.isEmpty {
            return question.type == .ptr || question.type == .any ? .answer(set.records(owner: question.name, ttl: configuration.ttl), additional: []) : .noData(soa: soa)
        }
        guard let ip = IPAddress.fromReverseName(question.name),
              configuration.serviceCIDRs.contains(where: { $0.contains(ip) }) else { return nil }
        return isLoaded ? .nameError(soa: soa, answer: []) : .serverFailure
    }

    /// Every record of the zone, in canonical order (for a zone transfer).
    public var allRecords: [ResourceRecord] {
        var names = Array(base.keys) + Array(nodes.keys)
        names.sort()
        return names.flatMap { name -> [ResourceRecord] in
            let node = base[name] ?? nodes[name]!
            return node.records.all
        }
    }

    // MARK: Incremental building

    mutating func compileName(_ name: DomainName) {
        guard !compilationDeferred else { return }
        if let node = base[name] ?? nodes[name] {
            compiled.set(name, answers: CompiledZone.answers(for: name, node: node, in: self))
        } else {
            compiled.remove(name)
        }
    }

    mutating func recompileAliases() {
        for alias in aliases { compileName(alias) }
    }

    mutating func setPod(_ key: ObjectKey, _ addresses: [IPAddress]) {
        let namespace = key.namespace.lowercased()
        for ip in podAddresses[key] ?? [] {
            podIPs[namespace]?[ip, default: 1] -= 1
            if podIPs[namespace]?[ip] == 0 { podIPs[namespace]?[ip] = nil }
        }
        podAddresses[key] = addresses.isEmpty ? nil : addresses
        for ip in addresses { podIPs[namespace, default: [:]][ip, default: 0] += 1 }
    }

    /// `<ns>.svc` (and `<ns>.pod`) exist while a service or a Namespace object names them.
    mutating func adjustNamespace(_ namespace: String, by delta: Int) {
        let before = namespaceUses[namespace] ?? 0
        let after = before + delta
        namespaceUses[namespace] = after > 0 ? after : nil
        guard (before > 0) != (after > 0) else { return }
        var names: [DomainName] = []
        if let n = try? svcZone.prepending(label: Array(namespace.utf8)) { names.append(n) }
        if configuration.pods != .disabled, let n = try? podZone.prepending(label: Array(namespace.utf8)) { names.append(n) }
        for name in names {
            nodes[name] = after > 0 ? (nodes[name] ?? Node()) : nil
            compileName(name)
        }
    }

    /// Takes back what a service contributed and adds what it contributes now.
    mutating func replaceService(_ key: ObjectKey, in snapshot: RegistrySnapshot, recompileAliases: Bool = true) {
        var touched = Set<DomainName>()
        if let old = fragments[key] {
            for name in old.names {
                nodes[name] = nil
                touched.insert(name)
            }
            for pointer in old.pointers {
                var set = pointers[pointer.name] ?? PointerSet()
                if pointer.isClusterIP { set.clusterIP.removeAll { $0 == pointer.target } } else { set.endpoints.removeAll { $0 == pointer.target } }
                pointers[pointer.name] = set.isEmpty ? nil : set
            }
            if let alias = old.alias { aliases.remove(alias) }
            fragments[key] = nil
            adjustNamespace(old.namespace, by: -1)
        }
        if let service = snapshot.service(namespace: key.namespace, name: key.name) {
            var fragment = FragmentBuilder(zone: self, namespace: key.namespace)
            fragment.add(service, endpoints: snapshot.endpoints(of: key))
            for (name, node) in fragment.nodes {
                nodes[name] = node
                touched.insert(name)
            }
            for pointer in fragment.pointers {
                var set = pointers[pointer.name] ?? PointerSet()
                if pointer.isClusterIP { set.clusterIP.append(pointer.target) } else { set.endpoints.append(pointer.target) }
                pointers[pointer.name] = set
            }
            if let alias = fragment.alias { aliases.insert(alias) }
            fragments[key] = Fragment(names: Array(fragment.nodes.keys), namespace: key.namespace,
                                      pointers: fragment.pointers, alias: fragment.alias)
            adjustNamespace(key.namespace, by: 1)
        }
        for name in touched { compileName(name) }
        if recompileAliases { self.recompileAliases() }
    }
}

func addressData(_ ip: IPAddress) -> RecordData {
    switch ip {
    case .v4(let a): .a(a)
    case .v6(let a): .aaaa(a)
    }
}

/// The names and records of one service.
struct FragmentBuilder {
    let origin: DomainName
    let ttl: UInt32
    let serviceName: DomainName?
    var nodes: [DomainName: ClusterZone.Node] = [:]
    var pointers: [ClusterZone.Pointer] = []
    var alias: DomainName? = nil

    init(zone: ClusterZone, namespace: String) {
        origin = zone.origin
        ttl = zone.configuration.ttl
        serviceName = try? zone.svcZone.prepending(label: Array(namespace.utf8))
    }

    func child(_ label: String, of parent: DomainName) -> DomainName? {
        try? parent.prepending(label: Array(label.utf8))
    }

    /// Adds a record; its empty ancestors up to the service's name are this fragment's too.
    mutating func add(_ record: ResourceRecord, under service: DomainName) {
        nodes[record.name, default: .init()].records.append(record)
        ensure(record.name, under: service)
    }

    mutating func ensure(_ name: DomainName, under service: DomainName) {
        if nodes[name] == nil { nodes[name] = .init() }
        var current = name.parent
        while let n = current, n != service, n.isSubdomain(of: service) {
            if nodes[n] == nil { nodes[n] = .init() }
            current = n.parent
        }
    }

    mutating func add(_ service: Service, endpoints: ServiceEndpoints?) {
        guard let nsName = serviceName, let name = child(service.metadata.name, of: nsName) else { return }
        let spec = service.spec
        if spec.type == .externalName {
            // An IP-valued externalName is ignored, as CoreDNS does.
            let text = spec.externalName.hasSuffix(".") ? String(spec.externalName.dropLast()) : spec.externalName
            guard IPAddress(text) == nil, let target = try? DomainName(text + ".") else { return }
            add(ResourceRecord(name: name, ttl: ttl, data: .cname(target)), under: name)
            if target.isSubdomain(of: origin) { alias = name }
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
                for ip in endpoint.addresses { add(ResourceRecord(name: n, ttl: ttl, data: addressData(ip)), under: name) }
            }
            if let primary = names.first {
                endpointNames.append((endpoint, primary))
                for ip in endpoint.addresses {
                    pointers.append(.init(name: ip.reverseName, target: primary, isClusterIP: false))
                }
            }
        }
        if spec.isHeadless {
            // The service name answers every ready endpoint's addresses; none: it does not exist.
            var seen = Set<IPAddress>()
            for endpoint in ready {
                for ip in endpoint.addresses where seen.insert(ip).inserted {
                    add(ResourceRecord(name: name, ttl: ttl, data: addressData(ip)), under: name)
                }
            }
            addSRV(name: name, ports: spec.ports, endpoints: endpointNames)
        } else {
            for ip in spec.clusterIPs.compactMap(IPAddress.init) {
                add(ResourceRecord(name: name, ttl: ttl, data: addressData(ip)), under: name)
                pointers.append(.init(name: ip.reverseName, target: name, isClusterIP: true))
            }
            addSRV(name: name, ports: spec.ports, endpoints: nil)
            ensure(name, under: name)
        }
    }

    struct SRVTarget {
        var port: Int
        var target: DomainName
        var addresses: [IPAddress]
    }

    /// `_port._proto.<svc>` per named port, and the bare service name with every port.
    mutating func addSRV(name: DomainName, ports: [Service.Port], endpoints: [(ResolvedEndpoint, DomainName)]?) {
        var bare: [SRVTarget] = []
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
            addSRVRecords(at: portName, targets, under: name)
        }
        if !bare.isEmpty { addSRVRecords(at: name, bare, under: name) }
    }

    mutating func addSRVRecords(at owner: DomainName, _ targets: [SRVTarget], under service: DomainName) {
        let weight = UInt16(100 / max(1, targets.count))
        for t in targets {
            add(ResourceRecord(name: owner, ttl: ttl, data: .srv(SRV(priority: 0, weight: weight, port: UInt16(t.port), target: t.target))),
                under: service)
            for ip in t.addresses {
                let glue = ResourceRecord(name: t.target, ttl: ttl, data: addressData(ip))
                if !nodes[owner]!.glue.contains(glue) { nodes[owner]!.glue.append(glue) }
            }
        }
    }
}

/// The records of one name by type, as one array ordered by type (records of one type in the
/// order they were added). A name has records of one or two types: a dictionary per name cost
/// about a hundred bytes more than this, on 128,000 names at 10,000 services.
struct RecordSets: Hashable, Sendable {
    private var records: [ResourceRecord] = []

    /// Every record, ordered by type.
    var all: [ResourceRecord] { records }

    var isEmpty: Bool { records.isEmpty }

    /// The records of `type`, nil when there are none.
    subscript(type: RecordType) -> [ResourceRecord]? {
        let found = records.filter { $0.type == type }
        return found.isEmpty ? nil : found
    }

    func contains(type: RecordType) -> Bool { records.contains { $0.type == type } }

    func contains(_ record: ResourceRecord) -> Bool { records.contains(record) }

    /// Adds a record after the others of its type.
    mutating func append(_ record: ResourceRecord) {
        let type = record.type
        let at = records.lastIndex { $0.type <= type }.map { $0 + 1 } ?? 0
        records.insert(record, at: at)
    }
}
