/// What `clusterdns serve` serves when no `--manifests` is given: a small cluster, so that
/// `dig @127.0.0.1 -p 5353 kubernetes.default.svc.cluster.local` answers at once.
let defaultManifests = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: default}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: kube-system}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: kubernetes, namespace: default}
    spec:
      clusterIP: 10.96.0.1
      ports: [{name: https, port: 443, targetPort: 6443}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: kube-dns, namespace: kube-system}
    spec:
      clusterIP: 10.96.0.10
      selector: {k8s-app: kube-dns}
      ports:
      - {name: dns, port: 53, protocol: UDP}
      - {name: dns-tcp, port: 53, protocol: TCP}
      - {name: metrics, port: 9153}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: clusterdns-0, namespace: kube-system, labels: {k8s-app: kube-dns}}
    spec:
      containers: [{name: clusterdns, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 53}, {name: metrics, containerPort: 9153}]}]
    status: {podIP: 10.244.0.2}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-0, namespace: default, labels: {app: web}}
    spec: {containers: [{name: nginx, ports: [{name: http, containerPort: 8080}]}]}
    status: {podIP: 10.244.1.10}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-1, namespace: default, labels: {app: web}}
    spec: {containers: [{name: nginx, ports: [{name: http, containerPort: 8080}]}]}
    status: {podIP: 10.244.2.11}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: db, namespace: default}
    spec:
      clusterIP: None
      selector: {app: db}
      ports: [{name: postgres, port: 5432}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: db-0, namespace: default, labels: {app: db}}
    spec: {hostname: db-0, subdomain: db, containers: [{name: postgres, ports: [{containerPort: 5432}]}]}
    status: {podIP: 10.244.1.20}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: search, namespace: default}
    spec: {type: ExternalName, externalName: search.example.com}
    """
