/// A Service read without Codable's containers, as the endpoints and metadata are
/// (`TapeFastPaths`): half of a large registry's values are Services, and their spec through
/// `init(from:)` was a third of a replica's start. The reading follows the synthesized
/// `init(from:)` member by member — a member with a default is still required, an optional
/// one may be missing or null, an enumeration takes only its raw values, `IntOrString` is the
/// synthesized `{"int":{"_0":80}}` — and gives up (nil) at anything else, so that Codable
/// reads it or says precisely what is wrong.
extension TapeDecoder {
    /// A Service at `index`, or nil to decode it through Codable.
    func service(at index: Int) -> Service? {
        guard tape.nodes[index].kind == .object else { return nil }
        var metadata: ObjectMeta? = nil, spec: Service.Spec? = nil, status: Service.Status? = nil
        let read = members(of: index) { member, value in
            switch member {
            case .metadata?: metadata = objectMeta(at: value); return metadata != nil
            case .spec?: spec = serviceSpec(at: value); return spec != nil
            case .status?: status = serviceStatus(at: value); return status != nil
            default: return true  // not a Service's: skipped
            }
        }
        guard read != nil, let metadata, let spec, let status else { return nil }
        return Service(metadata: metadata, spec: spec, status: status)
    }

    private static let requiredInSpec = Member.bits(.type, .clusterIP, .clusterIPs, .ipFamilies, .ports, .externalName,
                                                    .loadBalancerIP, .externalIPs, .sessionAffinity, .publishNotReadyAddresses)

    private func serviceSpec(at index: Int) -> Service.Spec? {
        guard tape.nodes[index].kind == .object else { return nil }
        var spec = Service.Spec()
        let read = members(of: index) { member, value in
            switch member {
            case .type?: return set(&spec.type, enumeration(at: value))
            case .clusterIP?: return set(&spec.clusterIP, try? string(at: value, path: keys))
            case .clusterIPs?: return set(&spec.clusterIPs, try? strings(at: value))
            case .ipFamilies?: return set(&spec.ipFamilies, enumerations(at: value))
            case .ipFamilyPolicy?: return set(&spec.ipFamilyPolicy, optional(at: value) { enumeration(at: $0) })
            case .ports?: return set(&spec.ports, array(at: value, servicePort(at:)))
            case .selector?: return set(&spec.selector, optional(at: value) { try? stringMap(at: $0) })
            case .externalName?: return set(&spec.externalName, try? string(at: value, path: keys))
            case .loadBalancerIP?: return set(&spec.loadBalancerIP, try? string(at: value, path: keys))
            case .externalIPs?: return set(&spec.externalIPs, try? strings(at: value))
            case .sessionAffinity?: return set(&spec.sessionAffinity, enumeration(at: value))
            case .sessionAffinityTimeoutSeconds?:
                return set(&spec.sessionAffinityTimeoutSeconds, optional(at: value) { try? integer(Int.self, at: $0, path: keys) })
            case .externalTrafficPolicy?: return set(&spec.externalTrafficPolicy, optional(at: value) { enumeration(at: $0) })
            case .internalTrafficPolicy?: return set(&spec.internalTrafficPolicy, optional(at: value) { enumeration(at: $0) })
            case .publishNotReadyAddresses?: return set(&spec.publishNotReadyAddresses, try? bool(at: value, path: keys))
            default: return true  // not a spec's: skipped
            }
        }
        guard let read, read & Self.requiredInSpec == Self.requiredInSpec else { return nil }
        return spec
    }

    private func serviceStatus(at index: Int) -> Service.Status? {
        guard tape.nodes[index].kind == .object else { return nil }
        var status = Service.Status()
        let read = members(of: index) { member, value in
            member == .loadBalancerIngress ? set(&status.loadBalancerIngress, try? strings(at: value)) : true
        }
        guard let read, read & Member.loadBalancerIngress.bit != 0 else { return nil }
        return status
    }

    private static let requiredInPort = Member.bits(.name, .protocol, .port, .nodePort)

    private func servicePort(at index: Int) -> Service.Port? {
        guard tape.nodes[index].kind == .object else { return nil }
        var port = Service.Port(port: 0)
        let read = members(of: index) { member, value in
            switch member {
            case .name?: return set(&port.name, try? string(at: value, path: keys))
            case .protocol?: return set(&port.protocol, enumeration(at: value))
            case .port?: return set(&port.port, try? integer(Int.self, at: value, path: keys))
            case .targetPort?: return set(&port.targetPort, optional(at: value) { intOrString(at: $0) })
            case .nodePort?: return set(&port.nodePort, try? integer(Int.self, at: value, path: keys))
            default: return true  // not a port's: skipped
            }
        }
        guard let read, read & Self.requiredInPort == Self.requiredInPort else { return nil }
        return port
    }

    /// `{"int":{"_0":80}}` or `{"string":{"_0":"http"}}`, as the synthesized coding writes them.
    private func intOrString(at index: Int) -> IntOrString? {
        payload(at: index) { kind, at in
            switch kind {
            case .int: (try? integer(Int.self, at: at, path: keys)).map(IntOrString.int)
            case .string: (try? string(at: at, path: keys)).map(IntOrString.string)
            default: nil
            }
        }
    }
}
