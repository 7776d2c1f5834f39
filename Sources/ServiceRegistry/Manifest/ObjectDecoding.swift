/// Decoding of each kind from a manifest node: Kubernetes field names and defaults, strict about
/// unknown fields, silent about the Kubernetes fields this registry has no use for.
enum ObjectDecoding {
    static let ignoredMetadata: Set<String> = [
        "generateName", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers", "managedFields",
    ]
    static let ignoredServiceSpec: Set<String> = [
        "allocateLoadBalancerNodePorts", "loadBalancerClass", "loadBalancerSourceRanges",
        "healthCheckNodePort", "trafficDistribution", "topologyKeys",
    ]
    static let ignoredPodSpec: Set<String> = [
        "volumes", "initContainers", "ephemeralContainers", "restartPolicy", "terminationGracePeriodSeconds",
        "activeDeadlineSeconds", "dnsConfig", "nodeSelector", "serviceAccountName", "serviceAccount",
        "automountServiceAccountToken", "hostPID", "hostIPC", "shareProcessNamespace",
        "securityContext", "imagePullSecrets", "affinity", "schedulerName", "tolerations", "hostAliases",
        "priorityClassName", "priority", "readinessGates", "runtimeClassName", "enableServiceLinks",
        "preemptionPolicy", "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers",
        "schedulingGates", "resourceClaims", "resources",
    ]
    static let ignoredPodStatus: Set<String> = [
        "hostIP", "hostIPs", "startTime", "initContainerStatuses", "qosClass", "message",
        "reason", "nominatedNodeName", "ephemeralContainerStatuses", "resize", "resourceClaimStatuses", "observedGeneration",
    ]
    static let ignoredNodeSpec: Set<String> = ["providerID", "unschedulable", "taints", "configSource", "externalID"]
    static let ignoredNodeStatus: Set<String> = [
        "conditions", "nodeInfo", "images", "daemonEndpoints", "volumesInUse", "volumesAttached", "phase",
        "config", "features", "runtimeHandlers",
    ]

    /// Metadata the server sets: never kept from what a client wrote.
    static let serverSetMetadata: Set<String> = [
        "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
        "deletionGracePeriodSeconds", "managedFields",
    ]

    static func metadata(_ r: inout FieldReader, _ node: ManifestNode?, namespaced: Bool) -> ObjectMeta {
        var meta = ObjectMeta(name: "")
        r.object(node, "metadata", ignored: ignoredMetadata, discarded: serverSetMetadata) { r, c in
            meta.name = r.string(c["name"], "metadata.name") ?? ""
            meta.namespace = r.string(c["namespace"], "metadata.namespace") ?? ""
            meta.labels = r.stringMap(c["labels"], "metadata.labels") ?? [:]
            meta.annotations = r.stringMap(c["annotations"], "metadata.annotations") ?? [:]
        }
        if namespaced && meta.namespace.isEmpty { meta.namespace = "default" }
        if !namespaced { meta.namespace = "" }
        return meta
    }

    static func objectReference(_ r: inout FieldReader, _ node: ManifestNode?, _ path: String) -> ObjectReference? {
        var ref: ObjectReference? = nil
        r.object(node, path, ignored: ["uid", "apiVersion", "resourceVersion", "fieldPath"],
                 discarded: ["uid", "apiVersion", "resourceVersion", "fieldPath"]) { r, c in
            ref = ObjectReference(kind: r.string(c["kind"], "\(path).kind") ?? "",
                                  namespace: r.string(c["namespace"], "\(path).namespace") ?? "",
                                  name: r.string(c["name"], "\(path).name") ?? "")
        }
        return ref
    }

