#if canImport(Glibc)
import Glibc
#endif

/// Direct readings of the values a registry stores most of, without Codable's containers:
/// EndpointSlices (their endpoints are half of a large registry's values) and Services
/// (`TapeFastPaths+Service.swift`), and every object's metadata; each of them through
/// `init(from:)` looked up the metadata of a generic container box in the runtime's shared
/// cache, which both cores contend for, and allocated under the one malloc arena's lock. A
/// reading gives up (nil) at anything it does not expect — a member of the wrong type, a
/// repeated or escaped member name, a target reference, preserved fields — and the value is
/// then decoded through Codable, which says precisely what is wrong or reads what is rare; so
/// either way the result is Codable's. Unknown members are skipped, as `init(from:)` skips them.
extension TapeDecoder {
    /// A stored object at `index` in the synthesized coding of `RegistryObject` (one member
    /// naming the case, holding `_0`) when it is a Service or an EndpointSlice, or nil to decode
    /// it through Codable (the other kinds, and anything unexpected).
    func registryObject(at index: Int) -> RegistryObject? {
        payload(at: index) { kind, at in
            switch kind {
            case .service: service(at: at).map(RegistryObject.service)
            case .endpointSlice: endpointSlice(at: at).map(RegistryObject.endpointSlice)
            default: nil
            }
        }
    }

    /// The synthesized coding of an enumeration with a payload: an object of one member naming
    /// the case, holding an object whose `_0` is the payload, which `read` reads (given the
    /// case's name and `_0`'s index). Anything beside the one member gives up, and so does a
    /// case name the readings do not know: Codable decides what those mean.
    func payload<T>(at index: Int, _ read: (Member, Int) -> T?) -> T? {
        let object = tape.nodes[index]
        guard object.kind == .object, object.count == 1 else { return nil }
        var result: T? = nil
        let outer = members(of: index) { member, value in
            guard let member, tape.nodes[value].kind == .object else { return false }
            // Without `_0`, `result` stays nil.
            return members(of: value) { name, at in
                guard name == .unlabeled else { return true }  // skipped, as `init(from:)` skips it
                result = read(member, at)
                return result != nil
            } != nil
        }
        return outer != nil ? result : nil
    }

    /// An EndpointSlice at `index`, or nil to decode it through Codable.
    func endpointSlice(at index: Int) -> EndpointSlice? {
        guard tape.nodes[index].kind == .object else { return nil }
        var metadata: ObjectMeta? = nil, addressType: EndpointSlice.AddressType? = nil
        var endpoints: [EndpointSlice.Endpoint]? = nil, ports: [EndpointPort]? = nil
        let read = members(of: index) { member, value in
            switch member {
            case .metadata?: metadata = objectMeta(at: value); return metadata != nil
            case .addressType?: addressType = enumeration(at: value); return addressType != nil
            case .endpoints?: endpoints = self.endpoints(at: value); return endpoints != nil
            case .ports?: ports = array(at: value, endpointPort(at:)); return ports != nil
            default: return true  // not a slice's: skipped
            }
        }
        guard read != nil, let metadata, let addressType, let endpoints, let ports else { return nil }
        return EndpointSlice(metadata: metadata, addressType: addressType, endpoints: endpoints, ports: ports)
    }

    private static let requiredInEndpointPort = Member.bits(.name, .port, .protocol, .appProtocol)

    private func endpointPort(at index: Int) -> EndpointPort? {
        guard tape.nodes[index].kind == .object else { return nil }
        var port = EndpointPort(port: 0)
        let read = members(of: index) { member, value in
            switch member {
            case .name?: return set(&port.name, try? string(at: value, path: keys))
            case .port?: return set(&port.port, try? integer(Int.self, at: value, path: keys))
            case .protocol?: return set(&port.protocol, enumeration(at: value))
            case .appProtocol?: return set(&port.appProtocol, try? string(at: value, path: keys))
            default: return true  // not a port's: skipped
            }
        }
        guard let read, read & Self.requiredInEndpointPort == Self.requiredInEndpointPort else { return nil }
        return port
    }

    /// An array of endpoints at `index`, or nil to decode it through Codable.
    func endpoints(at index: Int) -> [EndpointSlice.Endpoint]? { array(at: index, endpoint(at:)) }

    /// An array at `index` whose every element `read` reads, or nil to give up.
    func array<T>(at index: Int, _ read: (Int) -> T?) -> [T]? {
        let array = tape.nodes[index]
        guard array.kind == .array else { return nil }
        var result: [T] = []
        result.reserveCapacity(Int(array.count))
        var element = index + 1
        for _ in 0..<Int(array.count) {
            guard let value = read(element) else { return nil }
            result.append(value)
            element = tape.next(after: element)
        }
        return result
    }

    /// The members the readings know; each may appear once (a repeated one gives up). Seen
    /// members are bits of a UInt64: 64 at most (`StoredJSONTests` checks).
    enum Member: Int, CaseIterable {
        case addresses, conditions, hostname, nodeName, zone, targetRef, ready, serving, terminating
        case name, namespace, labels, annotations, uid, resourceVersion, creationTimestamp, preserved
        // A Service's (`TapeFastPaths+Service.swift`).
        case metadata, spec, status, type, clusterIP, clusterIPs, ipFamilies, ipFamilyPolicy, ports, selector
        case externalName, loadBalancerIP, externalIPs, sessionAffinity, sessionAffinityTimeoutSeconds
        case externalTrafficPolicy, internalTrafficPolicy, publishNotReadyAddresses, loadBalancerIngress
        case `protocol`, port, targetPort, nodePort, int, string, unlabeled
        // An EndpointSlice's.
        case addressType, endpoints, appProtocol
        // A RegistryObject's cases read without Codable.
        case service, endpointSlice
        var bit: UInt64 { 1 << UInt64(rawValue) }

