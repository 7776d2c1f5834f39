import DNSWire
import NetAddress
import ServiceRegistry

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
        var repeats = false
        if ready.count > 1 {
            // Sorted and compared with their neighbours: no hashing per address.
            var addresses = ready.flatMap(\.addresses)
            addresses.sort()
            var hostnames = ready.map(\.hostname).filter { !$0.isEmpty }
            hostnames.sort()
            repeats = zip(addresses, addresses.dropFirst()).contains { $0 == $1 }
                || zip(hostnames, hostnames.dropFirst()).contains { $0 == $1 }
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
        var unique = targets
        if targets.count > 1 {
            unique = []
            unique.reserveCapacity(targets.count)
            var seen = Set<SRVKey>(minimumCapacity: targets.count)
            for t in targets {
                if seen.insert(SRVKey(port: t.port, target: t.target)).inserted {
                    unique.append(t)
                } else if let i = unique.firstIndex(where: { $0.port == t.port && $0.target == t.target }) {
                    unique[i].addresses += t.addresses.filter { !unique[i].addresses.contains($0) }
                }
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
