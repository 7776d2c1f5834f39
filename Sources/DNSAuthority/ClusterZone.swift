public import DNSWire
import HashTreeCollections
import NetAddress
import Synchronization
public import ServiceRegistry

/// The cluster zone (the Kubernetes DNS specification, schema 1.1.0, as CoreDNS's kubernetes
/// plugin answers it).
///
/// What it keeps is small: the pre-encoded answers of every name (`compiled`, the fast path and
/// the only copy of the zone's records), and for each service the registry objects its names
/// were compiled from (`sources`, shared with the registry's own storage). A service's records
/// are derived from those objects when they are needed: to compile its names when it changes,
/// to answer a question the fast path leaves to the general path, and to know which names to
/// take back when it changes again. Reverse names are an index of addresses to the services
/// that name them.
///
/// It is an immutable value built from persistent maps, and it is updated incrementally: a
/// registry change recompiles only the services it touched (`updated(with:snapshot:)`), in
/// time proportional to those services, and the previous value stays valid for readers.
public struct ClusterZone: Authority {
    public let configuration: ClusterConfiguration
    public var origin: DomainName { configuration.domain }
    public var namesTakeOnlyTheApexLetters: Bool { true }
    /// False until the registry's first load completes: would-be NXDOMAINs are SERVFAIL.
    public private(set) var isLoaded: Bool
    let soa: ResourceRecord
    let podZone: DomainName
    let svcZone: DomainName
    let nsName: DomainName

    /// The apex's own names (SOA, NS and its address, dns-version, svc, pod).
    let base: [DomainName: Node]
    /// Each service as its names were last compiled. The registry's snapshot cannot stand in
    /// for it: the snapshot given with a batch of events may already hold later changes whose
    /// events are still to come, and those services' compiled names must be taken back from
    /// what they were compiled from.
    var sources: TreeDictionary<ObjectKey, Source> = [:]
    /// Services and Namespace objects per namespace: `<ns>.svc` exists while it is above zero.
    var namespaceUses: TreeDictionary<String, Int> = [:]
    var namespaceObjects: Set<String> = []
    /// The services that give an address a PTR name (cluster IPs win over endpoints).
    var reverse = ReverseIndex()
    /// Pod IPs, per pod and per namespace (for `--pods verified`).
    var podAddresses: TreeDictionary<ObjectKey, [IPAddress]> = [:]
    var podIPs: TreeDictionary<String, TreeDictionary<IPAddress, Int>> = [:]
    /// In-zone ExternalName services: their pre-encoded answers include their target's records.
    var aliases: Set<DomainName> = []
    /// Pre-encoded answers by name, for the fast path (see `CompiledZone`).
    var compiled = CompiledZone()
    /// Set while a whole snapshot is loaded: names are compiled straight into a table at the end.
    private var compilationDeferred = false
    /// Services derived lately for the general path, shared by every version of the zone.
    let derived = DerivedFragments()
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

    /// A service and its endpoints as the registry gave them: two references to the registry's
    /// own boxes (its objects are an indirect enum, its endpoints one box each), so a service
    /// costs the zone some 50 bytes here.
    final class Source: Sendable {
        private let object: RegistryObject
        let endpoints: ServiceEndpoints?

        init?(_ object: RegistryObject?, endpoints: ServiceEndpoints?) {
            guard let object, case .service = object else { return nil }
            self.object = object
            self.endpoints = endpoints
        }

        var service: Service {
            guard case .service(let service) = object else { preconditionFailure("a source is a service") }
            return service
        }

        var namespace: String { object.key.namespace }
    }

    /// A PTR a service contributes: reverse name's address, target, and whether it is a cluster IP's.
    struct Pointer: Hashable, Sendable {
        var address: IPAddress
        var target: DomainName
        var isClusterIP: Bool
    }

    /// The services naming each address. Some 110,000 addresses at 10,000 services, almost
    /// every one named by one service: IPv4 addresses are keyed by their 32 bits, and one
    /// service is held without an array (16 bytes an address instead of 40).
    struct ReverseIndex: Sendable {
        enum Sources: Sendable {
            case one(Source)
            case many([Source])

            var all: [Source] {
                switch self {
                case .one(let source): [source]
                case .many(let sources): sources
                }
            }

            init?(_ sources: [Source]) {
                switch sources.count {
                case 0: return nil
                case 1: self = .one(sources[0])
                default: self = .many(sources)
                }
            }
        }

        private var v4: TreeDictionary<UInt32, Sources> = [:]
        private var v6: TreeDictionary<IPv6Address, Sources> = [:]