    static func endpointPorts(_ r: inout FieldReader, _ node: ManifestNode?, _ path: String) -> [EndpointPort] {
        var ports: [EndpointPort] = []
        r.array(node, path) { r, item, p in
            r.object(item, p) { r, c in
                ports.append(EndpointPort(name: r.string(c["name"], "\(p).name") ?? "",
                                          port: r.int(c["port"], "\(p).port") ?? 0,
                                          protocol: r.choice(c["protocol"], "\(p).protocol", TransportProtocol.self) ?? .tcp,
                                          appProtocol: r.string(c["appProtocol"], "\(p).appProtocol") ?? ""))
            }
        }
        return ports
    }

    static func service(_ r: inout FieldReader, _ c: ObjectCursor) -> Service {
        var service = Service(metadata: metadata(&r, c["metadata"], namespaced: true))
        r.object(c["spec"], "spec", ignored: ignoredServiceSpec) { r, c in
            var spec = Service.Spec()
            spec.type = r.choice(c["type"], "spec.type", Service.ServiceType.self) ?? .clusterIP
            spec.clusterIP = r.string(c["clusterIP"], "spec.clusterIP") ?? ""
            spec.clusterIPs = r.strings(c["clusterIPs"], "spec.clusterIPs")
            r.array(c["ipFamilies"], "spec.ipFamilies") { r, item, p in
                if let f = r.choice(item, p, IPFamily.self) { spec.ipFamilies.append(f) }
            }
            spec.ipFamilyPolicy = r.choice(c["ipFamilyPolicy"], "spec.ipFamilyPolicy", Service.IPFamilyPolicy.self)
            r.array(c["ports"], "spec.ports") { r, item, p in
                r.object(item, p, ignored: ["appProtocol"]) { r, c in
                    spec.ports.append(Service.Port(
                        name: r.string(c["name"], "\(p).name") ?? "",
                        protocol: r.choice(c["protocol"], "\(p).protocol", TransportProtocol.self) ?? .tcp,
                        port: r.int(c["port"], "\(p).port") ?? 0,
                        targetPort: r.intOrString(c["targetPort"], "\(p).targetPort"),
                        nodePort: r.int(c["nodePort"], "\(p).nodePort") ?? 0))
                }
            }
            spec.selector = r.stringMap(c["selector"], "spec.selector")
            spec.externalName = r.string(c["externalName"], "spec.externalName") ?? ""
            spec.loadBalancerIP = r.string(c["loadBalancerIP"], "spec.loadBalancerIP") ?? ""
            spec.externalIPs = r.strings(c["externalIPs"], "spec.externalIPs")
            spec.sessionAffinity = r.choice(c["sessionAffinity"], "spec.sessionAffinity", Service.SessionAffinity.self) ?? .none
            r.object(c["sessionAffinityConfig"], "spec.sessionAffinityConfig") { r, c in
                r.object(c["clientIP"], "spec.sessionAffinityConfig.clientIP") { r, c in
                    spec.sessionAffinityTimeoutSeconds = r.int(c["timeoutSeconds"], "spec.sessionAffinityConfig.clientIP.timeoutSeconds")
                }
            }
            spec.externalTrafficPolicy = r.choice(c["externalTrafficPolicy"], "spec.externalTrafficPolicy", Service.TrafficPolicy.self)
            spec.internalTrafficPolicy = r.choice(c["internalTrafficPolicy"], "spec.internalTrafficPolicy", Service.TrafficPolicy.self)
            spec.publishNotReadyAddresses = r.bool(c["publishNotReadyAddresses"], "spec.publishNotReadyAddresses") ?? false
            service.spec = spec
        }
        r.object(c["status"], "status", ignored: ["conditions"]) { r, c in
            r.object(c["loadBalancer"], "status.loadBalancer") { r, c in
                r.array(c["ingress"], "status.loadBalancer.ingress") { r, item, p in
                    r.object(item, p, ignored: ["hostname", "ports", "ipMode"], discarded: ["hostname", "ports", "ipMode"]) { r, c in
                        if let ip = r.string(c["ip"], "\(p).ip") { service.status.loadBalancerIngress.append(ip) }
                    }
                }
            }
        }
        return service
    }

