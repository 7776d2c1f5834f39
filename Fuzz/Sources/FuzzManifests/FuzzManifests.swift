import FoundationEssentials
import FuzzDriver
import KubernetesAPIClient
import ServiceRegistry

/// Manifests and kubeconfigs are outside input (files an operator or a tool writes): any bytes
/// must decode to objects or to errors with a position, never trap or hang. So are the values
/// a shared store (etcd) holds, which anyone with access to etcd can write: they decode as the
/// registry's Codable JSON (what EtcdRegistryStore and the SQLite rows read) and are validated
/// before they are served; the tape that reads them must read what JSONDecoder reads alike.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for entry in Manifest.decode(text, file: "fuzz.yaml") {
        if case .failure(let error) = entry.result, error.line < 1 || error.document < 1 {
            fatalError("an error without a position: \(error)")
        }
    }
    // A kubeconfig: a context or a precise refusal (files it names are not read: the path's
    // directory does not exist).
    _ = try? KubeconfigFile.parse(text, path: "/nonexistent/fuzz/kubeconfig")
    // A claim's key and its owner, as a shared store holds them: what parses writes back the same.
    if let claim = AllocationClaim(storePath: text), AllocationClaim(storePath: claim.storePath) != claim {
        fatalError("claim path round trip: \(text)")
    }
    if let key = ObjectKey(parsing: text), ObjectKey(parsing: key.description) != key {
        fatalError("object key round trip: \(text)")
    }
    // Read through the tape as the stores read them; what JSONDecoder reads too, it reads alike.
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let object = try? RegistryObject(storedJSON: bytes) {
        _ = Validation.validate(object)
        _ = object.kubernetesJSON
        if let foundation = try? JSONDecoder().decode(RegistryObject.self, from: Data(bytes)), foundation != object {
            fatalError("the tape and JSONDecoder read \(text) differently")
        }
    }
    return 0
}

/// SwiftPM names an executable's entry point `<module>_main`; hand control to libFuzzer.
@_cdecl("FuzzManifests_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    return FuzzDriver.run(argc, argv, fuzz)
}