        subscript(ip: IPAddress) -> [Source]? {
            switch ip {
            case .v4(let a): v4[a.rawValue]?.all
            case .v6(let a): v6[a]?.all
            }
        }

        /// Adds `source` to the address's services (once), in place: one walk of the tree and
        /// no array for an address only one service names (most of them).
        mutating func add(_ ip: IPAddress, _ source: Source) {
            switch ip {
            case .v4(let a): Self.add(source, to: &v4[a.rawValue])
            case .v6(let a): Self.add(source, to: &v6[a])
            }
        }

        private static func add(_ source: Source, to sources: inout Sources?) {
            switch sources {
            case nil:
                sources = .one(source)
            case .one(let first)?:
                if first !== source { sources = .many([first, source]) }
            case .many(var list)?:
                guard !list.contains(where: { $0 === source }) else { return }
                sources = nil  // the list's only owner now: appended in place
                list.append(source)
                sources = .many(list)
            }
        }

        mutating func remove(_ ip: IPAddress, _ source: Source) {
            guard let sources = self[ip] else { return }
            set(ip, Sources(sources.filter { $0 !== source }))
        }

        private mutating func set(_ ip: IPAddress, _ sources: Sources?) {
            switch ip {
            case .v4(let a): v4[a.rawValue] = sources
            case .v6(let a): v6[a] = sources
            }
        }

        /// Every address named.
        var addresses: [IPAddress] {
            v4.keys.map { .v4(IPv4Address(rawValue: $0)) } + v6.keys.map { .v6($0) }
        }
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
        compiled = CompiledZone(suffixLength: apexKey.count + 1)
        for name in base.keys { compileName(name) }
    }

    /// The zone of a whole snapshot.
    public init(snapshot: RegistrySnapshot, configuration: ClusterConfiguration) {
        self.init(configuration: configuration)
        // Every service is registered first (an ExternalName's answer may take its records from
        // another service), then every name is compiled once, straight into a new table.
        compilationDeferred = true
        for case .namespace(let ns) in snapshot.list(.namespace) { namespaceObjects.insert(ns.metadata.name) }
        for namespace in namespaceObjects { adjustNamespace(namespace, by: 1) }
        for case .pod(let pod) in snapshot.list(.pod) { setPod(pod.key, pod.status.podIPs.compactMap(IPAddress.init)) }
        for object in snapshot.list(.service) {
            guard let source = Source(object, endpoints: snapshot.endpoints(of: object.key)) else { continue }
            sources[object.key] = source
            adjustNamespace(source.namespace, by: 1)
        }
        compilationDeferred = false
        // Before compiling: a chain to a missing name is NXDOMAIN only once loaded.
        isLoaded = snapshot.isLoaded
        var builder = CompiledZone.Builder(suffixLength: compiled.suffixLength)
        for name in base.keys { builder.add(name, answers: CompiledZone.answers(for: name, node: base[name]!, in: self)) }
        for namespace in namespaceUses.keys {
            for name in namespaceNames(namespace) {
                builder.add(name, answers: CompiledZone.answers(for: name, node: Node(), in: self))
            }
        }
        for source in sources.values {
            let fragment = fragment(of: source)
            index(fragment, of: source)
            for (name, node) in fragment.nodes {
                builder.add(name, answers: CompiledZone.answers(for: name, node: node, in: self, overlay: fragment.nodes))
            }
        }
        compiled = builder.finish()
    }

    /// This zone after `events`, reading the current objects from `snapshot` (the registry's
    /// state at or after the last event). Only what the events touch is recompiled.
    /// `foldChanges`: fold the compiled changes into a new table here once they are many;
    /// false leaves that to the caller (`ClusterAuthority` folds away from the update path).
    public func updated(with events: some Sequence<WatchEvent>, snapshot: RegistrySnapshot,
                        foldChanges: Bool = true) -> ClusterZone {
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
        if foldChanges { zone.compiled.compactIfNeeded() }
        zone.isLoaded = snapshot.isLoaded
        return zone
    }

    // MARK: Lookup

    public func lookup(_ question: Question) -> Lookup { lookup(question, overlay: [:]) }