        static func bits(_ members: Member...) -> UInt64 { members.reduce(0) { $0 | $1.bit } }
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
        case 2 where equals("_0"): return .known(.unlabeled)
        case 3 where equals("uid"): return .known(.uid)
        case 3 where equals("int"): return .known(.int)
        case 4 where equals("name"): return .known(.name)
        case 4 where equals("zone"): return .known(.zone)
        case 4 where equals("spec"): return .known(.spec)
        case 4 where equals("type"): return .known(.type)
        case 4 where equals("port"): return .known(.port)
        case 5 where equals("ready"): return .known(.ready)
        case 5 where equals("ports"): return .known(.ports)
        case 6 where equals("labels"): return .known(.labels)
        case 6 where equals("status"): return .known(.status)
        case 6 where equals("string"): return .known(.string)
        case 7 where equals("serving"): return .known(.serving)
        case 7 where equals("service"): return .known(.service)
        case 8 where equals("hostname"): return .known(.hostname)
        case 8 where equals("nodeName"): return .known(.nodeName)
        case 8 where equals("metadata"): return .known(.metadata)
        case 8 where equals("selector"): return .known(.selector)
        case 8 where equals("protocol"): return .known(.protocol)
        case 8 where equals("nodePort"): return .known(.nodePort)
        case 9 where equals("namespace"): return .known(.namespace)
        case 9 where equals("preserved"): return .known(.preserved)
        case 9 where equals("addresses"): return .known(.addresses)
        case 9 where equals("targetRef"): return .known(.targetRef)
        case 9 where equals("clusterIP"): return .known(.clusterIP)
        case 9 where equals("endpoints"): return .known(.endpoints)
        case 10 where equals("conditions"): return .known(.conditions)
        case 10 where equals("clusterIPs"): return .known(.clusterIPs)
        case 10 where equals("ipFamilies"): return .known(.ipFamilies)
        case 10 where equals("targetPort"): return .known(.targetPort)
        case 11 where equals("annotations"): return .known(.annotations)
        case 11 where equals("terminating"): return .known(.terminating)
        case 11 where equals("externalIPs"): return .known(.externalIPs)
        case 11 where equals("addressType"): return .known(.addressType)
        case 11 where equals("appProtocol"): return .known(.appProtocol)
        case 12 where equals("externalName"): return .known(.externalName)
        case 13 where equals("endpointSlice"): return .known(.endpointSlice)
        case 14 where equals("ipFamilyPolicy"): return .known(.ipFamilyPolicy)
        case 14 where equals("loadBalancerIP"): return .known(.loadBalancerIP)
        case 15 where equals("resourceVersion"): return .known(.resourceVersion)
        case 15 where equals("sessionAffinity"): return .known(.sessionAffinity)
        case 17 where equals("creationTimestamp"): return .known(.creationTimestamp)
        case 19 where equals("loadBalancerIngress"): return .known(.loadBalancerIngress)
        case 21 where equals("externalTrafficPolicy"): return .known(.externalTrafficPolicy)
        case 21 where equals("internalTrafficPolicy"): return .known(.internalTrafficPolicy)
        case 24 where equals("publishNotReadyAddresses"): return .known(.publishNotReadyAddresses)
        case 29 where equals("sessionAffinityTimeoutSeconds"): return .known(.sessionAffinityTimeoutSeconds)
        default: return .unknown
        }
    }

    /// Calls `body` with each member's name and value index of the object at `index`, unless
    /// a name is unreadable or repeated (nil: give up); `body` returns false to give up. The
    /// known members seen, as bits.
    func members(of index: Int, _ body: (Member?, Int) -> Bool) -> UInt64? {
        let object = tape.nodes[index]
        var seen: UInt64 = 0
        var member = index + 1
        for _ in 0..<Int(object.count) {
            let value = member + 1
            switch name(tape.nodes[member]) {
            case .unreadable: return nil
            case .unknown: guard body(nil, value) else { return nil }
            case .known(let known):
                guard seen & known.bit == 0, body(known, value) else { return nil }
                seen |= known.bit
            }
            member = tape.next(after: value)
        }
        return seen
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
        guard read != nil, let addresses else { return nil }
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
        guard read != nil, let name, let namespace, let uid, let labels, let annotations, let resourceVersion else { return nil }
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
        return read != nil ? conditions : nil
    }

    /// A string, or "" for null; nil to give up.
    private func optionalString(at index: Int) -> String? {
        let node = tape.nodes[index]
        if node.kind == .null { return "" }
        return try? string(at: index, path: keys)
    }

    /// A raw value of `E`, or nil to give up.
    func enumeration<E: RawRepresentable>(at index: Int) -> E? where E.RawValue == String {
        (try? string(at: index, path: keys)).flatMap(E.init(rawValue:))
    }

    func enumerations<E: RawRepresentable>(at index: Int) -> [E]? where E.RawValue == String {
        array(at: index) { enumeration(at: $0) }
    }

    /// An optional member: `.some(nil)` for null (absent ones are never read), `read`'s value,
    /// or nil to give up.
    func optional<T>(at index: Int, _ read: (Int) -> T?) -> T?? {
        if tape.nodes[index].kind == .null { return .some(nil) }
        return read(index).map { .some($0) }
    }

    /// Sets `field` to what was read; false (give up) when nothing was.
    func set<T>(_ field: inout T, _ value: T?) -> Bool {
        guard let value else { return false }
        field = value
        return true
    }
}
