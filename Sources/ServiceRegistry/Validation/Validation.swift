import DNSWire
import NetAddress

/// The validation Kubernetes' API server does for these kinds, with its messages.
public enum Validation {
    public static func validate(_ object: RegistryObject) -> [FieldError] {
        switch object {
        case .namespace(let o): validateMetadata(o.metadata, nameRule: NameRules.dns1123Label, namespaced: false)
        case .node(let o): validateNode(o)
        case .service(let o): validateService(o)
        case .pod(let o): validatePod(o)
        case .endpoints(let o): validateEndpoints(o)
        case .endpointSlice(let o): validateEndpointSlice(o)
        }
    }

    static func validateMetadata(_ meta: ObjectMeta, nameRule: (String) -> [String], namespaced: Bool) -> [FieldError] {
        var errors: [FieldError] = []
        if meta.name.isEmpty {
            errors.append(FieldError("metadata.name", .required(detail: "name or generateName is required")))
        } else {
            errors += nameRule(meta.name).map { .invalid("metadata.name", FieldError.quoted(meta.name), $0) }
        }
        if namespaced {
            errors += NameRules.dns1123Label(meta.namespace).map { .invalid("metadata.namespace", FieldError.quoted(meta.namespace), $0) }
        }
        errors += labels(meta.labels, "metadata.labels")
        return errors
    }

    static func labels(_ labels: [String: String], _ path: String) -> [FieldError] {
        var errors: [FieldError] = []
        for key in labels.keys.sorted() {
            errors += NameRules.labelKey(key).map { .invalid(path, FieldError.quoted(key), $0) }
            let value = labels[key]!
            errors += NameRules.labelValue(value).map { .invalid("\(path)[\(key)]", FieldError.quoted(value), $0) }
        }
        return errors
    }

    static func port(_ value: Int, _ path: String) -> [FieldError] {
        (1...65535).contains(value) ? [] : [.invalid(path, String(value), "must be between 1 and 65535, inclusive")]
    }

