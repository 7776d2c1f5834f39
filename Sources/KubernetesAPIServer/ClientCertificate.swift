public import KubernetesAPI
import SwiftASN1
import X509

/// Who a client certificate says its holder is, as kube-apiserver reads it: the subject's
/// common name is the user, each organization a group. Only a certificate the TLS handshake
/// verified against `--api-client-ca-file` gets here.
public enum ClientCertificate {
    public static func user(der: [UInt8]) -> APIUser? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        var name: String?
        var groups: [String] = []
        for attribute in certificate.subject.flatMap({ $0 }) {
            switch attribute.type {
            case .RDNAttributeType.commonName: name = name ?? String(attribute.value)
            case .RDNAttributeType.organizationName: if let group = String(attribute.value) { groups.append(group) }
            default: break
            }
        }
        guard let name, !name.isEmpty else { return nil }
        return APIUser(name: name, uid: "", groups: groups)
    }
}