    static func pod(_ r: inout FieldReader, _ c: ObjectCursor) -> Pod {
        var pod = Pod(metadata: metadata(&r, c["metadata"], namespaced: true))
        r.object(c["spec"], "spec", ignored: ignoredPodSpec) { r, c in
            pod.spec.hostname = r.string(c["hostname"], "spec.hostname") ?? ""
            pod.spec.subdomain = r.string(c["subdomain"], "spec.subdomain") ?? ""
            pod.spec.nodeName = r.string(c["nodeName"], "spec.nodeName") ?? ""
            pod.spec.hostNetwork = r.bool(c["hostNetwork"], "spec.hostNetwork") ?? false
            pod.spec.dnsPolicy = r.choice(c["dnsPolicy"], "spec.dnsPolicy", Pod.DNSPolicy.self) ?? .clusterFirst
            r.array(c["containers"], "spec.containers") { r, item, p in
                // A container has many fields (env, probes, resources, ...); only its ports matter
                // here, and the others are kept as written.
                r.object(item, p, ignoreUnknown: true, preserveUnknown: true) { r, c in
                    var container = Pod.Container(name: r.string(c["name"], "\(p).name") ?? "",
                                                  image: r.string(c["image"], "\(p).image") ?? "")
                    r.array(c["ports"], "\(p).ports") { r, item, pp in
                        r.object(item, pp, ignored: ["hostPort", "hostIP"]) { r, c in
                            container.ports.append(Pod.ContainerPort(
                                name: r.string(c["name"], "\(pp).name") ?? "",
                                containerPort: r.int(c["containerPort"], "\(pp).containerPort") ?? 0,
                                protocol: r.choice(c["protocol"], "\(pp).protocol", TransportProtocol.self) ?? .tcp))
                        }
                    }
                    container.readinessProbe = probe(&r, c["readinessProbe"], "\(p).readinessProbe")
                    container.startupProbe = probe(&r, c["startupProbe"], "\(p).startupProbe")
                    pod.spec.containers.append(container)
                }
            }
        }
        r.object(c["status"], "status", ignored: ignoredPodStatus) { r, c in
            pod.status.phase = r.string(c["phase"], "status.phase") ?? ""
            pod.status.podIP = r.string(c["podIP"], "status.podIP") ?? ""
            r.array(c["podIPs"], "status.podIPs") { r, item, p in
                r.object(item, p) { r, c in
                    if let ip = r.string(c["ip"], "\(p).ip") { pod.status.podIPs.append(ip) }
                }
            }
            r.array(c["conditions"], "status.conditions") { r, item, p in
                r.object(item, p, ignoreUnknown: true) { r, c in
                    if r.string(c["type"], "\(p).type") == "Ready" {
                        pod.status.isReady = r.string(c["status"], "\(p).status") == "True"
                        pod.status.readyProbeTime = r.timestamp(c["lastProbeTime"], "\(p).lastProbeTime")
                        pod.status.readyTransitionTime = r.timestamp(c["lastTransitionTime"], "\(p).lastTransitionTime")
                    }
                }
            }
            r.array(c["containerStatuses"], "status.containerStatuses") { r, item, p in
                r.object(item, p, ignoreUnknown: true) { r, c in
                    let name = r.string(c["name"], "\(p).name") ?? ""
                    let ready = r.bool(c["ready"], "\(p).ready") ?? false
                    pod.status.containerStatuses.append(.init(name: name, ready: ready, started: r.bool(c["started"], "\(p).started")))
                }
            }
        }
        if pod.status.podIP.isEmpty, let first = pod.status.podIPs.first { pod.status.podIP = first }
        if pod.status.podIPs.isEmpty && !pod.status.podIP.isEmpty { pod.status.podIPs = [pod.status.podIP] }
        return pod
    }

