import Foundation
import ServiceRegistry
import Testing

/// Each kind written as Kubernetes' JSON: the exact text (field names, order, omitted empties,
/// resourceVersion as a string), and decoding that text gives the object back.
struct ObjectEncodingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var manifest: String
        var json: String
        var testDescription: String { String(manifest.split(separator: "\n").prefix(2).joined(separator: " ")) }
    }

    static let cases: [Case] = [
        Case(manifest: """
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop, labels: {b: "2", a: "1"}}
            spec:
              type: NodePort
              clusterIP: 10.96.0.10
              selector: {app: web}
              ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, targetPort: dns}]
              sessionAffinity: ClientIP
              ipFamilies: [IPv4]
              ipFamilyPolicy: SingleStack
            """, json: #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"shop","labels":{"a":"1","b":"2"}},"spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080,"nodePort":30080},{"name":"dns","protocol":"UDP","port":53,"targetPort":"dns"}],"selector":{"app":"web"},"clusterIP":"10.96.0.10","type":"NodePort","sessionAffinity":"ClientIP","ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack"},"status":{"loadBalancer":{}}}"#),
        Case(manifest: """
            apiVersion: v1
            kind: Service
            metadata: {name: lb}
            spec:
              type: LoadBalancer
              ports: [{port: 443}]
              externalTrafficPolicy: Local
              sessionAffinity: ClientIP
              sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
            status: {loadBalancer: {ingress: [{ip: 192.0.2.7}]}}
            """, json: #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"lb","namespace":"default"},"spec":{"ports":[{"protocol":"TCP","port":443,"targetPort":443}],"type":"LoadBalancer","sessionAffinity":"ClientIP","externalTrafficPolicy":"Local","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}}},"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.7"}]}}}"#),
        Case(manifest: """
            apiVersion: v1
            kind: Service
            metadata: {name: ext, annotations: {note: "a \\"quoted\\" word"}}
            spec: {type: ExternalName, externalName: db.example.com}
            """, json: #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"ext","namespace":"default","annotations":{"note":"a \"quoted\" word"}},"spec":{"type":"ExternalName","sessionAffinity":"None","externalName":"db.example.com"},"status":{"loadBalancer":{}}}"#),
        Case(manifest: """
            apiVersion: v1
            kind: Pod
            metadata: {name: web-0, namespace: shop}
            spec:
              hostname: web-0
              subdomain: web
              nodeName: node-a
              containers: [{name: app, image: nginx, ports: [{name: http, containerPort: 8080}]}]
            status:
              phase: Running
              podIP: 10.244.0.5
              conditions: [{type: Ready, status: "True"}]
            """, json: #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"shop"},"spec":{"containers":[{"name":"app","image":"nginx","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}]}],"nodeName":"node-a","hostname":"web-0","subdomain":"web","dnsPolicy":"ClusterFirst"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastProbeTime":null}],"podIP":"10.244.0.5","podIPs":[{"ip":"10.244.0.5"}]}}"#),
        Case(manifest: """
            apiVersion: v1
            kind: Node
            metadata: {name: node-a}
            spec: {podCIDR: 10.244.0.0/24}
            status: {addresses: [{type: InternalIP, address: 192.0.2.10}], capacity: {pods: "50"}}
            """, json: #"{"kind":"Node","apiVersion":"v1","metadata":{"name":"node-a"},"spec":{"podCIDR":"10.244.0.0/24","podCIDRs":["10.244.0.0/24"]},"status":{"capacity":{"pods":"50"},"allocatable":{"pods":"50"},"addresses":[{"type":"InternalIP","address":"192.0.2.10"}]}}"#),
        Case(manifest: """
            apiVersion: v1
            kind: Namespace
            metadata: {name: shop}
            """, json: #"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"shop"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}"#),
        Case(manifest: """
            apiVersion: v1
            kind: Endpoints
            metadata: {name: db}
            subsets:
              - addresses: [{ip: 10.0.0.1, hostname: db-0, targetRef: {kind: Pod, namespace: default, name: db-0}}]
                notReadyAddresses: [{ip: 10.0.0.2, nodeName: node-b}]
                ports: [{name: sql, port: 5432}]
            """, json: #"{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"db","namespace":"default"},"subsets":[{"addresses":[{"ip":"10.0.0.1","hostname":"db-0","targetRef":{"kind":"Pod","namespace":"default","name":"db-0"}}],"notReadyAddresses":[{"ip":"10.0.0.2","nodeName":"node-b"}],"ports":[{"name":"sql","port":5432,"protocol":"TCP"}]}]}"#),
        Case(manifest: """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: db-1, labels: {kubernetes.io/service-name: db}}
            addressType: IPv6
            endpoints:
              - addresses: ["2001:db8::1"]
                conditions: {ready: true, serving: true, terminating: false}
                zone: z1
              - addresses: ["2001:db8::2"]
            ports: [{name: sql, port: 5432, protocol: TCP, appProtocol: postgresql}]
            """, json: #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"db-1","namespace":"default","labels":{"kubernetes.io/service-name":"db"}},"addressType":"IPv6","endpoints":[{"addresses":["2001:db8::1"],"conditions":{"ready":true,"serving":true,"terminating":false},"zone":"z1"},{"addresses":["2001:db8::2"],"conditions":{}}],"ports":[{"name":"sql","port":5432,"protocol":"TCP","appProtocol":"postgresql"}]}"#),
        // Fields the registry does not use are written back as they came (a container's env
        // and resources by the container's index, volumes, ownerReferences, hostIP); metadata
        // the server sets (uid, resourceVersion, managedFields) and condition details are not.
        Case(manifest: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web-0
              namespace: shop
              uid: 6f1d2c3a-0000-4000-8000-000000000001
              resourceVersion: "77"
              managedFields: [{manager: kubectl}]
              ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, uid: 6f1d2c3a-0000-4000-8000-000000000002}]
              labels: {app: web}
            spec:
              volumes: [{name: data, emptyDir: {}}]
              containers:
              - name: app
                image: nginx
                env: [{name: MODE, value: prod}]
                resources: {limits: {cpu: 500m}}
                ports: [{containerPort: 80, hostPort: 8080}]
              - name: sidecar
                image: envoy
              nodeName: node-a
            status:
              podIP: 10.244.0.5
              hostIP: 192.0.2.10
              conditions: [{type: Ready, status: "True", lastTransitionTime: "2026-01-01T00:00:00Z"}]
            """, json: #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"shop","labels":{"app":"web"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-abc","uid":"6f1d2c3a-0000-4000-8000-000000000002"}]},"spec":{"containers":[{"name":"app","image":"nginx","ports":[{"containerPort":80,"protocol":"TCP","hostPort":8080}],"env":[{"name":"MODE","value":"prod"}],"resources":{"limits":{"cpu":"500m"}}},{"name":"sidecar","image":"envoy"}],"nodeName":"node-a","dnsPolicy":"ClusterFirst","volumes":[{"name":"data","emptyDir":{}}]},"status":{"conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:00Z"}],"podIP":"10.244.0.5","podIPs":[{"ip":"10.244.0.5"}],"hostIP":"192.0.2.10"}}"#),
    ]

    @Test(arguments: cases)
    func writtenAsKubernetesAndReadBack(_ c: Case) throws {
        let object = try #require(Manifest.decode(c.manifest, file: "case.yaml").first).result.get()
        let json = object.kubernetesJSON
        #expect(json.text == c.json)
        // JSON is YAML: the manifest reader takes the output back, and nothing is lost or
        // changed on the way (a defaulted targetPort is written out, as the API server does).
        let back = try #require(Manifest.decode(json.text, file: "back.json").first).result.get()
        #expect(back.kubernetesJSON == json)
        // The state directory keeps objects as Codable JSON: the same object comes back.
        let stored = try JSONDecoder().decode(RegistryObject.self, from: JSONEncoder().encode(object))
        #expect(stored == object && stored.kubernetesJSON == json)
    }

    @Test func registryFieldsAndHostileStringsAreWrittenSafely() throws {
        var meta = ObjectMeta(name: "n", namespace: "", uid: "6f2a9c3e-0d7b-4c1e-9a55-3b0f1e2d4c6a", resourceVersion: 42)
        meta.annotations = ["text": "line\nbreak\ttab\u{1}bell\\slash é"]
        let json = RegistryObject.namespace(Namespace(metadata: meta)).kubernetesJSON
        #expect(json["metadata"]?["resourceVersion"] == .string("42"), "a string, as Kubernetes writes it")
        #expect(json["metadata"]?["uid"] == .string("6f2a9c3e-0d7b-4c1e-9a55-3b0f1e2d4c6a"))
        #expect(json.text.contains(#""text":"line\nbreak\ttab\u0001bell\\slash é""#))
    }
}
