public import DNSAuthority
public import DNSWire
import HashTreeCollections
import NetAddress
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
    /// Pod IPs and their pods' namespaces (for `--pods verified` and autopath).
    var pods = PodAddresses()
    /// In-zone ExternalName services: their pre-encoded answers include their target's records.
    var aliases: Set<DomainName> = []
    /// Pre-encoded answers by name, for the fast path (see `CompiledZone`).
    var compiled = CompiledZone()
    /// Set while a whole snapshot is loaded: names are compiled straight into a table at the end.
    private var compilationDeferred = false
    /// Services derived lately for the general path, shared by every version of the zone.
    let derived = DerivedFragments()
    /// The SOA as the fast path writes it into NXDOMAIN and NODATA answers.
    let soaTemplate: RecordTemplate
    /// The apex as compiling a name needs it.
    let apex: CompiledZone.Apex

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
        soaTemplate = RecordTemplate([soa], apex: origin)
        apex = CompiledZone.Apex(origin)
        isLoaded = false
        var base: [DomainName: Node] = [:]
        func add(_ record: ResourceRecord) { base[record.name, default: Node()].records.append(record) }
        add(soa)
        add(ResourceRecord(name: origin, ttl: configuration.ttl, data: .ns(nsName)))
        for ip in configuration.serverAddresses { add(ResourceRecord(name: nsName, ttl: configuration.ttl, data: addressData(ip))) }
        add(ResourceRecord(name: name("dns-version"), ttl: ClusterConfiguration.versionTTL, data: .txt(TXT(ClusterConfiguration.schemaVersion))))
        for empty in [nsName, name("dns"), svcZone, podZone] where base[empty] == nil { base[empty] = Node() }
        self.base = base
        compiled = CompiledZone(suffixLength: origin.wireLength)
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
        for case .pod(let pod) in snapshot.list(.pod) { replacePod(nil, with: pod) }
        for object in snapshot.list(.service) {
            guard let source = Source(object, endpoints: snapshot.endpoints(of: object.key)) else { continue }
            sources[object.key] = source
            adjustNamespace(source.namespace, by: 1)
        }
        compilationDeferred = false
        // Before compiling: a chain to a missing name is NXDOMAIN only once loaded.
        isLoaded = snapshot.isLoaded
        var builder = CompiledZone.Builder(suffixLength: compiled.suffixLength)
        for name in base.keys { builder.add(name, answers: compiledAnswers(for: name, node: base[name]!)) }
        for namespace in namespaceUses.keys {
            for name in namespaceNames(namespace) {
                builder.add(name, answers: compiledAnswers(for: name, node: Node()))
            }
        }
        for source in sources.values {
            let fragment = fragment(of: source)
            index(fragment, of: source)
            for (name, node) in fragment.nodes {
                builder.add(name, answers: compiledAnswers(for: name, node: node, overlay: fragment.nodes))
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
                let previous: Pod? = if case .pod(let p)? = event.previous { p } else { nil }
                zone.replacePod(previous, with: event.change == .deleted ? nil : pod)
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

    /// The zone's answers for the fast path: pod names are synthesised at lookup (general
    /// path), and before the registry's first load a missing name is SERVFAIL, not NXDOMAIN.
    public var precompiled: Precompiled {
        Precompiled(answers: compiled, soa: soaTemplate, generalSubtrees: configuration.pods == .disabled ? [] : [podZone],
                    missIsNameError: isLoaded)
    }

    /// The pre-encoded answers of one name for every compiled type it answers.
    /// `overlay`: the names of the service being compiled, found there before the zone.
    func compiledAnswers(for name: DomainName, node: Node, overlay: [DomainName: Node] = [:]) -> [CompiledZone.Answer] {
        let types = node.records.contains(type: .cname) ? CompiledZone.compiledTypes : node.records.types
        return CompiledZone.answers(for: name, types: types, apex: apex) { lookup($0, overlay: overlay) }
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
            compiled.set(name, answers: compiledAnswers(for: name, node: node))
        } else {
            compiled.remove(name)
        }
    }

    mutating func recompileAliases() {
        for alias in aliases { compileName(alias) }
    }

    /// A pod changes from `old` to `new` (nil: it is new, or gone). Only `--pods verified` reads
    /// pod addresses (autopath requires it), so other modes keep no index.
    mutating func replacePod(_ old: Pod?, with new: Pod?) {
        guard configuration.pods == .verified else { return }
        func holder(_ pod: Pod?) -> PodAddresses.Holder? {
            pod.map { PodAddresses.Holder(namespace: $0.metadata.namespace.lowercased(), searchesCluster: $0.searchesClusterFromOwnAddress) }
        }
        pods.replace(old?.status.podIPs.compactMap(IPAddress.init) ?? [], holder(old),
                     with: new?.status.podIPs.compactMap(IPAddress.init) ?? [], holder(new))
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
                compiled.set(name, answers: compiledAnswers(for: name, node: node, overlay: fragment.nodes))
            }
        }
        // A service's names are its own: one it no longer has exists nowhere else.
        for name in removed { compiled.remove(name) }
        if recompileAliases { self.recompileAliases() }
    }
}