    /// A container's probe: exactly one action, and the timings with kube-apiserver's defaults
    /// for what is left out or 0 (negative values stay, for validation to refuse).
    static func probe(_ r: inout FieldReader, _ node: ManifestNode?, _ path: String) -> Probe? {
        var probe: Probe? = nil
        r.object(node, path, ignored: ["terminationGracePeriodSeconds"]) { r, c in
            var actions: [(String, Probe.Action)] = []
            r.object(c["httpGet"], "\(path).httpGet") { r, c in
                let p = "\(path).httpGet"
                var get = Probe.HTTPGet(port: r.intOrString(c["port"], "\(p).port") ?? .int(0))
                get.host = r.string(c["host"], "\(p).host") ?? ""
                get.scheme = r.choice(c["scheme"], "\(p).scheme", Probe.HTTPGet.Scheme.self) ?? .http
                get.path = r.string(c["path"], "\(p).path") ?? "/"
                r.array(c["httpHeaders"], "\(p).httpHeaders") { r, item, hp in
                    r.object(item, hp) { r, c in
                        get.headers.append(Probe.HTTPGet.Header(name: r.string(c["name"], "\(hp).name") ?? "",
                                                                value: r.string(c["value"], "\(hp).value") ?? ""))
                    }
                }
                actions.append(("httpGet", .httpGet(get)))
            }
            r.object(c["tcpSocket"], "\(path).tcpSocket") { r, c in
                let p = "\(path).tcpSocket"
                actions.append(("tcpSocket", .tcpSocket(Probe.TCPSocket(host: r.string(c["host"], "\(p).host") ?? "",
                                                                         port: r.intOrString(c["port"], "\(p).port") ?? .int(0)))))
            }
            r.object(c["grpc"], "\(path).grpc") { r, c in
                let p = "\(path).grpc"
                actions.append(("grpc", .grpc(Probe.GRPC(port: r.int(c["port"], "\(p).port") ?? 0,
                                                         service: r.string(c["service"], "\(p).service") ?? ""))))
            }
            r.object(c["exec"], "\(path).exec") { r, c in
                actions.append(("exec", .exec(command: r.strings(c["command"], "\(path).exec.command"))))
            }
            func timing(_ key: String, default value: Int) -> Int {
                let given = r.int(c[key], "\(path).\(key)") ?? 0
                return given == 0 ? value : given
            }
            let initialDelay = timing("initialDelaySeconds", default: 0), period = timing("periodSeconds", default: 10)
            let timeout = timing("timeoutSeconds", default: 1), success = timing("successThreshold", default: 1)
            let failure = timing("failureThreshold", default: 3)
            guard let (_, action) = actions.first else {
                if let node { r.fail(FieldError(path, .required(detail: "must specify a handler type")), at: node.position) }
                return
            }
            for (name, _) in actions.dropFirst() {
                r.fail(FieldError("\(path).\(name)", .forbidden(detail: "may not specify more than 1 handler type")),
                       at: r.positions["\(path).\(name)"] ?? node!.position)
            }
            probe = Probe(action: action, initialDelaySeconds: initialDelay, periodSeconds: period, timeoutSeconds: timeout,
                          successThreshold: success, failureThreshold: failure)
        }
        return probe
    }

    static func node(_ r: inout FieldReader, _ c: ObjectCursor) -> Node {
        var node = Node(metadata: metadata(&r, c["metadata"], namespaced: false))
        r.object(c["spec"], "spec", ignored: ignoredNodeSpec) { r, c in
            let single = r.string(c["podCIDR"], "spec.podCIDR")
            node.podCIDRs = r.strings(c["podCIDRs"], "spec.podCIDRs")
            if node.podCIDRs.isEmpty, let single { node.podCIDRs = [single] }
        }
        r.object(c["status"], "status", ignored: ignoredNodeStatus) { r, c in
            r.array(c["addresses"], "status.addresses") { r, item, p in
                r.object(item, p) { r, c in
                    node.addresses.append(Node.Address(type: r.string(c["type"], "\(p).type") ?? "",
                                                       address: r.string(c["address"], "\(p).address") ?? ""))
                }
            }
            for field in ["allocatable", "capacity"] {
                r.object(c[field], "status.\(field)", ignoreUnknown: true) { r, c in
                    let path = "status.\(field).pods"
                    guard let value = c["pods"] else { return }
                    // A resource quantity: "110" or 110.
                    if case .scalar(let s, _, _) = value, let n = Int(s), n > 0 {
                        node.maxPods = n
                        r.positions[path] = value.position
                    } else {
                        r.fail(FieldError(path, .wrongType(detail: "expected a pod count, got \(value.shown)")), at: value.position)
                    }
                }
            }
        }
        return node
    }

