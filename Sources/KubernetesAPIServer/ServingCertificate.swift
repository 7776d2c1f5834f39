#if canImport(Glibc)
import Glibc
#endif
import Crypto
import FoundationEssentials
public import NetAddress
import SwiftASN1
import X509

/// The API's TLS certificate and key, PEM. kubectl and client-go send a bearer token only over
/// TLS, so the API always speaks it: with the operator's files, or with a self-signed
/// certificate made at the first start (P-256, a year, for the listening addresses and
/// localhost), kept in the state directory as kube-apiserver keeps its own, and trusted through
/// the kubeconfig written beside it.
public struct ServingCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String

    public init(certificatePEM: String, privateKeyPEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A self-signed certificate naming `addresses` and `localhost`.
    public static func selfSigned(for addresses: [IPAddress]) throws -> ServingCertificate {
        let now = Date()
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            OrganizationName("clusterdns")
            CommonName("clusterdns-api")
        }
        var names: [GeneralName] = [.dnsName("localhost")]
        for address in Set(addresses + [IPAddress("127.0.0.1")!]).sorted() {
            switch address {
            case .v4(let a):
                let (b0, b1, b2, b3) = a.octets
                names.append(.ipAddress(ASN1OctetString(contentBytes: [b0, b1, b2, b3])))
            case .v6(let a):
                let bytes = (0..<8).map { UInt8(truncatingIfNeeded: a.high >> (56 - 8 * $0)) }
                    + (0..<8).map { UInt8(truncatingIfNeeded: a.low >> (56 - 8 * $0)) }
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
            }
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: certificateKey.publicKey,
            notValidBefore: now - 3600, notValidAfter: now + 365 * 86400, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: certificateKey)
        return ServingCertificate(certificatePEM: try certificate.serializeAsPEM().pemString + "\n",
                                  privateKeyPEM: key.pemRepresentation + "\n")
    }

    /// `directory`'s apiserver.crt and apiserver.key when both are there; otherwise a new
    /// self-signed pair, written there (the key 0600) when a directory is given.
    public static func loadOrCreate(in directory: String?, for addresses: [IPAddress]) throws -> ServingCertificate {
        guard let directory else { return try selfSigned(for: addresses) }
        let certificatePath = directory + "/apiserver.crt"
        let keyPath = directory + "/apiserver.key"
        if let certificate = try? String(contentsOfFile: certificatePath, encoding: .utf8),
           let key = try? String(contentsOfFile: keyPath, encoding: .utf8) {
            return ServingCertificate(certificatePEM: certificate, privateKeyPEM: key)
        }
        let made = try selfSigned(for: addresses)
        try SecretFile.write(made.privateKeyPEM, to: keyPath)
        try SecretFile.write(made.certificatePEM, to: certificatePath, mode: 0o644)
        return made
    }

    /// The certificate as a kubeconfig's `certificate-authority-data` (base64 of the PEM).
    public var authorityData: String { Data(certificatePEM.utf8).base64EncodedString() }
}
