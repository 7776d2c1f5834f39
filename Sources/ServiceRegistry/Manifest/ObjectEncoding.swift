/// Each kind as Kubernetes writes it (the inverse of `ObjectDecoding`): kind and apiVersion,
/// metadata with the registry's uid and resourceVersion, the fields this registry keeps with
/// kube-apiserver's names, and empty fields left out. Decoding the output gives the object back.
enum ObjectEncoding {
    static func encode(_ object: RegistryObject) -> JSONValue {
        var o = JSONObjectBuilder()
        o.add("kind", object.kind.rawValue)
        o.add("apiVersion", object.kind.apiVersion)
        o.add("metadata", metadata(object.metadata))
        switch object {
        case .namespace:
            o.add("spec", .object([("finalizers", .array([.string("kubernetes")]))]))
            o.add("status", .object([("phase", .string("Active"))]))
        case .node(let node): self.node(node, into: &o)
        case .service(let service): self.service(service, into: &o)
        case .pod(let pod): self.pod(pod, into: &o)
        case .endpoints(let endpoints):
            o.add("subsets", array: endpoints.subsets.map(subset))
        case .endpointSlice(let slice): self.endpointSlice(slice, into: &o)
        }
        return object.metadata.preserved?.merged(into: o.value) ?? o.value
    }

    static func metadata(_ meta: ObjectMeta) -> JSONValue {
        var m = JSONObjectBuilder()
        m.add("name", meta.name)
        m.add("namespace", meta.namespace)
        m.add("uid", meta.uid)
        if meta.resourceVersion > 0 { m.add("resourceVersion", .string(String(meta.resourceVersion))) }
        if let created = meta.creationTimestamp { m.add("creationTimestamp", .string(Timestamp.rfc3339(created))) }
        m.add("labels", map: meta.labels)
        m.add("annotations", map: meta.annotations)
        return m.value
    }

    static func service(_ service: Service, into o: inout JSONObjectBuilder) {
        let spec = service.spec
        var s = JSONObjectBuilder()
        s.add("ports", array: spec.ports.map { port in
            var p = JSONObjectBuilder()
            p.add("name", port.name)
            p.add("protocol", port.protocol.rawValue)
            p.add("port", port.port)
            switch port.effectiveTargetPort {
            case .int(let n): p.add("targetPort", n)
            case .string(let name): p.add("targetPort", .string(name))
            }
            if port.nodePort > 0 { p.add("nodePort", port.nodePort) }
            return p.value
        })
        s.add("selector", map: spec.selector)
        s.add("clusterIP", spec.clusterIP)
        s.add("clusterIPs", strings: spec.clusterIPs)
        s.add("type", spec.type.rawValue)
        s.add("externalIPs", strings: spec.externalIPs)
        s.add("sessionAffinity", spec.sessionAffinity.rawValue)
        s.add("loadBalancerIP", spec.loadBalancerIP)
        s.add("externalName", spec.externalName)
        if let policy = spec.externalTrafficPolicy { s.add("externalTrafficPolicy", policy.rawValue) }
        if spec.publishNotReadyAddresses { s.add("publishNotReadyAddresses", true) }
        if let timeout = spec.sessionAffinityTimeoutSeconds {
            s.add("sessionAffinityConfig", .object([("clientIP", .object([("timeoutSeconds", .int(timeout))]))]))
        }
        s.add("ipFamilies", strings: spec.ipFamilies.map(\.rawValue))
        if let policy = spec.ipFamilyPolicy { s.add("ipFamilyPolicy", policy.rawValue) }
        if let policy = spec.internalTrafficPolicy { s.add("internalTrafficPolicy", policy.rawValue) }
        o.add("spec", s.value)
        let ingress = service.status.loadBalancerIngress.map { JSONValue.object([("ip", .string($0))]) }
        o.add("status", .object([("loadBalancer", ingress.isEmpty ? .object([]) : .object([("ingress", .array(ingress))]))]))
    }

    static func pod(_ pod: Pod, into o: inout JSONObjectBuilder) {
        var s = JSONObjectBuilder()
        s.add("containers", .array(pod.spec.containers.map { container in
            var c = JSONObjectBuilder()
            c.add("name", container.name)
            c.add("image", container.image)
            c.add("ports", array: container.ports.map { port in
                var p = JSONObjectBuilder()
                p.add("name", port.name)
                p.add("containerPort", port.containerPort)
                p.add("protocol", port.protocol.rawValue)
                return p.value
            })
            if let probe = container.readinessProbe { c.add("readinessProbe", Self.probe(probe)) }
            if let probe = container.startupProbe { c.add("startupProbe", Self.probe(probe)) }
            return c.value
        }))
        s.add("nodeName", pod.spec.nodeName)
        s.add("hostname", pod.spec.hostname)
        s.add("subdomain", pod.spec.subdomain)
        if pod.spec.hostNetwork { s.add("hostNetwork", true) }
        s.add("dnsPolicy", pod.spec.dnsPolicy.rawValue)
        o.add("spec", s.value)
        var st = JSONObjectBuilder()
        st.add("phase", pod.status.phase)
        if let ready = pod.status.isReady {
            var condition: [(String, JSONValue)] = [("type", .string("Ready")), ("status", .string(ready ? "True" : "False"))]
            condition.append(("lastProbeTime", pod.status.readyProbeTime.map { .string(Timestamp.rfc3339($0)) } ?? .null))
            if let time = pod.status.readyTransitionTime { condition.append(("lastTransitionTime", .string(Timestamp.rfc3339(time)))) }
            st.add("conditions", .array([.object(condition)]))
        }
        st.add("podIP", pod.status.podIP)
        st.add("podIPs", array: pod.status.podIPs.map { .object([("ip", .string($0))]) })
        st.add("containerStatuses", array: pod.status.containerStatuses.map { status in
            var c: [(String, JSONValue)] = [("name", .string(status.name)), ("ready", .bool(status.ready))]
            if let started = status.started { c.append(("started", .bool(started))) }
            return .object(c)
        })
        o.add("status", st.value)
    }

