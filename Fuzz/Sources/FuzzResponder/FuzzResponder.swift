import FuzzDriver
import DNSAuthority
import DNSWire
import KubernetesDNS
import ServiceRegistry
import ZoneFile

/// A cluster and a zone file behind one responder, built once.
let responder: Responder = {
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
    return Responder(catalog: catalog)
}()

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
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main`; hand control to libFuzzer.
@_cdecl("FuzzResponder_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    // Built before the first input: what lives for the whole run is not an input's leak.
    _ = responder.maxUDPPayload
    return FuzzDriver.run(argc, argv, fuzz)
}
