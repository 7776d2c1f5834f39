public import DNSWire

/// The whole zone, for a transfer (AXFR).
extension ClusterZone {
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
}
