import Hummingbird
import HummingbirdTLS
public import KubernetesAPI
import protocol NIOCore.Channel
import protocol NIOCore.SocketOptionProvider
import NIOSSL
public import Logging
public import DispatchSockets
import NetAddress
public import ServiceLifecycle
public import ServiceRegistry
import Synchronization

/// The registry served as a Kubernetes API over HTTP (Hummingbird): a swift-service-lifecycle
/// `Service` of its own, so an embedder runs it with or without DNS. Every request goes to
/// `APIHandler`; this type only moves bytes between HTTP and it.
public final class APIServer: ServiceLifecycle.Service, Sendable {
    public struct Configuration: Sendable {
        public var address: SocketAddress
        /// TLS is always on: a bearer token never crosses a connection in the clear (and
        /// kubectl would not send one over one).
        public var certificate: ServingCertificate
        /// PEM certificates of the authorities whose client certificates authenticate a user
        /// (kube-apiserver's `--client-ca-file`); nil: bearer tokens only.
        public var clientAuthorityPEM: String?
        public init(address: SocketAddress, certificate: ServingCertificate, clientAuthorityPEM: String? = nil) {
            self.address = address
            self.certificate = certificate
            self.clientAuthorityPEM = clientAuthorityPEM
        }
    }

    public let configuration: Configuration
    public let handler: APIHandler
    let logger: Logger
    let bound = Mutex<SocketAddress?>(nil)
    let boundWaiters = Mutex<[CheckedContinuation<SocketAddress, Never>]>([])

    let tls: TLSConfiguration
    /// Requests answered, by method and status code (what `/metrics` reports).
    let answered = Mutex<[String: Int]>([:])

    /// Requests answered so far, by method and status code.
    public var requestCounts: [(method: String, code: Int, count: Int)] {
        answered.withLock { $0 }.map { key, count in
            let parts = key.split(separator: " ")
            return (String(parts[0]), Int(parts[1]) ?? 0, count)
        }.sorted { ($0.method, $0.code) < ($1.method, $1.code) }
    }

    /// Watches being streamed now.
    public var openWatches: Int { handler.watches.count }

