import ServiceRegistry

/// `/openapi/v2`: the schema of every kind served, as kube-apiserver publishes it (kubectl reads
/// the protobuf form, gnostic's OpenAPIv2 `Document`, to validate manifests before sending them
/// and to find the keys lists merge on). It describes what the registry's decoder reads: the
/// fields it uses and the Kubernetes fields it accepts and ignores, so kubectl refuses exactly
/// the unknown fields the server would. Subtrees the decoder accepts whole are free-form.
enum OpenAPI {
    indirect enum FieldType: Sendable {
        case string, integer, boolean, intOrString, any
        case ref(String)
        case array(FieldType)
        case map(FieldType)
    }

    struct Field: Sendable {
        var name: String
        var type: FieldType
        /// The key a list merges on (`x-kubernetes-patch-merge-key`), for strategic merge patches.
        var mergeKey: String? = nil
        /// `x-kubernetes-patch-strategy: merge` without a key: a list of scalars kept as a set.
        var mergePrimitives = false
    }

    struct Definition: Sendable {
        var name: String
        var fields: [Field]
        var required: [String] = []
        /// For a top-level kind: its group, version and kind.
        var kind: ObjectKind? = nil
    }

    static let meta = "io.k8s.apimachinery.pkg.apis.meta.v1."
    static let core = "io.k8s.api.core.v1."
    static let discovery = "io.k8s.api.discovery.v1."

    static func f(_ name: String, _ type: FieldType, key: String? = nil) -> Field { Field(name: name, type: type, mergeKey: key) }
    static func strings(_ names: String...) -> [Field] { names.map { f($0, .string) } }
    static func anys(_ names: String...) -> [Field] { names.map { f($0, .any) } }
    static func top(_ kind: ObjectKind, _ definition: String, _ rest: [Field]) -> Definition {
        Definition(name: definition, fields: strings("apiVersion", "kind") + [f("metadata", .ref(meta + "ObjectMeta"))] + rest, kind: kind)
    }

