#if canImport(Glibc)
import Glibc
#endif
public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where a Kubernetes API server is and how to prove who we are to it: what a kubeconfig's
/// current context, or kubectl's `--server`, `--token` and `--certificate-authority`, say.
public struct APIClientConfiguration: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int
    /// PEM certificates that the server's must chain to; nil trusts the system's roots.
    public var authorityPEM: String?
    public var insecureSkipVerify: Bool
    public var token: String?
    /// A client certificate (PEM chain) and its key, for servers that authenticate by them.
    public var clientCertificatePEM: String?
    public var clientKeyPEM: String?

    public init(server: String, authorityPEM: String? = nil, insecureSkipVerify: Bool = false, token: String? = nil,
                clientCertificatePEM: String? = nil, clientKeyPEM: String? = nil) throws(APIClientError) {
        guard let url = ServerURL(server) else {
            throw .configuration("server \"\(server)\": expected https://HOST[:PORT] (or http://)")
        }
        (scheme, host, port) = (url.scheme, url.host, url.port)
        self.authorityPEM = authorityPEM
        self.insecureSkipVerify = insecureSkipVerify
        self.token = token
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
    }

    /// The server as a URL, for messages (IPv6 literals bracketed).
    public var server: String { "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
}

/// `scheme://host[:port]`, with nothing after but an optional `/`.
struct ServerURL {
    var scheme: String
    var host: String
    var port: Int

    init?(_ text: String) {
        let parts = text.split(separator: "://", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0] == "https" || parts[0] == "http" else { return nil }
        scheme = parts[0]
        var rest = Substring(parts[1])
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/") else { return nil }
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            host = String(rest)
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { return nil }
            self.port = port
        } else {
            port = scheme == "https" ? 443 : 80
        }
    }
}

public enum APIClientError: Error, Sendable, CustomStringConvertible, Equatable {
    case configuration(String)
    case unreachable(server: String, reason: String)
    case protocolError(String)

    public var description: String {
        switch self {
        case .configuration(let message): message
        case .unreachable(let server, let reason): "cannot reach \(server): \(reason)"
        case .protocolError(let message): message
        }
    }
}

/// One response, whole.
public struct APIClientResponse: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
}

/// An HTTP/1.1 client for the Kubernetes API, on NIO and NIO SSL: one connection at a time,
/// kept alive across the requests of `withConnection`, the bearer token on each.
public struct APIClient: Sendable {
    public let configuration: APIClientConfiguration
    let tls: NIOSSLContext?
    /// How long a response may keep us waiting; kubectl's `--request-timeout` has no default
    /// either, but a command that hangs forever helps nobody.
    public var requestTimeout: TimeAmount = .seconds(30)

    public init(configuration: APIClientConfiguration) throws(APIClientError) {
        self.configuration = configuration
        guard configuration.scheme == "https" else {
            tls = nil
            return
        }
        var settings = TLSConfiguration.makeClientConfiguration()
        // Closing waits this long for the server's close_notify (5 s by default): a server in
        // the middle of a watch's response may not send one, and a command must not hang on it.
        settings.shutdownTimeout = .milliseconds(200)
        do {
            if configuration.insecureSkipVerify {
                settings.certificateVerification = .none
            } else if let authority = configuration.authorityPEM {
                settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(authority.utf8)))
            }
        } catch {
            throw .configuration("the certificate authority is not valid PEM: \(error)")
        }
        switch (configuration.clientCertificatePEM, configuration.clientKeyPEM) {
        case (nil, nil): break
        case (let certificate?, let key?):
            do {
                settings.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) }
                settings.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
            } catch {
                throw .configuration("the client certificate or its key is not valid PEM: \(error)")
            }
        default:
            throw .configuration("a client certificate and its key go together")
        }
        do {
            tls = try NIOSSLContext(configuration: settings)
        } catch {
            throw .configuration("TLS: \(error)")
        }
    }

    /// Opens a connection, runs `body` with it, closes it.
    public func withConnection<Result: Sendable>(
        _ body: (APIConnection) async throws -> Result
    ) async throws -> Result {
        let configuration = configuration
        let tls = tls
        let timeout = requestTimeout
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                .connect(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        if let tls {
                            // An IP literal is checked against the certificate's IP addresses.
                            let isAddress = configuration.host.contains(":") || configuration.host.allSatisfy { $0.isNumber || $0 == "." }
                            try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : configuration.host))
                        }
                        try pipeline.addHTTPClientHandlers()
                        try pipeline.addHandler(IdleStateHandler(readTimeout: timeout))
                        try pipeline.addHandler(CloseWhenIdle())
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw APIClientError.unreachable(server: configuration.server, reason: Self.reason(error))
        }
        return try await channel.executeThenClose { inbound, outbound in
            let connection = APIConnection(configuration: configuration, timeout: timeout, inbound: inbound.makeAsyncIterator(),
                                           outbound: outbound)
            return try await body(connection)
        }
    }

    /// What went wrong, in the words of the system call or the handshake.
    static func reason(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let failure = error.connectionErrors.first { return reason(failure.error) }
            if let lookup = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(lookup)" }
            return "cannot resolve \(error.host)"
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if case NIOSSLError.handshakeFailed(let cause) = error {
            if "\(cause)".contains("CERTIFICATE_VERIFY_FAILED") {
                return "TLS: the server's certificate is not trusted (give its authority: --certificate-authority, or a kubeconfig's)"
            }
            return "TLS handshake: \(cause)"
        }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "TLS: the server's certificate is not for this name or address (\(error))"
        }
        if error is NIOSSLError || error is BoringSSLError { return "TLS: \(error)" }
        if case ChannelError.connectTimeout = error { return "no answer within 10 s" }
        return "\(error)"
    }
}

