import FuzzDriver
import DNSAuthority
import DNSWire
import KubernetesDNS
import NetAddress
import ServiceRegistry
import ZoneFile

/// A cluster and a zone file behind one responder, built once; `walker` is the same catalog
/// with recursion and autopath, for the pod at `podAddress`.
let (responder, walker): (Responder, Responder) = {
    let registry = try! Registry()
    let manifests = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10], ports: [{name: http, port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: db, namespace: shop}
        spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: db-a, namespace: shop, labels: {kubernetes.io/service-name: db}}
        addressType: IPv4
        ports: [{name: pg, port: 5432, protocol: TCP}]
        endpoints: [{addresses: [10.244.0.1], hostname: db-0}, {addresses: [10.244.0.2]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: alias, namespace: shop}
        spec: {type: ExternalName, externalName: www.example.com}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: client, namespace: shop}
        spec: {containers: [{name: c}]}
        status: {podIP: 10.244.0.9}
        """
    for entry in Manifest.decode(manifests) { if case .success(let object) = entry.result { _ = try? registry.apply(object) } }
    registry.markLoaded()
    let cluster = ClusterAuthority(configuration: ClusterConfiguration(serviceCIDRs: [RegistryConfiguration.defaultServiceCIDR]),
                                   snapshot: registry.snapshot())
    let catalog = Catalog(cluster.authorities)
    let zone = "$TTL 60\n@ SOA ns hostmaster 1 7200 900 86400 30\n NS ns\nns A 192.0.2.1\nwww CNAME @\n@ A 192.0.2.2\n"
        + "mail MX 10 ns\n*.wild TXT \"w\"\nsub NS ns.sub\nns.sub A 192.0.2.3\nptr PTR www\n@ CAA 0 issue \"ca\"\n"
        + "info A 192.0.2.4\ninfo TYPE65280 \\# 4 0a000001\n"
    catalog.add(StaticAuthority(zone: try! ZoneParser().parse(zone, origin: try! DomainName("example.com."))))
    let autopath = Autopath(pods: cluster, hostDomains: [try! DomainName("corp.test."), try! DomainName("example.com.")])
    return (Responder(catalog: catalog), Responder(catalog: catalog, recursion: RecursionPolicy(), autopath: autopath))
}()

let podAddress = IPAddress("10.244.0.9")!

/// What the upstream says to every step of a walk, chosen by the input: so that walks end in
/// each way (found, exhausted, failed) and the memo holds all three.
func upstreamAnswer(to forwarding: Responder.Forwarding, policy: Int, step: Int) -> Message? {
    var reply = Message(header: Header(id: 1, isResponse: true, isRecursionAvailable: true), questions: [forwarding.target])
    if policy == 0 || (policy == 1 && step < 2) {
        reply.rcode = .nameError
        reply.authorities = [ResourceRecord(name: .root, ttl: UInt32(step * 7), data: .soa(SOA(
            mname: .root, rname: .root, serial: 1, refresh: 1, retry: 1, expire: 1, minimum: UInt32(policy * 30))))]
    } else if policy == 1 {
        reply.answers = [ResourceRecord(name: forwarding.target.name, ttl: 30, data: .a(IPv4Address(192, 0, 2, 9)))]
    } else if policy == 2 {
        return nil
    } else {
        reply.rcode = .serverFailure
    }
    return reply
}

/// Any bytes as a query over UDP and over TCP: the responder answers or drops, never traps;
/// whenever the fast path answers, its bytes are the general path's.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let query = Array(UnsafeBufferPointer(start: data, count: size))
    var buffer = [UInt8](repeating: 0, count: 65535)
    for transport in [Responder.Transport.udp, .tcp] {
        let general = responder.respond(to: query, transport: transport)
        let length = query.withUnsafeBytes { q in
            buffer.withUnsafeMutableBytes { responder.fastRespond(to: q, into: $0, transport: transport) }
        }
        if let length {
            guard let general, general == Array(buffer[0..<length]) else {
                fatalError("the fast path's reply differs from the general path's (\(transport))")
            }
        }
    }
    // The same bytes from a pod, with autopath: every walk ends (in at most one step per name of
    // the search path) in a reply that decodes, whatever the upstream says.
    var resolution = walker.resolve(query, transport: .udp, client: podAddress)
    var steps = 0
    while case .forward(let forwarding) = resolution {
        steps += 1
        if steps > 8 { fatalError("a walk did not end") }
        resolution = walker.resume(forwarding, upstream: upstreamAnswer(to: forwarding, policy: size % 4, step: steps))
    }
    if case .response(let bytes) = resolution, (try? Message(decoding: bytes)) == nil {
        fatalError("autopath's reply does not decode")
    }
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main`; hand control to libFuzzer.
@_cdecl("FuzzResponder_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    // Built before the first input: what lives for the whole run is not an input's leak.
    _ = responder.maxUDPPayload
    _ = walker.maxUDPPayload
    return FuzzDriver.run(argc, argv, fuzz)
}