    static func endpoints(_ r: inout FieldReader, _ c: ObjectCursor) -> Endpoints {
        var endpoints = Endpoints(metadata: metadata(&r, c["metadata"], namespaced: true))
        r.array(c["subsets"], "subsets") { r, item, p in
            r.object(item, p) { r, c in
                var subset = Endpoints.Subset()
                for (field, ready) in [("addresses", true), ("notReadyAddresses", false)] {
                    r.array(c[field], "\(p).\(field)") { r, item, ap in
                        r.object(item, ap) { r, c in
                            let address = Endpoints.Address(
                                ip: r.string(c["ip"], "\(ap).ip") ?? "",
                                hostname: r.string(c["hostname"], "\(ap).hostname") ?? "",
                                nodeName: r.string(c["nodeName"], "\(ap).nodeName") ?? "",
                                targetRef: objectReference(&r, c["targetRef"], "\(ap).targetRef"))
                            if ready { subset.addresses.append(address) } else { subset.notReadyAddresses.append(address) }
                        }
                    }
                }
                subset.ports = endpointPorts(&r, c["ports"], "\(p).ports")
                endpoints.subsets.append(subset)
            }
        }
        return endpoints
    }

    static func endpointSlice(_ r: inout FieldReader, _ c: ObjectCursor) -> EndpointSlice {
        var slice = EndpointSlice(metadata: metadata(&r, c["metadata"], namespaced: true))
        if let type = r.choice(c["addressType"], "addressType", EndpointSlice.AddressType.self) {
            slice.addressType = type
        } else if c["addressType"] == nil {
            r.fail(FieldError("addressType", .required(detail: "")), at: c.pairs.first?.keyPosition ?? .init(line: 0, column: 0))
        }
        // Exactly as many as written (appending one by one would leave up to half again as
        // much capacity, at 100,000 endpoints some 1.5 MB the registry keeps).
        if case .sequence(let items, _)? = c["endpoints"] { slice.endpoints.reserveCapacity(items.count) }
        r.array(c["endpoints"], "endpoints") { r, item, p in
            r.object(item, p, ignored: ["hints", "deprecatedTopology"]) { r, c in
                var endpoint = EndpointSlice.Endpoint(addresses: r.strings(c["addresses"], "\(p).addresses"))
                r.object(c["conditions"], "\(p).conditions") { r, c in
                    endpoint.conditions = EndpointSlice.Conditions(
                        ready: r.bool(c["ready"], "\(p).conditions.ready"),
                        serving: r.bool(c["serving"], "\(p).conditions.serving"),
                        terminating: r.bool(c["terminating"], "\(p).conditions.terminating"))
                }
                endpoint.hostname = r.string(c["hostname"], "\(p).hostname") ?? ""
                endpoint.nodeName = r.string(c["nodeName"], "\(p).nodeName") ?? ""
                endpoint.zone = r.string(c["zone"], "\(p).zone") ?? ""
                endpoint.targetRef = objectReference(&r, c["targetRef"], "\(p).targetRef")
                slice.endpoints.append(endpoint)
            }
        }
        slice.ports = endpointPorts(&r, c["ports"], "ports")
        return slice
    }
}