    /// `settle` is awaited after each write before its response (see `APIHandler.settle`).
    public init(configuration: Configuration, registry: Registry, tokens: TokenTable, logger: Logger,
                settle: (@Sendable (UInt64) async -> Void)? = nil) throws(APIServerError) {
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(configuration.certificate.certificatePEM.utf8))
            let key = try NIOSSLPrivateKey(bytes: Array(configuration.certificate.privateKeyPEM.utf8), format: .pem)
            guard !chain.isEmpty else { throw APIServerError.badCertificate("no certificate in the PEM") }
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            // Closing a connection waits this long for the peer's close_notify (5 s by default,
            // which held every shutdown with a client connected: Go's clients do not send one).
            tls.shutdownTimeout = .milliseconds(200)
            if let authority = configuration.clientAuthorityPEM {
                let roots = try NIOSSLCertificate.fromPEMBytes(Array(authority.utf8))
                guard !roots.isEmpty else { throw APIServerError.badClientAuthority("no certificate in the PEM") }
                // A certificate is asked for and, when one is sent, verified against these
                // roots (a bad one fails the handshake); a client without one may still
                // present a bearer token.
                tls.trustRoots = .certificates(roots)
                tls.certificateVerification = .optionalVerification
                tls.sendCANameList = true
            }
            self.tls = tls
        } catch let error as APIServerError {
            throw error
        } catch {
            throw configuration.clientAuthorityPEM == nil ? .badCertificate("\(error)") : .badCertificate("\(error) (or in the client authority)")
        }
        self.configuration = configuration
        var handler = APIHandler(registry: registry, tokens: tokens)
        handler.settle = settle
        self.handler = handler
        self.logger = logger
    }

    /// The address the server listens on, once it does (the port the kernel chose for port 0).
    public var boundAddress: SocketAddress {
        get async {
            if let address = bound.withLock({ $0 }) { return address }
            return await withCheckedContinuation { continuation in
                let ready = bound.withLock { address -> SocketAddress? in
                    if address == nil { boundWaiters.withLock { $0.append(continuation) } }
                    return address
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }

    public func run() async throws {
        let handler = handler
        let verifiesClients = configuration.clientAuthorityPEM != nil
        let responder = CallbackResponder<APIRequestContext> { [self] request, context in
            var certificateUser: APIUser?
            if verifiesClients, let certificate = try? await context.channel.nioSSL_peerCertificate().get() {
                certificateUser = (try? certificate.toDERBytes()).flatMap(ClientCertificate.user(der:))
            }
            var query: [String: String] = [:]
            for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
            let body: [UInt8]
            do {
                let buffer = try await request.body.collect(upTo: APIHandler.maxBody)
                body = Array(buffer.readableBytesView)
            } catch {
                self.answered.withLock { $0["\(request.method.rawValue) 413", default: 0] += 1 }
                return Self.response(APIResponse(code: 413, body: APIError(
                    code: 413, reason: "RequestEntityTooLarge", message: "the request body is larger than \(APIHandler.maxBody) bytes").status))
            }
            // The media type without its parameters (`application/json; charset=utf-8`).
            let contentType = request.headers[.contentType].map {
                String($0.prefix { $0 != ";" }.filter { $0 != " " }).lowercased()
            }
            let answer = await handler.handle(APIRequest(
                method: request.method.rawValue, path: request.uri.path, query: query,
                authorization: request.headers[.authorization], certificateUser: certificateUser, contentType: contentType,
                accept: request.headers[.accept], body: body))
            self.answered.withLock { $0["\(request.method.rawValue) \(answer.code)", default: 0] += 1 }
            return Self.response(answer, channel: context.channel)
        }
        let address = configuration.address
        let app = Application(
            responder: responder,
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname(address.address.description, port: Int(address.port)), serverName: nil),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? Int(address.port)
                let actual = SocketAddress(address: address.address, port: UInt16(port))
                let waiters = bound.withLock { value in
                    value = actual
                    return boundWaiters.withLock { list in
                        defer { list = [] }
                        return list
                    }
                }
                for waiter in waiters { waiter.resume(returning: actual) }
                logger.info("serving the Kubernetes API", metadata: ["address": "\(actual)"])
            },
            logger: logger)
        // Watches are long requests that the HTTP server would wait for: end them first.
        try await withGracefulShutdownHandler {
            try await app.run()
        } onGracefulShutdown: {
            handler.endWatches()
        }
    }

    /// How often a watch looks whether its client is still there.
    static let peerCheckInterval: Duration = .seconds(2)

    static func response(_ answer: APIResponse, channel: (any Channel)? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-cache, private"
        if let events = answer.events {
            // A watch: chunked, one event per line, each written as it happens.
            return Response(status: .init(code: answer.code), headers: headers, body: ResponseBody { writer in
                defer { events.finish() }
                // A client that has gone leaves its socket half closed, and nothing reads the
                // connection while a watch is written: without a look at the socket, the watch
                // would last until its next event or its timeout (half an hour by default).
                let watchdog = channel.map { channel in
                    Task {
                        while (try? await Task.sleep(for: peerCheckInterval)) != nil {
                            if await !peerIsConnected(channel) {
                                events.finish()
                                return
                            }
                        }
                    }
                }
                defer { watchdog?.cancel() }
                for await event in events {
                    var buffer = ByteBuffer()
                    buffer.reserveCapacity(event.count + 1)
                    buffer.writeBytes(event)
                    buffer.writeInteger(UInt8(0x0A))
                    try await writer.write(buffer)
                }
                try await writer.finish(nil)
            })
        }
        if let raw = answer.raw {
            headers[.contentType] = raw.contentType
            return Response(status: .init(code: answer.code), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: raw.bytes)))
        }
        return Response(status: .init(code: answer.code), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body.bytes + [0x0A])))
    }
}

/// Whether the client is still connected: the TCP state, where the socket tells it (a peer that
/// closed leaves it in CLOSE_WAIT until someone reads), else whether the channel is open.
func peerIsConnected(_ channel: any Channel) async -> Bool {
    guard channel.isActive else { return false }
    #if os(Linux)
    if let provider = channel as? any SocketOptionProvider, let info = try? await provider.getTCPInfo().get() {
        return info.tcpi_state == 1  // TCP_ESTABLISHED
    }
    #endif
    return true
}

/// A request's context: Hummingbird's, and the connection, whose TLS handler knows the
/// client's certificate.
struct APIRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

public enum APIServerError: Error, CustomStringConvertible, Sendable {
    case badCertificate(String)
    case badClientAuthority(String)

    public var description: String {
        switch self {
        case .badCertificate(let reason): "the API's TLS certificate or key cannot be used: \(reason)"
        case .badClientAuthority(let reason): "the API's client certificate authority cannot be used: \(reason)"
        }
    }
}
