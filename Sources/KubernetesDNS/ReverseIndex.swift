public import DNSAuthority
public import DNSWire
import HashTreeCollections
import NetAddress

extension ClusterZone {
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
}