    static func ip(_ value: String, _ path: String) -> [FieldError] {
        IPAddress(value) == nil ? [.invalid(path, FieldError.quoted(value), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")] : []
    }

    static func validateService(_ service: Service) -> [FieldError] {
        var errors = validateMetadata(service.metadata, nameRule: NameRules.dns1123Label, namespaced: true)
        let spec = service.spec
        let isExternalName = spec.type == .externalName

        // Ports.
        if spec.ports.isEmpty && !isExternalName && !spec.isHeadless {
            errors.append(FieldError("spec.ports", .required(detail: "")))
        }
        var names = Set<String>()
        var portProtocols = Set<String>()
        for (index, p) in spec.ports.enumerated() {
            let path = "spec.ports[\(index)]"
            if p.name.isEmpty {
                if spec.ports.count > 1 { errors.append(FieldError("\(path).name", .required(detail: ""))) }
            } else {
                errors += NameRules.ianaServiceName(p.name).map { .invalid("\(path).name", FieldError.quoted(p.name), $0) }
                if !names.insert(p.name).inserted {
                    errors.append(FieldError("\(path).name", .duplicate(value: FieldError.quoted(p.name))))
                }
            }
            errors += port(p.port, "\(path).port")
            if !portProtocols.insert("\(p.port)/\(p.protocol.rawValue)").inserted {
                errors.append(FieldError(path, .duplicate(value: FieldError.quoted("\(p.port)/\(p.protocol.rawValue)"))))
            }
            switch p.targetPort {
            case .int(let t)?: errors += port(t, "\(path).targetPort")
            case .string(let s)?:
                errors += NameRules.ianaServiceName(s).map { .invalid("\(path).targetPort", FieldError.quoted(s), $0) }
            case nil: break
            }
            if p.nodePort != 0 {
                if spec.type == .clusterIP || isExternalName {
                    errors.append(FieldError("\(path).nodePort", .forbidden(detail: "may not be used when `type` is '\(spec.type.rawValue)'")))
                } else {
                    errors += port(p.nodePort, "\(path).nodePort")
                }
            }
        }

        // Addresses.
        if isExternalName {
            if spec.externalName.isEmpty {
                errors.append(FieldError("spec.externalName", .required(detail: "")))
            } else {
                errors += externalName(spec.externalName)
            }
            if !spec.clusterIP.isEmpty && !spec.isHeadless {
                errors.append(FieldError("spec.clusterIP", .forbidden(detail: "may not be set for ExternalName services")))
            }
        } else {
            if !spec.clusterIP.isEmpty && !spec.isHeadless && IPAddress(spec.clusterIP) == nil {
                errors.append(.invalid("spec.clusterIP", FieldError.quoted(spec.clusterIP), "must be empty, 'None', or a valid IP address"))
            }
            for (index, value) in spec.clusterIPs.enumerated() where !(index == 0 && value == "None") {
                errors += ip(value, "spec.clusterIPs[\(index)]")
            }
            if let first = spec.clusterIPs.first, !spec.clusterIP.isEmpty, first != spec.clusterIP {
                errors.append(.invalid("spec.clusterIPs", "[\(spec.clusterIPs.map(FieldError.quoted).joined(separator: ","))]",
                                       "element [0] must match clusterIP"))
            }
            if spec.clusterIPs.count > 2 {
                errors.append(.invalid("spec.clusterIPs", "[\(spec.clusterIPs.map(FieldError.quoted).joined(separator: ","))]",
                                       "may only hold up to 2 values"))
            } else if spec.clusterIPs.count == 2, let a = IPAddress(spec.clusterIPs[0]), let b = IPAddress(spec.clusterIPs[1]),
                      a.isIPv4 == b.isIPv4 {
                errors.append(.invalid("spec.clusterIPs", "[\(spec.clusterIPs.map(FieldError.quoted).joined(separator: ","))]",
                                       "may specify no more than one IP for each IP family"))
            }
            if spec.isHeadless && (spec.type == .nodePort || spec.type == .loadBalancer) {
                errors.append(.invalid("spec.clusterIP", "\"None\"", "may not be set to 'None' for \(spec.type.rawValue) services"))
            }
        }
        if spec.ipFamilies.count > 2 || (spec.ipFamilies.count == 2 && spec.ipFamilies[0] == spec.ipFamilies[1]) {
            errors.append(FieldError("spec.ipFamilies[1]", .duplicate(value: FieldError.quoted(spec.ipFamilies.last!.rawValue))))
        }
        if spec.ipFamilyPolicy == .singleStack && (spec.ipFamilies.count > 1 || spec.clusterIPs.count > 1) {
            errors.append(.invalid("spec.ipFamilyPolicy", "\"SingleStack\"", "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
        }
        if !spec.loadBalancerIP.isEmpty {
            if spec.type != .loadBalancer {
                errors.append(FieldError("spec.loadBalancerIP", .forbidden(detail: "may only be used when `type` is 'LoadBalancer'")))
            } else {
                errors += ip(spec.loadBalancerIP, "spec.loadBalancerIP")
            }
        }
        for (index, value) in spec.externalIPs.enumerated() { errors += ip(value, "spec.externalIPs[\(index)]") }

        // Selector, affinity, traffic policies.
        if let selector = spec.selector { errors += labels(selector, "spec.selector") }
        if let timeout = spec.sessionAffinityTimeoutSeconds {
            if spec.sessionAffinity != .clientIP {
                errors.append(FieldError("spec.sessionAffinityConfig", .forbidden(detail: "must not be set when `sessionAffinity` is None")))
            } else if !(1...86400).contains(timeout) {
                errors.append(.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", String(timeout),
                                       "must be greater than 0 and less than 86400"))
            }
        }
        if spec.externalTrafficPolicy != nil && spec.type != .nodePort && spec.type != .loadBalancer && spec.externalIPs.isEmpty {
            errors.append(.invalid("spec.externalTrafficPolicy", FieldError.quoted(spec.externalTrafficPolicy!.rawValue),
                                   "may only be set for externally-accessible services"))
        }
        if isExternalName && spec.selector != nil && !(spec.selector!.isEmpty) {
            // Kubernetes allows it but ignores it; so do we.
        }
        for (index, ingress) in service.status.loadBalancerIngress.enumerated() {
            errors += ip(ingress, "status.loadBalancer.ingress[\(index)].ip")
        }
        return errors
    }

    /// An ExternalName must be a DNS name; internationalised names are accepted (and converted
    /// by the registry when it stores the service).
    static func externalName(_ value: String) -> [FieldError] {
        let trimmed = value.hasSuffix(".") ? String(value.dropLast()) : value
        if IPAddress(trimmed) != nil { return [] }  // Kubernetes accepts it; DNS ignores an IP-valued externalName.
        let ascii: String
        if trimmed.utf8.contains(where: { $0 >= 0x80 }) {
            do {
                ascii = try DomainName(unicode: trimmed).description
            } catch {
                return [.invalid("spec.externalName", FieldError.quoted(value), "\(error)")]
            }
        } else {
            ascii = trimmed.lowercased()
        }
        return NameRules.dns1123Subdomain(ascii).map { .invalid("spec.externalName", FieldError.quoted(value), $0) }
    }

    static func validatePod(_ pod: Pod) -> [FieldError] {
        var errors = validateMetadata(pod.metadata, nameRule: NameRules.dns1123Subdomain, namespaced: true)
        if !pod.spec.hostname.isEmpty {
            errors += NameRules.dns1123Label(pod.spec.hostname).map { .invalid("spec.hostname", FieldError.quoted(pod.spec.hostname), $0) }
        }
        if !pod.spec.subdomain.isEmpty {
            errors += NameRules.dns1123Label(pod.spec.subdomain).map { .invalid("spec.subdomain", FieldError.quoted(pod.spec.subdomain), $0) }
        }
        if pod.spec.containers.isEmpty { errors.append(FieldError("spec.containers", .required(detail: ""))) }
        var portNames = Set<String>()
        for (c, container) in pod.spec.containers.enumerated() {
            if container.name.isEmpty { errors.append(FieldError("spec.containers[\(c)].name", .required(detail: ""))) }
            for (p, cp) in container.ports.enumerated() {
                let path = "spec.containers[\(c)].ports[\(p)]"
                errors += port(cp.containerPort, "\(path).containerPort")
                if !cp.name.isEmpty {
                    errors += NameRules.ianaServiceName(cp.name).map { .invalid("\(path).name", FieldError.quoted(cp.name), $0) }
                    if !portNames.insert(cp.name).inserted {
                        errors.append(FieldError("\(path).name", .duplicate(value: FieldError.quoted(cp.name))))
                    }
                }
            }
        }
        for (c, container) in pod.spec.containers.enumerated() {
            let path = "spec.containers[\(c)]"
            if let probe = container.readinessProbe { errors += validateProbe(probe, "\(path).readinessProbe", startup: false) }
            if let probe = container.startupProbe { errors += validateProbe(probe, "\(path).startupProbe", startup: true) }
        }
        if let ttl = pod.metadata.annotations[Pod.readyTTLAnnotation], pod.readyTTL == nil {
            errors.append(.invalid("metadata.annotations[\(Pod.readyTTLAnnotation)]", FieldError.quoted(ttl),
                                   "must be a duration of at least 1s, such as 15s"))
        }
        if !pod.status.podIP.isEmpty { errors += ip(pod.status.podIP, "status.podIP") }
        for (i, value) in pod.status.podIPs.enumerated() where value != pod.status.podIP {
            errors += ip(value, "status.podIPs[\(i)].ip")
        }
        return errors
    }

    /// kube-apiserver's checks of a probe (its handler count is checked where it is read).
    static func validateProbe(_ probe: Probe, _ path: String, startup: Bool) -> [FieldError] {
        var errors: [FieldError] = []
        for (name, value) in [("initialDelaySeconds", probe.initialDelaySeconds), ("timeoutSeconds", probe.timeoutSeconds),
                              ("periodSeconds", probe.periodSeconds), ("successThreshold", probe.successThreshold),
                              ("failureThreshold", probe.failureThreshold)] where value < 0 {
            errors.append(.invalid("\(path).\(name)", String(value), "must be greater than or equal to 0"))
        }
        if startup && probe.successThreshold != 1 {
            errors.append(.invalid("\(path).successThreshold", String(probe.successThreshold), "must be 1"))
        }
        func portValue(_ value: IntOrString, _ at: String) -> [FieldError] {
            switch value {
            case .int(let n): port(n, at)
            case .string(let s): NameRules.ianaServiceName(s).map { .invalid(at, FieldError.quoted(s), $0) }
            }
        }
        switch probe.action {
        case .httpGet(let get):
            errors += portValue(get.port, "\(path).httpGet.port")
            if !get.host.isEmpty, IPAddress(get.host) == nil {
                errors.append(.invalid("\(path).httpGet.host", FieldError.quoted(get.host), "must be an IP address here (the pod's IP when left out)"))
            }
            for (i, header) in get.headers.enumerated() where header.name.isEmpty || header.name.utf8.contains(where: { $0 <= 32 || $0 == UInt8(ascii: ":") }) {
                errors.append(.invalid("\(path).httpGet.httpHeaders[\(i)].name", FieldError.quoted(header.name), "a valid HTTP header must consist of alphanumeric characters, '-', '_' or '.'"))
            }
        case .tcpSocket(let socket):
            errors += portValue(socket.port, "\(path).tcpSocket.port")
            if !socket.host.isEmpty, IPAddress(socket.host) == nil {
                errors.append(.invalid("\(path).tcpSocket.host", FieldError.quoted(socket.host), "must be an IP address here (the pod's IP when left out)"))
            }
        case .grpc(let grpc):
            errors += port(grpc.port, "\(path).grpc.port")
        case .exec(let command):
            if command.isEmpty { errors.append(FieldError("\(path).exec.command", .required(detail: ""))) }
        }
        return errors
    }

    static func validateNode(_ node: Node) -> [FieldError] {
        var errors = validateMetadata(node.metadata, nameRule: NameRules.dns1123Subdomain, namespaced: false)
        for (i, cidr) in node.podCIDRs.enumerated() {
            do { _ = try IPPrefix(parsing: cidr) } catch {
                errors.append(.invalid("spec.podCIDRs[\(i)]", FieldError.quoted(cidr), error.description))
            }
        }
        for (i, address) in node.addresses.enumerated() where address.type.hasSuffix("IP") {
            errors += ip(address.address, "status.addresses[\(i)].address")
        }
        return errors
    }

    static func validateEndpoints(_ endpoints: Endpoints) -> [FieldError] {
        var errors = validateMetadata(endpoints.metadata, nameRule: NameRules.dns1123Label, namespaced: true)
        for (s, subset) in endpoints.subsets.enumerated() {
            for (field, list) in [("addresses", subset.addresses), ("notReadyAddresses", subset.notReadyAddresses)] {
                for (a, address) in list.enumerated() {
                    errors += ip(address.ip, "subsets[\(s)].\(field)[\(a)].ip")
                    if !address.hostname.isEmpty {
                        errors += NameRules.dns1123Label(address.hostname).map {
                            .invalid("subsets[\(s)].\(field)[\(a)].hostname", FieldError.quoted(address.hostname), $0)
                        }
                    }
                }
            }
            errors += endpointPorts(subset.ports, "subsets[\(s)].ports")
        }
        return errors
    }

    static func endpointPorts(_ ports: [EndpointPort], _ path: String) -> [FieldError] {
        var errors: [FieldError] = []
        var names = Set<String>()
        for (p, ep) in ports.enumerated() {
            errors += port(ep.port, "\(path)[\(p)].port")
            if ports.count > 1 && ep.name.isEmpty { errors.append(FieldError("\(path)[\(p)].name", .required(detail: ""))) }
            if !ep.name.isEmpty {
                errors += NameRules.dns1123Label(ep.name).map { .invalid("\(path)[\(p)].name", FieldError.quoted(ep.name), $0) }
                if !names.insert(ep.name).inserted {
                    errors.append(FieldError("\(path)[\(p)].name", .duplicate(value: FieldError.quoted(ep.name))))
                }
            }
        }
        return errors
    }

    static func validateEndpointSlice(_ slice: EndpointSlice) -> [FieldError] {
        var errors = validateMetadata(slice.metadata, nameRule: NameRules.dns1123Subdomain, namespaced: true)
        // A large registry holds a hundred thousand endpoints: their paths are spelled only
        // for an error, and the addresses read where the endpoint keeps them.
        for (e, endpoint) in slice.endpoints.enumerated() {
            func check(_ address: String, _ a: Int) {
                let reason: [String]
                switch slice.addressType {
                case .ipv4: reason = IPv4Address(address) == nil ? ["must be a valid IPv4 address"] : []
                case .ipv6: reason = IPv6Address(address) == nil ? ["must be a valid IPv6 address"] : []
                case .fqdn: reason = NameRules.dns1123Subdomain(address)
                }
                errors += reason.map { .invalid("endpoints[\(e)].addresses[\(a)]", FieldError.quoted(address), $0) }
            }
            if endpoint.firstAddress.isEmpty && endpoint.otherAddresses.isEmpty {
                errors.append(FieldError("endpoints[\(e)].addresses", .required(detail: "must contain at least 1 address")))
            } else {
                check(endpoint.firstAddress, 0)
                for (a, address) in endpoint.otherAddresses.enumerated() { check(address, a + 1) }
            }
            if !endpoint.hostname.isEmpty {
                errors += NameRules.dns1123Label(endpoint.hostname).map { .invalid("endpoints[\(e)].hostname", FieldError.quoted(endpoint.hostname), $0) }
            }
        }
        errors += endpointPorts(slice.ports, "ports")
        return errors
    }
}