    /// A probe in kube-apiserver's field order: the action, then the timings (defaults written).
    static func probe(_ probe: Probe) -> JSONValue {
        var o = JSONObjectBuilder()
        func port(_ value: IntOrString) -> JSONValue {
            switch value {
            case .int(let n): .int(n)
            case .string(let s): .string(s)
            }
        }
        switch probe.action {
        case .exec(let command):
            o.add("exec", .object([("command", .array(command.map { .string($0) }))]))
        case .httpGet(let get):
            var g = JSONObjectBuilder()
            g.add("path", get.path)
            g.add("port", port(get.port))
            g.add("host", get.host)
            g.add("scheme", get.scheme.rawValue)
            g.add("httpHeaders", array: get.headers.map { .object([("name", .string($0.name)), ("value", .string($0.value))]) })
            o.add("httpGet", g.value)
        case .tcpSocket(let socket):
            var t = JSONObjectBuilder()
            t.add("port", port(socket.port))
            t.add("host", socket.host)
            o.add("tcpSocket", t.value)
        case .grpc(let grpc):
            var g = JSONObjectBuilder()
            g.add("port", .int(grpc.port))
            g.add("service", grpc.service)
            o.add("grpc", g.value)
        }
        if probe.initialDelaySeconds != 0 { o.add("initialDelaySeconds", .int(probe.initialDelaySeconds)) }
        o.add("timeoutSeconds", .int(probe.timeoutSeconds))
        o.add("periodSeconds", .int(probe.periodSeconds))
        o.add("successThreshold", .int(probe.successThreshold))
        o.add("failureThreshold", .int(probe.failureThreshold))
        return o.value
    }

    static func node(_ node: Node, into o: inout JSONObjectBuilder) {
        var s = JSONObjectBuilder()
        s.add("podCIDR", node.podCIDRs.first ?? "")
        s.add("podCIDRs", strings: node.podCIDRs)
        o.add("spec", s.value)
        var st = JSONObjectBuilder()
        let pods = JSONValue.object([("pods", .string(String(node.maxPods)))])
        st.add("capacity", pods)
        st.add("allocatable", pods)
        st.add("addresses", array: node.addresses.map { .object([("type", .string($0.type)), ("address", .string($0.address))]) })
        o.add("status", st.value)
    }

    static func reference(_ ref: ObjectReference?) -> JSONValue? {
        guard let ref else { return nil }
        var r = JSONObjectBuilder()
        r.add("kind", ref.kind)
        r.add("namespace", ref.namespace)
        r.add("name", ref.name)
        return r.value
    }

    static func endpointPort(_ port: EndpointPort) -> JSONValue {
        var p = JSONObjectBuilder()
        p.add("name", port.name)
        p.add("port", port.port)
        p.add("protocol", port.protocol.rawValue)
        p.add("appProtocol", port.appProtocol)
        return p.value
    }

    static func subset(_ subset: Endpoints.Subset) -> JSONValue {
        func address(_ a: Endpoints.Address) -> JSONValue {
            var o = JSONObjectBuilder()
            o.add("ip", a.ip)
            o.add("hostname", a.hostname)
            o.add("nodeName", a.nodeName)
            if let ref = reference(a.targetRef) { o.add("targetRef", ref) }
            return o.value
        }
        var s = JSONObjectBuilder()
        s.add("addresses", array: subset.addresses.map(address))
        s.add("notReadyAddresses", array: subset.notReadyAddresses.map(address))
        s.add("ports", array: subset.ports.map(endpointPort))
        return s.value
    }

    static func endpointSlice(_ slice: EndpointSlice, into o: inout JSONObjectBuilder) {
        o.add("addressType", slice.addressType.rawValue)
        o.add("endpoints", .array(slice.endpoints.map { endpoint in
            var e = JSONObjectBuilder()
            e.add("addresses", .array(endpoint.addresses.map(JSONValue.string)))
            var c = JSONObjectBuilder()
            c.add("ready", endpoint.conditions.ready)
            c.add("serving", endpoint.conditions.serving)
            c.add("terminating", endpoint.conditions.terminating)
            e.add("conditions", c.value)
            e.add("hostname", endpoint.hostname)
            e.add("nodeName", endpoint.nodeName)
            e.add("zone", endpoint.zone)
            if let ref = reference(endpoint.targetRef) { e.add("targetRef", ref) }
            return e.value
        }))
        o.add("ports", array: slice.ports.map(endpointPort))
    }
}

extension RegistryObject {
    /// The object as Kubernetes' JSON (what kube-apiserver answers a GET with).
    public var kubernetesJSON: JSONValue { ObjectEncoding.encode(self) }
}
