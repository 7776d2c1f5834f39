#if canImport(Glibc)
import Glibc
#endif

/// Direct readings of the values a registry stores most of, without Codable's containers: an
/// EndpointSlice's endpoints are half of a large registry's values, every object has its
/// metadata, and each of them through `init(from:)` looked up the metadata of a generic
/// container box in the runtime's shared cache, which both cores contend for. A reading
/// gives up (nil) at anything it does not expect — a member of the wrong type, a repeated or
/// escaped member name, a target reference, preserved fields — and the value is then decoded
/// through Codable, which says precisely what is wrong or reads what is rare; so either way the
/// result is Codable's. Unknown members are skipped, as `init(from:)` skips them.
extension TapeDecoder {
    /// An array of endpoints at `index`, or nil to decode it through Codable.
    func endpoints(at index: Int) -> [EndpointSlice.Endpoint]? {
        let array = tape.nodes[index]
        guard array.kind == .array else { return nil }
        var result: [EndpointSlice.Endpoint] = []
        result.reserveCapacity(Int(array.count))
        var element = index + 1
        for _ in 0..<Int(array.count) {
            guard let endpoint = endpoint(at: element) else { return nil }
            result.append(endpoint)
            element = tape.next(after: element)
        }
        return result
    }

    /// The members the readings know; each may appear once (a repeated one gives up).
    private enum Member: Int {
        case addresses, conditions, hostname, nodeName, zone, targetRef, ready, serving, terminating
        case name, namespace, labels, annotations, uid, resourceVersion, creationTimestamp, preserved
        var bit: UInt32 { 1 << UInt32(rawValue) }
    }

    private enum Name {
        case known(Member)
        /// Skipped, as `init(from:)` skips it.
        case unknown
        /// Escaped, or not a string: give up.
        case unreadable
    }

    private func name(_ node: JSONTape.Node) -> Name {
        guard node.kind == .string, !node.escaped else { return .unreadable }
        let name = tape.span(node)
        func equals(_ text: StaticString) -> Bool {
            name.count == text.utf8CodeUnitCount && memcmp(name.baseAddress!, text.utf8Start, name.count) == 0
        }
        switch name.count {
        case 3 where equals("uid"): return .known(.uid)
        case 4 where equals("name"): return .known(.name)
        case 6 where equals("labels"): return .known(.labels)
        case 9 where equals("namespace"): return .known(.namespace)
        case 9 where equals("preserved"): return .known(.preserved)
        case 11 where equals("annotations"): return .known(.annotations)
        case 15 where equals("resourceVersion"): return .known(.resourceVersion)
        case 17 where equals("creationTimestamp"): return .known(.creationTimestamp)
        case 4 where equals("zone"): return .known(.zone)
        case 5 where equals("ready"): return .known(.ready)
        case 7 where equals("serving"): return .known(.serving)
        case 8 where equals("hostname"): return .known(.hostname)
        case 8 where equals("nodeName"): return .known(.nodeName)
        case 9 where equals("addresses"): return .known(.addresses)
        case 9 where equals("targetRef"): return .known(.targetRef)
        case 10 where equals("conditions"): return .known(.conditions)
        case 11 where equals("terminating"): return .known(.terminating)
        default: return .unknown
        }
    }

    /// Calls `body` with each member's name and value index of the object at `index`, unless
    /// a name is unreadable or repeated (false: give up); `body` returns false to give up.
    private func members(of index: Int, _ body: (Member?, Int) -> Bool) -> Bool {
        let object = tape.nodes[index]
        var seen: UInt32 = 0
        var member = index + 1
        for _ in 0..<Int(object.count) {
            let value = member + 1
            switch name(tape.nodes[member]) {
            case .unreadable: return false
            case .unknown: guard body(nil, value) else { return false }
            case .known(let known):
                guard seen & known.bit == 0, body(known, value) else { return false }
                seen |= known.bit
            }
            member = tape.next(after: value)
        }
        return true
    }

    private func endpoint(at index: Int) -> EndpointSlice.Endpoint? {
        guard tape.nodes[index].kind == .object else { return nil }
        var addresses: [String]? = nil
        var conditions = EndpointSlice.Conditions()
        var hostname = "", nodeName = "", zone = ""
        let read = members(of: index) { member, value in
            switch member {
            case .addresses?:
                addresses = try? strings(at: value)
                return addresses != nil
            case .conditions?:
                guard let read = self.conditions(at: value) else { return false }
                conditions = read
            case .hostname?:
                guard let text = optionalString(at: value) else { return false }
                hostname = text
            case .nodeName?:
                guard let text = optionalString(at: value) else { return false }
                nodeName = text
            case .zone?:
                guard let text = optionalString(at: value) else { return false }
                zone = text
            case .targetRef?:
                return tape.nodes[value].kind == .null
            default:
                break  // not an endpoint's: skipped
            }
            return true
        }
        guard read, let addresses else { return nil }
        return EndpointSlice.Endpoint(addresses: addresses, conditions: conditions, hostname: hostname, nodeName: nodeName, zone: zone)
    }

    /// An object's metadata at `index`, or nil to decode it through Codable.
    func objectMeta(at index: Int) -> ObjectMeta? {
        guard tape.nodes[index].kind == .object else { return nil }
        var name: String? = nil, namespace: String? = nil, uid: String? = nil
        var labels: [String: String]? = nil, annotations: [String: String]? = nil
        var resourceVersion: UInt64? = nil
        var creationTimestamp: Int64? = nil
        let read = members(of: index) { member, value in
            let node = tape.nodes[value]
            switch member {
            case .name?: name = try? string(at: value, path: keys); return name != nil
            case .namespace?: namespace = try? string(at: value, path: keys); return namespace != nil
            case .uid?: uid = try? string(at: value, path: keys); return uid != nil
            case .labels?: labels = try? stringMap(at: value); return labels != nil
            case .annotations?: annotations = try? stringMap(at: value); return annotations != nil
            case .resourceVersion?:
                resourceVersion = try? integer(UInt64.self, at: value, path: keys)
                return resourceVersion != nil
            case .creationTimestamp?:
                if node.kind == .null { return true }
                creationTimestamp = try? integer(Int64.self, at: value, path: keys)
                return creationTimestamp != nil
            case .preserved?:
                return node.kind == .null
            default:
                return true  // not metadata's: skipped
            }
        }
        guard read, let name, let namespace, let uid, let labels, let annotations, let resourceVersion else { return nil }
        var meta = ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations, uid: uid,
                              resourceVersion: resourceVersion)
        meta.creationTimestamp = creationTimestamp
        return meta
    }

    /// Conditions (null: none said), or nil to give up.
    private func conditions(at index: Int) -> EndpointSlice.Conditions? {
        let kind = tape.nodes[index].kind
        if kind == .null { return EndpointSlice.Conditions() }
        guard kind == .object else { return nil }
        var conditions = EndpointSlice.Conditions()
        let read = members(of: index) { member, value in
            guard let member, member == .ready || member == .serving || member == .terminating else { return true }
            let flag: Bool?
            switch tape.nodes[value].kind {
            case .true: flag = true
            case .false: flag = false
            case .null: flag = nil
            default: return false
            }
            switch member {
            case .ready: conditions.ready = flag
            case .serving: conditions.serving = flag
            default: conditions.terminating = flag
            }
            return true
        }
        return read ? conditions : nil
    }

    /// A string, or "" for null; nil to give up.
    private func optionalString(at index: Int) -> String? {
        let node = tape.nodes[index]
        if node.kind == .null { return "" }
        return try? string(at: index, path: keys)
    }
}