    /// The lookup, with the names of `overlay` (a service being compiled) found there first.
    func lookup(_ question: Question, overlay: [DomainName: Node]) -> Lookup {
        var answer: [ResourceRecord] = []
        var name = question.name
        var seen = Set<DomainName>()
        while true {
            guard let node = overlay[name] ?? node(for: name) else {
                return isLoaded ? .nameError(soa: soa, answer: answer) : .serverFailure
            }
            if question.type == .srv, answer.isEmpty, node.records.contains(type: .cname) {
                // An ExternalName has no SRV records, and its CNAME is not one (CoreDNS
                // leaves the CNAME out of SRV answers): NODATA.
                return .noData(soa: soa)
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

    /// The node of a name: the apex's names, a namespace's, a service's (derived from its
    /// source), or a pod name synthesised at lookup.
    func node(for name: DomainName) -> Node? {
        if let node = base[name] { return node }
        let svcDepth = name.labelCount - svcZone.labelCount
        if svcDepth >= 1, name.isSubdomain(of: svcZone) {
            let labels = name.labels
            let namespace = String(decoding: labels[svcDepth - 1], as: UTF8.self).lowercased()
            if svcDepth == 1 { return (namespaceUses[namespace] ?? 0) > 0 ? Node() : nil }
            let service = String(decoding: labels[svcDepth - 2], as: UTF8.self).lowercased()
            guard let source = sources[ObjectKey(.service, namespace: namespace, name: service)] else { return nil }
            return derived.fragment(of: source, records: true) { fragment(of: source) }.nodes[name]
        }
        guard configuration.pods != .disabled, name.isSubdomain(of: podZone) else { return nil }
        let podDepth = name.labelCount - podZone.labelCount
        guard podDepth == 1 || podDepth == 2 else { return nil }
        let labels = name.labels
        let namespace = String(decoding: labels[podDepth - 1], as: UTF8.self).lowercased()
        if podDepth == 1 { return (namespaceUses[namespace] ?? 0) > 0 ? Node() : nil }
        // a-b-c-d.<ns>.pod.<zone>
        guard let ip = IPAddress.fromDashed(String(decoding: labels[0], as: UTF8.self)) else { return nil }
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
        guard let ip = IPAddress.fromReverseName(question.name) else { return nil }
        if let named = reverse[ip] {
            guard question.type == .ptr || question.type == .any else { return .noData(soa: soa) }
            var clusterIP: [DomainName] = []
            var endpoints: [DomainName] = []
            for source in named {
                let pointers = derived.fragment(of: source, records: false) { fragment(of: source, records: false) }.pointers
                for pointer in pointers where pointer.address == ip {
                    if pointer.isClusterIP { clusterIP.append(pointer.target) } else if !endpoints.contains(pointer.target) {
                        endpoints.append(pointer.target)
                    }
                }
            }
            // In a fixed order, whatever order the services were applied in.
            let records = (clusterIP.isEmpty ? endpoints : clusterIP).sorted { $0.description < $1.description }
                .map { ResourceRecord(name: question.name, ttl: configuration.ttl, data: .ptr($0)) }
            return .answer(records, additional: [])
        }
        guard configuration.serviceCIDRs.contains(where: { $0.contains(ip) }) else { return nil }
        return isLoaded ? .nameError(soa: soa, answer: []) : .serverFailure
    }

    /// Every name of the zone but the synthesised pod names, with its node.
    func forEachName(_ body: (DomainName, Node) -> Void) {
        for (name, node) in base { body(name, node) }
        for namespace in namespaceUses.keys {
            for name in namespaceNames(namespace) { body(name, Node()) }
        }
        for source in sources.values {
            for (name, node) in fragment(of: source).nodes { body(name, node) }
        }
    }

    /// Every record of the zone, in canonical order (for a zone transfer).
    public var allRecords: [ResourceRecord] {
        var nodes: [(DomainName, Node)] = []
        forEachName { nodes.append(($0, $1)) }
        nodes.sort { $0.0 < $1.0 }
        return nodes.flatMap { $0.1.records.all }
    }

    // MARK: Incremental building

    /// A service's names, records and reverse names, derived from its source.
    func fragment(of source: Source, records: Bool = true) -> FragmentBuilder {
        var fragment = FragmentBuilder(zone: self, namespace: source.namespace, recordsWanted: records)
        fragment.add(source.service, endpoints: source.endpoints)
        return fragment
    }

    /// Enters a service's reverse names and in-zone alias in the indexes (or takes them out).
    mutating func index(_ fragment: FragmentBuilder, of source: Source, adding: Bool = true) {
        for pointer in fragment.pointers {
            if adding { reverse.add(pointer.address, source) } else { reverse.remove(pointer.address, source) }
        }
        if let alias = fragment.alias {
            if adding { aliases.insert(alias) } else { aliases.remove(alias) }
        }
    }

    /// `<ns>.svc.<zone>`, and `<ns>.pod.<zone>` unless pods are disabled.
    func namespaceNames(_ namespace: String) -> [DomainName] {
        var names: [DomainName] = []
        if let n = try? svcZone.prepending(label: Array(namespace.utf8)) { names.append(n) }
        if configuration.pods != .disabled, let n = try? podZone.prepending(label: Array(namespace.utf8)) { names.append(n) }
        return names
    }

    mutating func compileName(_ name: DomainName) {
        guard !compilationDeferred else { return }
        if let node = node(for: name) {
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
        for name in namespaceNames(namespace) { compileName(name) }
    }

    /// Takes back what a service contributed and adds what it contributes now.
    mutating func replaceService(_ key: ObjectKey, in snapshot: RegistrySnapshot, recompileAliases: Bool = true) {
        var removed = Set<DomainName>()
        if let old = sources[key] {
            let fragment = fragment(of: old)
            removed.formUnion(fragment.nodes.keys)
            index(fragment, of: old, adding: false)
            sources[key] = nil
            adjustNamespace(old.namespace, by: -1)
        }
        if let source = Source(snapshot.objects[key], endpoints: snapshot.endpoints(of: key)) {
            sources[key] = source
            adjustNamespace(key.namespace, by: 1)
            let fragment = fragment(of: source)
            index(fragment, of: source)
            for (name, node) in fragment.nodes {
                removed.remove(name)
                compiled.set(name, answers: CompiledZone.answers(for: name, node: node, in: self, overlay: fragment.nodes))
            }
        }
        // A service's names are its own: one it no longer has exists nowhere else.
        for name in removed { compiled.remove(name) }
        if recompileAliases { self.recompileAliases() }
    }
}

/// The last few services whose names and records (or only PTRs) the general path derived, so
/// that questions about a large service do not derive it again each time (a thousand
/// endpoints take milliseconds). A source never changes, so what was derived from it holds
/// while it is kept here; entries keep their source alive, so an identity is never reused.
final class DerivedFragments: Sendable {
    struct Entry: Sendable {
        var source: ClusterZone.Source
        var fragment: FragmentBuilder
        var used: UInt64
    }

    static let capacity = 8
    private let entries = Mutex<(list: [Entry], clock: UInt64)>(([], 0))

    /// The fragment of `source` (with records, or `records: false` for PTRs only), derived by
    /// `derive` when not kept. Derivation runs outside the lock.
    func fragment(of source: ClusterZone.Source, records: Bool, _ derive: () -> FragmentBuilder) -> FragmentBuilder {
        let kept: FragmentBuilder? = entries.withLock { state in
            state.clock += 1
            guard let i = state.list.firstIndex(where: { $0.source === source && ($0.fragment.recordsWanted || !records) })
            else { return nil }
            state.list[i].used = state.clock
            return state.list[i].fragment
        }
        if let kept { return kept }
        let fragment = derive()
        entries.withLock { state in
            // What it supersedes or repeats (another thread may have derived it meanwhile).
            state.list.removeAll { $0.source === source && (fragment.recordsWanted || !$0.fragment.recordsWanted) }
            if state.list.count >= Self.capacity, let oldest = state.list.indices.min(by: { state.list[$0].used < state.list[$1].used }) {
                state.list.remove(at: oldest)
            }
            state.list.append(Entry(source: source, fragment: fragment, used: state.clock))
        }
        return fragment
    }
}

func addressData(_ ip: IPAddress) -> RecordData {
    switch ip {
    case .v4(let a): .a(a)
    case .v6(let a): .aaaa(a)
    }
}

/// The names and records of one service.
struct FragmentBuilder: Sendable {
    let origin: DomainName
    let ttl: UInt32
    let serviceName: DomainName?
    var nodes: [DomainName: ClusterZone.Node] = [:]
    var pointers: [ClusterZone.Pointer] = []
    var alias: DomainName? = nil
    /// False: only the PTRs (and the alias) are wanted, not the names and their records (a
    /// reverse lookup of one address of a large headless service).
    let recordsWanted: Bool

    init(zone: ClusterZone, namespace: String, recordsWanted: Bool = true) {
        origin = zone.origin
        ttl = zone.configuration.ttl
        serviceName = try? zone.svcZone.prepending(label: Array(namespace.utf8))
        self.recordsWanted = recordsWanted
    }

    func child(_ label: String, of parent: DomainName) -> DomainName? {
        try? parent.prepending(label: Array(label.utf8))
    }

    /// Adds a record; its empty ancestors up to the service's name are this fragment's too.
    /// `unique`: not when the name already holds it (an RRset never holds a record twice).
    mutating func add(_ record: ResourceRecord, under service: DomainName, unique: Bool = false) {
        guard recordsWanted else { return }
        if unique, nodes[record.name]?.records.contains(record) == true { return }
        nodes[record.name, default: .init()].records.append(record)
        ensure(record.name, under: service)
    }

    mutating func ensure(_ name: DomainName, under service: DomainName) {
        guard recordsWanted else { return }
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
        // An endpoint listed twice (in two EndpointSlices), or two sharing a hostname, would
        // repeat records: then every record is checked before it is added. Without a repeated
        // address or hostname no record can repeat, and the check is skipped.
        var addresses = Set<IPAddress>()
        var hostnames = Set<String>()
        var repeats = false
        for endpoint in ready {
            for ip in endpoint.addresses where !addresses.insert(ip).inserted { repeats = true }
            if !endpoint.hostname.isEmpty, !hostnames.insert(endpoint.hostname).inserted { repeats = true }
        }
        // Endpoint names: hostname if set, and the dashed IP of every address.
        var endpointNames: [(ResolvedEndpoint, DomainName)] = []
        for endpoint in ready {
            var names: [DomainName] = []
            if !endpoint.hostname.isEmpty, let n = child(endpoint.hostname, of: name) { names.append(n) }
            for ip in endpoint.addresses { if let n = child(ip.dashed, of: name) { names.append(n) } }
            for n in names {
                for ip in endpoint.addresses {
                    add(ResourceRecord(name: n, ttl: ttl, data: addressData(ip)), under: name, unique: repeats)
                }
            }
            if let primary = names.first {
                endpointNames.append((endpoint, primary))
                for ip in endpoint.addresses {
                    let pointer = ClusterZone.Pointer(address: ip, target: primary, isClusterIP: false)
                    if repeats, pointers.contains(pointer) { continue }
                    pointers.append(pointer)
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
            addSRV(name: name, ports: spec.ports, endpoints: endpointNames, clusterIPs: [])
        } else {
            let clusterIPs = spec.clusterIPs.compactMap(IPAddress.init)
            for ip in clusterIPs {
                add(ResourceRecord(name: name, ttl: ttl, data: addressData(ip)), under: name)
                pointers.append(.init(address: ip, target: name, isClusterIP: true))
            }
            addSRV(name: name, ports: spec.ports, endpoints: nil, clusterIPs: clusterIPs)
            ensure(name, under: name)
        }
    }

    struct SRVTarget {
        var port: Int
        var target: DomainName
        var addresses: [IPAddress]
    }

    struct SRVKey: Hashable {
        var port: Int
        var target: DomainName
    }

    /// `_port._proto.<svc>` per named port, and the bare service name with every port. The
    /// targets' addresses go into the additional section: the endpoints' for a headless
    /// service, the cluster IPs for the service name (as CoreDNS answers).
    mutating func addSRV(name: DomainName, ports: [Service.Port], endpoints: [(ResolvedEndpoint, DomainName)]?,
                         clusterIPs: [IPAddress]) {
        guard recordsWanted else { return }
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
                targets.append(SRVTarget(port: port.port, target: name, addresses: clusterIPs))
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
        // One SRV per target and port: endpoints that share a hostname (or one endpoint listed
        // in two slices) are one target, their addresses all in the additional section.
        var unique: [SRVTarget] = []
        unique.reserveCapacity(targets.count)
        var seen = Set<SRVKey>()
        for t in targets {
            if seen.insert(SRVKey(port: t.port, target: t.target)).inserted {
                unique.append(t)
            } else if let i = unique.firstIndex(where: { $0.port == t.port && $0.target == t.target }) {
                unique[i].addresses += t.addresses.filter { !unique[i].addresses.contains($0) }
            }
        }
        let weight = UInt16(100 / max(1, unique.count))
        var glue: [ResourceRecord] = []
        for t in unique {
            add(ResourceRecord(name: owner, ttl: ttl, data: .srv(SRV(priority: 0, weight: weight, port: UInt16(t.port), target: t.target))),
                under: service)
            for ip in t.addresses { glue.append(ResourceRecord(name: t.target, ttl: ttl, data: addressData(ip))) }
        }
        nodes[owner]!.glue.appendNew(glue)
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
        // Records mostly come in type order: then it is an append (a service's thousand
        // endpoint addresses would otherwise cost a scan each).
        if records.last.map({ $0.type <= type }) ?? true {
            records.append(record)
            return
        }
        let at = records.lastIndex { $0.type <= type }.map { $0 + 1 } ?? 0
        records.insert(record, at: at)
    }

    /// Adds records not already here, in order (a set finds the duplicates).
    mutating func appendNew(_ new: [ResourceRecord]) {
        var seen = Set(records)
        for record in new where seen.insert(record).inserted { append(record) }
    }
}