    static let definitions: [Definition] = [
        Definition(name: meta + "ObjectMeta", fields: strings("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                                                               "creationTimestamp", "deletionTimestamp", "clusterName")
            + [f("generation", .integer), f("deletionGracePeriodSeconds", .integer), f("labels", .map(.string)),
               f("annotations", .map(.string)), f("ownerReferences", .array(.any), key: "uid"),
               Field(name: "finalizers", type: .array(.string), mergePrimitives: true), f("managedFields", .array(.any))]),
        top(.namespace, core + "Namespace", [f("spec", .any), f("status", .any)]),
        top(.service, core + "Service", [f("spec", .ref(core + "ServiceSpec")), f("status", .ref(core + "ServiceStatus"))]),
        Definition(name: core + "ServiceSpec", fields: [f("ports", .array(.ref(core + "ServicePort")), key: "port"), f("selector", .map(.string))]
            + strings("clusterIP", "type", "sessionAffinity", "loadBalancerIP", "externalName", "externalTrafficPolicy",
                      "ipFamilyPolicy", "internalTrafficPolicy", "loadBalancerClass", "trafficDistribution")
            + [f("clusterIPs", .array(.string)), f("externalIPs", .array(.string)), f("ipFamilies", .array(.string)),
               f("loadBalancerSourceRanges", .array(.string)), f("topologyKeys", .array(.string)),
               f("healthCheckNodePort", .integer), f("publishNotReadyAddresses", .boolean), f("allocateLoadBalancerNodePorts", .boolean),
               f("sessionAffinityConfig", .ref(core + "SessionAffinityConfig"))]),
        Definition(name: core + "SessionAffinityConfig", fields: [f("clientIP", .ref(core + "ClientIPConfig"))]),
        Definition(name: core + "ClientIPConfig", fields: [f("timeoutSeconds", .integer)]),
        Definition(name: core + "ServicePort", fields: strings("name", "protocol", "appProtocol")
            + [f("port", .integer), f("targetPort", .intOrString), f("nodePort", .integer)], required: ["port"]),
        Definition(name: core + "ServiceStatus", fields: [f("loadBalancer", .ref(core + "LoadBalancerStatus")), f("conditions", .array(.any))]),
        Definition(name: core + "LoadBalancerStatus", fields: [f("ingress", .array(.ref(core + "LoadBalancerIngress")))]),
        Definition(name: core + "LoadBalancerIngress", fields: strings("ip", "hostname", "ipMode") + [f("ports", .array(.any))]),
        top(.pod, core + "Pod", [f("spec", .ref(core + "PodSpec")), f("status", .ref(core + "PodStatus"))]),
        Definition(name: core + "PodSpec", fields: strings("hostname", "subdomain", "nodeName", "dnsPolicy")
            + [f("hostNetwork", .boolean), f("containers", .array(.ref(core + "Container")), key: "name"), f("initContainers", .array(.any), key: "name"),
               f("ephemeralContainers", .array(.any), key: "name"), f("volumes", .array(.any), key: "name"),
               f("imagePullSecrets", .array(.any), key: "name"), f("hostAliases", .array(.any), key: "ip")]
            + anys("restartPolicy", "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsConfig",
                   "nodeSelector", "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "hostPID",
                   "hostIPC", "shareProcessNamespace", "securityContext", "affinity", "schedulerName", "tolerations",
                   "priorityClassName", "priority", "readinessGates", "runtimeClassName", "enableServiceLinks", "preemptionPolicy",
                   "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
                   "resourceClaims", "resources"),
            required: ["containers"]),
        // Containers are read for their name, image and ports; the rest is accepted as written.
        Definition(name: core + "Container", fields: strings("name", "image")
            + [f("ports", .array(.ref(core + "ContainerPort")), key: "containerPort"), f("env", .array(.any), key: "name"),
               f("volumeMounts", .array(.any), key: "mountPath"), f("volumeDevices", .array(.any), key: "devicePath")]
            + anys("command", "args", "workingDir", "envFrom", "resources", "livenessProbe", "readinessProbe", "startupProbe",
                   "lifecycle", "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin",
                   "stdinOnce", "tty", "resizePolicy", "restartPolicy"),
            required: ["name"]),
        Definition(name: core + "ContainerPort", fields: strings("name", "protocol", "hostIP") + [f("containerPort", .integer), f("hostPort", .integer)],
                   required: ["containerPort"]),
        Definition(name: core + "PodStatus", fields: strings("phase", "podIP", "hostIP", "startTime", "qosClass", "message", "reason",
                                                              "nominatedNodeName")
            + [f("podIPs", .array(.ref(core + "PodIP")), key: "ip"), f("conditions", .array(.any), key: "type")]
            + anys("hostIPs", "containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses", "resize",
                   "resourceClaimStatuses", "observedGeneration")),
        Definition(name: core + "PodIP", fields: strings("ip")),
        top(.node, core + "Node", [f("spec", .ref(core + "NodeSpec")), f("status", .ref(core + "NodeStatus"))]),
        Definition(name: core + "NodeSpec", fields: strings("podCIDR") + [Field(name: "podCIDRs", type: .array(.string), mergePrimitives: true)]
            + anys("providerID", "unschedulable", "taints", "configSource", "externalID")),
        Definition(name: core + "NodeStatus", fields: [f("addresses", .array(.ref(core + "NodeAddress")), key: "type"),
                                                      f("conditions", .array(.any), key: "type"), f("capacity", .map(.any)),
                                                      f("allocatable", .map(.any))]
            + anys("nodeInfo", "images", "daemonEndpoints", "volumesInUse", "volumesAttached", "phase", "config", "features",
                   "runtimeHandlers")),
        Definition(name: core + "NodeAddress", fields: strings("type", "address"), required: ["type", "address"]),
        top(.endpoints, core + "Endpoints", [f("subsets", .array(.ref(core + "EndpointSubset")))]),
        Definition(name: core + "EndpointSubset", fields: [f("addresses", .array(.ref(core + "EndpointAddress"))),
                                                          f("notReadyAddresses", .array(.ref(core + "EndpointAddress"))),
                                                          f("ports", .array(.ref(core + "EndpointPort")))]),
        Definition(name: core + "EndpointAddress", fields: strings("ip", "hostname", "nodeName") + [f("targetRef", .ref(core + "ObjectReference"))],
                   required: ["ip"]),
        Definition(name: core + "EndpointPort", fields: strings("name", "protocol", "appProtocol") + [f("port", .integer)], required: ["port"]),
        Definition(name: core + "ObjectReference", fields: strings("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")),
        top(.endpointSlice, discovery + "EndpointSlice", strings("addressType") + [f("endpoints", .array(.ref(discovery + "Endpoint"))),
                                                                                 f("ports", .array(.ref(discovery + "EndpointPort")))]),
        Definition(name: discovery + "Endpoint", fields: strings("hostname", "nodeName", "zone")
            + [f("addresses", .array(.string)), f("conditions", .ref(discovery + "EndpointConditions")),
               f("targetRef", .ref(core + "ObjectReference")), f("deprecatedTopology", .map(.string)), f("hints", .any)],
                   required: ["addresses"]),
        Definition(name: discovery + "EndpointConditions", fields: [f("ready", .boolean), f("serving", .boolean), f("terminating", .boolean)]),
        Definition(name: discovery + "EndpointPort", fields: strings("name", "protocol", "appProtocol") + [f("port", .integer)]),
    ]

    static let protobufType = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

    /// The document in gnostic's protobuf encoding (`protobufType`).
    static let protobuf: [UInt8] = {
        var document = ProtobufWriter()
        document.string(1, "2.0")
        document.message(2) { info in
            info.string(1, "Kubernetes")
            info.string(2, "v1.20.0-clusterdns")
        }
        document.message(8) { _ in }  // paths: none are described
        document.message(9) { definitions in
            for definition in Self.definitions {
                definitions.message(1) { named in
                    named.string(1, definition.name)
                    named.message(2) { writeObject(definition, into: &$0) }
                }
            }
        }
        return document.bytes
    }()

    static func writeObject(_ definition: Definition, into schema: inout ProtobufWriter) {
        for name in definition.required { schema.string(19, name) }
        schema.message(22) { $0.string(1, "object") }
        schema.message(25) { properties in
            for field in definition.fields {
                properties.message(1) { named in
                    named.string(1, field.name)
                    named.message(2) { writeField(field, into: &$0) }
                }
            }
        }
        if let kind = definition.kind {
            let group = APIResource.of(kind).group
            extensionYAML("x-kubernetes-group-version-kind",
                          "- group: \"\(group)\"\n  kind: \(kind.rawValue)\n  version: v1\n", into: &schema)
        }
    }

    static func writeField(_ field: Field, into schema: inout ProtobufWriter) {
        writeType(field.type, into: &schema)
        if let key = field.mergeKey {
            extensionYAML("x-kubernetes-patch-merge-key", key + "\n", into: &schema)
            extensionYAML("x-kubernetes-patch-strategy", "merge\n", into: &schema)
        } else if field.mergePrimitives {
            extensionYAML("x-kubernetes-patch-strategy", "merge\n", into: &schema)
        }
    }

    static func writeType(_ type: FieldType, into schema: inout ProtobufWriter) {
        switch type {
        case .string: schema.message(22) { $0.string(1, "string") }
        case .integer:
            schema.string(2, "int32")
            schema.message(22) { $0.string(1, "integer") }
        case .boolean: schema.message(22) { $0.string(1, "boolean") }
        case .intOrString:
            schema.string(2, "int-or-string")
            schema.message(22) { $0.string(1, "string") }
        case .any: break  // no type: anything goes
        case .ref(let name): schema.string(1, "#/definitions/" + name)
        case .array(let element):
            schema.message(22) { $0.string(1, "array") }
            schema.message(23) { items in items.message(1) { writeType(element, into: &$0) } }
        case .map(let value):
            schema.message(22) { $0.string(1, "object") }
            schema.message(21) { additional in additional.message(1) { writeType(value, into: &$0) } }
        }
    }

    /// A vendor extension (`NamedAny` with its value as YAML text).
    static func extensionYAML(_ name: String, _ yaml: String, into schema: inout ProtobufWriter) {
        schema.message(31) { named in
            named.string(1, name)
            named.message(2) { $0.string(2, yaml) }
        }
    }

    /// The same document as JSON, for clients that ask for it.
    static let json: JSONValue = {
        func schema(_ type: FieldType) -> [(String, JSONValue)] {
            switch type {
            case .string: [("type", .string("string"))]
            case .integer: [("type", .string("integer")), ("format", .string("int32"))]
            case .boolean: [("type", .string("boolean"))]
            case .intOrString: [("type", .string("string")), ("format", .string("int-or-string"))]
            case .any: []
            case .ref(let name): [("$ref", .string("#/definitions/" + name))]
            case .array(let element): [("type", .string("array")), ("items", .object(schema(element)))]
            case .map(let value): [("type", .string("object")), ("additionalProperties", .object(schema(value)))]
            }
        }
        let definitions = Self.definitions.map { definition -> (String, JSONValue) in
            var members: [(String, JSONValue)] = [("type", .string("object"))]
            if !definition.required.isEmpty { members.append(("required", .array(definition.required.map(JSONValue.string)))) }
            members.append(("properties", .object(definition.fields.map { field in
                var members = schema(field.type)
                if let key = field.mergeKey {
                    members += [("x-kubernetes-patch-merge-key", .string(key)), ("x-kubernetes-patch-strategy", .string("merge"))]
                } else if field.mergePrimitives {
                    members.append(("x-kubernetes-patch-strategy", .string("merge")))
                }
                return (field.name, .object(members))
            })))
            if let kind = definition.kind {
                let group = APIResource.of(kind).group
                members.append(("x-kubernetes-group-version-kind", .array([.object([
                    ("group", .string(group)), ("kind", .string(kind.rawValue)), ("version", .string("v1")),
                ])])))
            }
            return (definition.name, .object(members))
        }
        return .object([
            ("swagger", .string("2.0")), ("info", .object([("title", .string("Kubernetes")), ("version", .string("v1.20.0-clusterdns"))])),
            ("paths", .object([])), ("definitions", .object(definitions)),
        ])
    }()
}