/// One open connection; requests go one after another (no pipelining).
public final class APIConnection {
    let configuration: APIClientConfiguration
    let timeout: TimeAmount
    var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    init(configuration: APIClientConfiguration, timeout: TimeAmount, inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator,
         outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>) {
        self.configuration = configuration
        self.timeout = timeout
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Sends one request and reads its whole response. `path` is already escaped; `query`
    /// values are escaped here.
    public func send(_ method: String, _ path: String, query: [(String, String)] = [], accept: String = "application/json",
                     body: [UInt8]? = nil, contentType: String = "application/json") async throws -> APIClientResponse {
        var head = requestHead(method, path, query: query, accept: accept)
        if let body {
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Content-Length", value: String(body.count))
        } else if method != "GET" {
            head.headers.add(name: "Content-Length", value: "0")
        }
        do {
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
        } catch {
            throw APIClientError.unreachable(server: configuration.server, reason: await whyClosed(error))
        }
        var response: APIClientResponse?
        do {
            while let part = try await inbound.next() {
                switch part {
                case .head(let head):
                    // 1xx are interim: the real head follows.
                    if head.status.code >= 200 {
                        response = APIClientResponse(status: Int(head.status.code), contentType: head.headers.first(name: "Content-Type"), body: [])
                    }
                case .body(let buffer):
                    response?.body.append(contentsOf: buffer.readableBytesView)
                case .end:
                    if let response { return response }
                }
            }
        } catch {
            throw APIClientError.unreachable(server: configuration.server, reason: APIClient.reason(error))
        }
        throw APIClientError.unreachable(server: configuration.server,
                                         reason: "the connection closed before the whole response arrived (or nothing came for \(timeout.nanoseconds / 1_000_000_000) s)")
    }

    /// Sends a GET whose response is a stream of lines (a watch) and hands each line to `line`
    /// as it arrives, until `line` returns false or the server ends the response; the
    /// connection is not reused after that. A refusal comes back whole, as from `send`.
    public func stream(_ path: String, query: [(String, String)] = [],
                       line: ([UInt8]) async throws -> Bool) async throws -> APIClientResponse {
        do {
            try await outbound.write(.head(requestHead("GET", path, query: query, accept: "application/json")))
            try await outbound.write(.end(nil))
        } catch {
            throw APIClientError.unreachable(server: configuration.server, reason: await whyClosed(error))
        }
        var response: APIClientResponse?
        var pending: [UInt8] = []
        while true {
            let next: HTTPClientResponsePart?
            do { next = try await inbound.next() } catch {
                throw APIClientError.unreachable(server: configuration.server, reason: APIClient.reason(error))
            }
            guard let part = next else { break }
            switch part {
            case .head(let head):
                if head.status.code >= 200 {
                    response = APIClientResponse(status: Int(head.status.code), contentType: head.headers.first(name: "Content-Type"), body: [])
                }
            case .body(let buffer):
                guard response?.status == 200 else {
                    response?.body.append(contentsOf: buffer.readableBytesView)
                    continue
                }
                pending.append(contentsOf: buffer.readableBytesView)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let text = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    if try await !line(text) { return response! }
                }
            case .end:
                if let response { return response }
            }
        }
        throw APIClientError.unreachable(server: configuration.server, reason: "the connection closed before the response ended")
    }

    /// Why a write failed: a failed TLS handshake closes the connection, and a write that
    /// comes after sees only a closed channel; the handshake's own error is in the inbound
    /// stream, which ends with it.
    func whyClosed(_ writeError: any Error) async -> String {
        do {
            while try await inbound.next() != nil {}
        } catch {
            return APIClient.reason(error)
        }
        return APIClient.reason(writeError)
    }

    func requestHead(_ method: String, _ path: String, query: [(String, String)], accept: String) -> HTTPRequestHead {
        var uri = path
        if !query.isEmpty {
            uri += "?" + query.map { "\(Self.escape($0.0))=\(Self.escape($0.1))" }.joined(separator: "&")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: configuration.host.contains(":") ? "[\(configuration.host)]:\(configuration.port)"
            : "\(configuration.host):\(configuration.port)")
        headers.add(name: "User-Agent", value: "clusterdns")
        headers.add(name: "Accept", value: accept)
        if let token = configuration.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        return HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: uri, headers: headers)
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF")
                out += "%\(digits[Int(byte >> 4)])\(digits[Int(byte & 15)])"
            }
        }
        return out
    }
}

/// Closes the connection when the server has said nothing for the request timeout.
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
