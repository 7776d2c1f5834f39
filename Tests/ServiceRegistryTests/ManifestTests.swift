import Testing
@testable import ServiceRegistry

let webService = """
    apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
      labels: {app: web}
    spec:
      selector:
        app: web
      ports:
      - name: http
        port: 80
        targetPort: http
      - name: metrics
        port: 9090
        protocol: TCP
    """

@Suite struct ManifestDecodingTests {
    @Test func decodesAServiceWithDefaults() throws {
        let entries = Manifest.decode(webService, file: "web.yaml")
        #expect(entries.count == 1)
        guard case .service(let service) = try entries[0].result.get() else { Issue.record("not a service"); return }
        #expect(service.metadata.name == "web")
        #expect(service.metadata.namespace == "shop")
        #expect(service.spec.type == .clusterIP)
        #expect(service.spec.selector == ["app": "web"])
        #expect(service.spec.ports == [
            Service.Port(name: "http", protocol: .tcp, port: 80, targetPort: .string("http")),
            Service.Port(name: "metrics", protocol: .tcp, port: 9090),
        ])
        #expect(service.spec.ports[1].effectiveTargetPort == .int(9090))
        #expect(service.spec.sessionAffinity == .none)
    }

    @Test func multiDocumentListsAndJSON() throws {
        let text = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            ---
            # an empty document is skipped
            ---
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Pod
              metadata: {name: web-1, namespace: shop, labels: {app: web}}
              spec:
                hostname: web-1
                subdomain: web
                nodeName: node-a
                containers:
                - name: app
                  image: nginx
                  env: [{name: A, value: b}]
                  ports: [{name: http, containerPort: 8080}]
              status:
                podIP: 10.244.1.5
                conditions: [{type: Ready, status: "True"}]
            - {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}}, "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.7"], "conditions": {"ready": true}}], "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}
            """
        let entries = Manifest.decode(text, file: "all.yaml")
        let objects = try entries.map { try $0.result.get() }
        #expect(objects.map(\.key.description) == ["Namespace shop", "Pod shop/web-1", "EndpointSlice default/ext-1"])
        #expect(entries.map(\.document) == [1, 3, 3])
        guard case .pod(let pod) = objects[1], case .endpointSlice(let slice) = objects[2] else { return }
        #expect(pod.isReady)
        #expect(pod.spec.containers[0].ports == [Pod.ContainerPort(name: "http", containerPort: 8080)])
        #expect(pod.status.podIPs == ["10.244.1.5"])
        #expect(slice.serviceName == "ext")
        #expect(slice.endpoints[0].conditions.ready == true)
    }

    struct Bad: CustomStringConvertible, Sendable {
        let name: String
        let yaml: String
        let message: String
        let line: Int
        var description: String { name }
    }

    /// A pod whose one container has `probe` (YAML at the container's indentation), on line 7.
    static func probePod(_ probe: String) -> String {
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    \(probe)\n"
    }

    static func service(_ spec: String, name: String = "web") -> String {
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: \(name)\nspec:\n" + spec
    }

    static let bad: [Bad] = [
        Bad(name: "port out of range", yaml: service("  ports:\n  - name: http\n    port: 80\n  - name: big\n    port: 70000\n"),
            message: "The Service \"web\" is invalid: spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive", line: 10),
        Bad(name: "two errors", yaml: service("  ports:\n  - port: 80\n  - port: 0\n"),
            message: "The Service \"web\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value, spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive]", line: 7),
        Bad(name: "duplicate port name", yaml: service("  ports:\n  - {name: http, port: 80}\n  - {name: http, port: 81}\n"),
            message: "The Service \"web\" is invalid: spec.ports[1].name: Duplicate value: \"http\"", line: 8),
        Bad(name: "port name not IANA_SVC_NAME", yaml: service("  ports:\n  - {name: a-very-long-port-name, port: 80}\n"),
            message: "The Service \"web\" is invalid: spec.ports[0].name: Invalid value: \"a-very-long-port-name\": must be no more than 15 characters", line: 7),
        Bad(name: "unsupported type", yaml: service("  type: Magic\n  ports: [{port: 80}]\n"),
            message: "The Service \"web\" is invalid: spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"", line: 6),
        Bad(name: "unsupported protocol", yaml: service("  ports: [{port: 80, protocol: HTTP}]\n"),
            message: "The Service \"web\" is invalid: spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"", line: 6),
        Bad(name: "bad name", yaml: service("  ports: [{port: 80}]\n", name: "Web_1"),
            message: "The Service \"Web_1\" is invalid: metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')", line: 4),
        Bad(name: "port as a string", yaml: service("  ports: [{port: \"80\"}]\n"),
            message: "The Service \"web\" is invalid: spec.ports[0].port: expected an integer, got \"80\"", line: 6),
        Bad(name: "unknown field", yaml: service("  portz: [{port: 80}]\n  ports: [{port: 80}]\n"),
            message: "The Service \"web\" is invalid: unknown field \"spec.portz\"", line: 6),
        Bad(name: "unknown top-level field", yaml: service("  ports: [{port: 80}]\nextra: 1\n"),
            message: "The Service \"web\" is invalid: unknown field \"extra\"", line: 7),
        Bad(name: "no ports", yaml: service("  selector: {app: web}\n"),
            message: "The Service \"web\" is invalid: spec.ports: Required value", line: 5),
        Bad(name: "nodePort on ClusterIP", yaml: service("  ports: [{port: 80, nodePort: 30080}]\n"),
            message: "The Service \"web\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'", line: 6),
        Bad(name: "ExternalName without a name", yaml: service("  type: ExternalName\n"),
            message: "The Service \"web\" is invalid: spec.externalName: Required value", line: 5),
        Bad(name: "ExternalName not a DNS name", yaml: service("  type: ExternalName\n  externalName: \"bad_name.example.com\"\n"),
            message: "The Service \"web\" is invalid: spec.externalName: Invalid value: \"bad_name.example.com\": " + NameRules.dns1123SubdomainMessage, line: 7),
        Bad(name: "bad cluster IP", yaml: service("  clusterIP: 10.96.0.300\n  ports: [{port: 80}]\n"),
            message: "The Service \"web\" is invalid: spec.clusterIP: Invalid value: \"10.96.0.300\": must be empty, 'None', or a valid IP address", line: 6),
        Bad(name: "affinity timeout", yaml: service("  ports: [{port: 80}]\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n"),
            message: "The Service \"web\" is invalid: spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400", line: 8),
        Bad(name: "bad selector value", yaml: service("  ports: [{port: 80}]\n  selector: {app: \"-web\"}\n"),
            message: "The Service \"web\" is invalid: spec.selector[app]: Invalid value: \"-web\": " + NameRules.labelValueMessage, line: 7),
        Bad(name: "affinity config without ClientIP", yaml: service("  ports: [{port: 80}]\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n"),
            message: "The Service \"web\" is invalid: spec.sessionAffinityConfig: Forbidden: must not be set when `sessionAffinity` is None", line: 7),
        Bad(name: "external traffic policy on ClusterIP", yaml: service("  ports: [{port: 80}]\n  externalTrafficPolicy: Local\n"),
            message: "The Service \"web\" is invalid: spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services", line: 7),
        Bad(name: "loadBalancerIP on ClusterIP", yaml: service("  ports: [{port: 80}]\n  loadBalancerIP: 192.0.2.1\n"),
            message: "The Service \"web\" is invalid: spec.loadBalancerIP: Forbidden: may only be used when `type` is 'LoadBalancer'", line: 7),
        Bad(name: "bad external IP", yaml: service("  ports: [{port: 80}]\n  externalIPs: [1.2.3]\n"),
            message: "The Service \"web\" is invalid: spec.externalIPs[0]: Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)", line: 7),
        Bad(name: "duplicate port and protocol", yaml: service("  ports: [{name: a, port: 80}, {name: b, port: 80}]\n"),
            message: "The Service \"web\" is invalid: spec.ports[1]: Duplicate value: \"80/TCP\"", line: 6),
        Bad(name: "headless NodePort", yaml: service("  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n"),
            message: "The Service \"web\" is invalid: spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services", line: 7),
        Bad(name: "ExternalName with a cluster IP", yaml: service("  type: ExternalName\n  externalName: example.com\n  clusterIP: 10.96.0.5\n"),
            message: "The Service \"web\" is invalid: spec.clusterIP: Forbidden: may not be set for ExternalName services", line: 8),
        Bad(name: "two IPv4 cluster IPs", yaml: service("  clusterIPs: [10.96.0.5, 10.96.0.6]\n  ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80}]\n"),
            message: "The Service \"web\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.5\",\"10.96.0.6\"]: may specify no more than one IP for each IP family", line: 6),
        Bad(name: "SingleStack with two families", yaml: service("  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 80}]\n"),
            message: "The Service \"web\" is invalid: spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified", line: 6),
        Bad(name: "target port out of range", yaml: service("  ports: [{port: 80, targetPort: 0}]\n"),
            message: "The Service \"web\" is invalid: spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive", line: 6),
        Bad(name: "named target port not IANA_SVC_NAME", yaml: service("  ports: [{port: 80, targetPort: Http}]\n"),
            message: "The Service \"web\" is invalid: spec.ports[0].targetPort: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)", line: 6),
        Bad(name: "bad label key", yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {\"-x\": v}}\nspec: {ports: [{port: 80}]}\n",
            message: "The Service \"web\" is invalid: metadata.labels: Invalid value: \"-x\": " + NameRules.qualifiedNameMessage, line: 3),
        Bad(name: "namespace name", yaml: "apiVersion: v1\nkind: Namespace\nmetadata: {name: Shop}\n",
            message: "The Namespace \"Shop\" is invalid: metadata.name: Invalid value: \"Shop\": " + NameRules.dns1123LabelMessage, line: 3),
        Bad(name: "pod without containers", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostname: h}\n",
            message: "The Pod \"p\" is invalid: spec.containers: Required value", line: 4),
        Bad(name: "pod DNS policy", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {dnsPolicy: Cluster, containers: [{name: c}]}\n",
            message: "The Pod \"p\" is invalid: spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"", line: 4),
        Bad(name: "pod host network", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: maybe, containers: [{name: c}]}\n",
            message: "The Pod \"p\" is invalid: spec.hostNetwork: expected true or false, got \"maybe\"", line: 4),
        Bad(name: "container port name", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{name: a--b, containerPort: 80}]}]}\n",
            message: "The Pod \"p\" is invalid: spec.containers[0].ports[0].name: Invalid value: \"a--b\": must not contain consecutive hyphens", line: 4),
        Bad(name: "node pod CIDR", yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: node1}\nspec: {podCIDR: 10.244.1.1/24}\n",
            message: "The Node \"node1\" is invalid: spec.podCIDRs[0]: Invalid value: \"10.244.1.1/24\": invalid CIDR \"10.244.1.1/24\": host bits are set (did you mean the network address?)", line: 4),
        Bad(name: "endpoints with a bad IP", yaml: "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets: [{addresses: [{ip: nope}], ports: [{port: 80}]}]\n",
            message: "The Endpoints \"e\" is invalid: subsets[0].addresses[0].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)", line: 4),
        Bad(name: "slice without addressType", yaml: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\nendpoints: []\n",
            message: "The EndpointSlice \"s\" is invalid: addressType: Required value", line: 1),
        Bad(name: "YAML 1.1 booleans are not strings", yaml: "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n",
            message: "The Node \"\" is invalid: metadata.name: expected a string, got n (YAML reads it as a boolean: quote it)", line: 3),
        Bad(name: "unknown kind", yaml: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            message: "no matches for kind \"Deployment\" in version \"apps/v1\"", line: 1),
        Bad(name: "missing kind", yaml: "apiVersion: v1\nmetadata: {name: x}\n",
            message: "Object 'Kind' is missing", line: 1),
        Bad(name: "not YAML", yaml: "apiVersion: v1\nkind: [Service\n",
            message: "not valid YAML or JSON: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 7)", line: 3),
        Bad(name: "pod with a bad IP", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0}\n",
            message: "The Pod \"p\" is invalid: status.podIP: Invalid value: \"10.0.0\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)", line: 5),
        Bad(name: "probe without an action", yaml: probePod("readinessProbe: {periodSeconds: 5}"),
            message: "The Pod \"p\" is invalid: spec.containers[0].readinessProbe: Required value: must specify a handler type", line: 7),
        Bad(name: "probe with two actions", yaml: probePod("readinessProbe: {tcpSocket: {port: 80}, httpGet: {port: 80}}"),
            message: "The Pod \"p\" is invalid: spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type", line: 7),
        Bad(name: "probe period below 0", yaml: probePod("readinessProbe:\n      tcpSocket: {port: 80}\n      periodSeconds: -1"),
            message: "The Pod \"p\" is invalid: spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0", line: 9),
        Bad(name: "startup probe success threshold", yaml: probePod("startupProbe: {tcpSocket: {port: 80}, successThreshold: 2}"),
            message: "The Pod \"p\" is invalid: spec.containers[0].startupProbe.successThreshold: Invalid value: 2: must be 1", line: 7),
        Bad(name: "probe port name", yaml: probePod("readinessProbe: {httpGet: {port: a--b, path: /ready}}"),
            message: "The Pod \"p\" is invalid: spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"a--b\": must not contain consecutive hyphens", line: 7),
        Bad(name: "probe host that is a name", yaml: probePod("readinessProbe: {tcpSocket: {port: 80, host: db.example}}"),
            message: "The Pod \"p\" is invalid: spec.containers[0].readinessProbe.tcpSocket.host: Invalid value: \"db.example\": must be an IP address here (the pod's IP when left out)", line: 7),
        Bad(name: "probe field misspelt", yaml: probePod("readinessProbe: {tcpSocket: {port: 80}, periodSecond: 5}"),
            message: "The Pod \"p\" is invalid: unknown field \"spec.containers[0].readinessProbe.periodSecond\"", line: 7),
        Bad(name: "heartbeat TTL that is not a duration", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {clusterdns.io/ready-ttl: soon}}\nspec: {containers: [{name: c}]}\n",
            message: "The Pod \"p\" is invalid: metadata.annotations[clusterdns.io/ready-ttl]: Invalid value: \"soon\": must be a duration of at least 1s, such as 15s", line: 3),
        Bad(name: "heartbeat TTL below a second", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {clusterdns.io/ready-ttl: 500ms}}\nspec: {containers: [{name: c}]}\n",
            message: "The Pod \"p\" is invalid: metadata.annotations[clusterdns.io/ready-ttl]: Invalid value: \"500ms\": must be a duration of at least 1s, such as 15s", line: 3),
        Bad(name: "condition time that is not RFC 3339", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\nstatus:\n  conditions: [{type: Ready, status: \"True\", lastProbeTime: yesterday}]\n",
            message: "The Pod \"p\" is invalid: status.conditions[0].lastProbeTime: Invalid value: \"yesterday\": expected an RFC 3339 time such as 2026-12-05T03:20:00Z", line: 6),
        Bad(name: "container status readiness as a string", yaml: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\nstatus:\n  containerStatuses: [{name: c, ready: \"yes\"}]\n",
            message: "The Pod \"p\" is invalid: status.containerStatuses[0].ready: expected true or false, got \"yes\"", line: 6),
        Bad(name: "slice address of the wrong family", yaml: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv6\nendpoints: [{addresses: [10.0.0.1]}]\n",
            message: "The EndpointSlice \"s\" is invalid: endpoints[0].addresses[0]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address", line: 5),
        Bad(name: "slice's later address not IPv4", yaml: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2, 10.0.0.300]}]\n",
            message: "The EndpointSlice \"s\" is invalid: endpoints[1].addresses[1]: Invalid value: \"10.0.0.300\": must be a valid IPv4 address", line: 5),
        Bad(name: "slice endpoint without addresses", yaml: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}, {addresses: []}]\n",
            message: "The EndpointSlice \"s\" is invalid: endpoints[1].addresses: Required value: must contain at least 1 address", line: 5),
        Bad(name: "slice endpoint hostname", yaml: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: FQDN\nendpoints: [{addresses: [db.example], hostname: Db_1}]\n",
            message: "The EndpointSlice \"s\" is invalid: endpoints[0].hostname: Invalid value: \"Db_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')", line: 5),
    ]

    @Test(arguments: bad)
    func reportsKubernetesMessages(_ c: Bad) {
        let entries = Manifest.decode(c.yaml, file: "bad.yaml")
        #expect(entries.count == 1)
        guard case .failure(let error) = entries.first?.result else {
            Issue.record("expected an error")
            return
        }
        #expect(error.message == c.message)
        #expect(error.line == c.line)
        #expect(error.file == "bad.yaml")
        #expect(error.document == 1)
    }

    /// Probes read with kube-apiserver's defaults and written back in its field order, so that
    /// a pod read and written again is unchanged.
    @Test func probesAreReadWithTheirDefaultsAndWrittenBack() throws {
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: p, namespace: shop}
            spec:
              containers:
              - name: c
                ports: [{name: health, containerPort: 8086}]
                readinessProbe:
                  httpGet: {path: /ready, port: health, scheme: HTTPS, httpHeaders: [{name: X-Probe, value: "1"}]}
                  periodSeconds: 5
                  terminationGracePeriodSeconds: 30
                startupProbe: {tcpSocket: {port: 8086}, initialDelaySeconds: 2, failureThreshold: 30}
            """
        let object = try #require(Manifest.decode(yaml).first).result.get()
        guard case .pod(let pod) = object else { Issue.record("not a pod"); return }
        let container = try #require(pod.spec.containers.first)
        #expect(container.readinessProbe == Probe(action: .httpGet(Probe.HTTPGet(scheme: .https, path: "/ready", port: .string("health"),
                                                                                headers: [.init(name: "X-Probe", value: "1")])),
                                                  periodSeconds: 5))
        #expect(container.startupProbe == Probe(action: .tcpSocket(Probe.TCPSocket(port: .int(8086))), initialDelaySeconds: 2, failureThreshold: 30))
        let json = object.kubernetesJSON.text
        #expect(json.contains(#""readinessProbe":{"httpGet":{"path":"/ready","port":"health","scheme":"HTTPS","httpHeaders":[{"name":"X-Probe","value":"1"}]},"timeoutSeconds":1,"periodSeconds":5,"successThreshold":1,"failureThreshold":3,"terminationGracePeriodSeconds":30}"#), "\(json)")
        #expect(json.contains(#""startupProbe":{"tcpSocket":{"port":8086},"initialDelaySeconds":2,"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":30}"#), "\(json)")
        let again = try #require(Manifest.decode(json).first).result.get()
        #expect(again == object)
    }

    /// The Ready condition's times and the containers' readiness, as the kubelet writes them
    /// (`kubectl get pod -o yaml`), read and written back unchanged; what else a container
    /// status holds is not kept.
    @Test func readinessStatusIsReadAndWrittenBack() throws {
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: p, namespace: shop, annotations: {clusterdns.io/ready-ttl: 1m30s}}
            spec: {containers: [{name: app}, {name: sidecar}]}
            status:
              phase: Running
              conditions:
              - {type: Initialized, status: "True"}
              - {type: Ready, status: "True", lastProbeTime: "2026-12-05T03:20:00Z", lastTransitionTime: "2026-12-05T05:20:00.5+02:00"}
              podIP: 10.244.0.5
              containerStatuses:
              - {name: app, ready: true, started: true, restartCount: 0, image: app, state: {running: {startedAt: "2026-12-05T03:00:00Z"}}}
              - {name: sidecar, ready: false}
            """
        let object = try #require(Manifest.decode(yaml).first).result.get()
        guard case .pod(let pod) = object else { Issue.record("not a pod"); return }
        #expect(pod.readyTTL == .seconds(90))
        #expect(pod.status.isReady == true)
        #expect(pod.status.readyProbeTime == Timestamp.parse("2026-12-05T03:20:00Z"))
        #expect(pod.status.readyTransitionTime == Timestamp.parse("2026-12-05T03:20:00Z"))
        #expect(pod.status.containerStatuses == [.init(name: "app", ready: true, started: true), .init(name: "sidecar", ready: false)])
        let json = object.kubernetesJSON.text
        #expect(json.contains(#""conditions":[{"type":"Ready","status":"True","lastProbeTime":"2026-12-05T03:20:00Z","lastTransitionTime":"2026-12-05T03:20:00Z"}]"#), "\(json)")
        #expect(json.contains(#""containerStatuses":[{"name":"app","ready":true,"started":true},{"name":"sidecar","ready":false}]"#), "\(json)")
        let again = try #require(Manifest.decode(json).first).result.get()
        #expect(again == object)
    }

    @Test func aBadDocumentDoesNotStopTheOthers() throws {
        let text = Self.service("  ports: [{port: 70000}]\n", name: "bad") + "\n---\n" + webService
        let entries = Manifest.decode(text, file: "mixed.yaml")
        #expect(entries.count == 2)
        guard case .failure(let error) = entries[0].result else { Issue.record("first should fail"); return }
        #expect(error.description.hasPrefix("mixed.yaml:6:"))
        #expect(error.description.contains("document 1: The Service \"bad\" is invalid"))
        #expect(try entries[1].result.get().key.description == "Service shop/web")
        #expect(entries[1].document == 2)
    }

    @Test func internationalisedExternalNameIsAccepted() throws {
        let entries = Manifest.decode(Self.service("  type: ExternalName\n  externalName: bücher.example\n"))
        #expect(throws: Never.self) { try entries[0].result.get() }
    }

    @Test(arguments: [
        ("http", [String]()),
        ("h", []),
        ("abcdefghijklmnop", ["must be no more than 15 characters"]),
        ("Http", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("123", ["must contain at least one letter (a-z)"]),
        ("-ab", ["must not begin or end with a hyphen"]),
    ])
    func ianaServiceNames(_ name: String, _ problems: [String]) {
        #expect(NameRules.ianaServiceName(name) == problems)
    }

    @Test(arguments: [("web", true), ("1web", true), ("web-1", true), ("-web", false), ("Web", false), ("w.eb", false),
                      (String(repeating: "a", count: 63), true), (String(repeating: "a", count: 64), false), ("", false)])
    func dns1123Labels(_ name: String, _ valid: Bool) {
        #expect(NameRules.dns1123Label(name).isEmpty == valid)
    }
}

/// Broken manifests never trap: random byte flips in a real manifest give objects or errors
/// that name a file, a document and a line.
@Suite struct ManifestHostileInputTests {
    @Test func flippedBytesGiveObjectsOrPositionedErrors() {
        var generator = SystemRandomNumberGenerator()
        let bytes = Array((webService + "\n---\n" + webService.replacingOccurrences(of: "name: web", with: "name: api")).utf8)
        let specials = Array("{}[]:,-&*!|>'\"#\t\n 0x.".utf8)
        var refused = 0
        for _ in 0..<1_000 {
            var mutated = bytes
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let at = Int.random(in: 0..<mutated.count, using: &generator)
                mutated[at] = specials.randomElement(using: &generator)!
            }
            for entry in Manifest.decode(String(decoding: mutated, as: UTF8.self), file: "fuzz.yaml") {
                guard case .failure(let error) = entry.result else { continue }
                refused += 1
                #expect(error.file == "fuzz.yaml" && error.document >= 1 && error.line >= 1 && !error.message.isEmpty, "\(error)")
            }
        }
        #expect(refused > 0)
    }
}
