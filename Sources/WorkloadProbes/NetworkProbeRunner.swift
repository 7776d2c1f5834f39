public import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NetAddress
import ServiceRegistry
import ProbeWire
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs probes over the network as the kubelet does: a TCP connect, an HTTP GET whose status
/// decides (200–399), each within its deadline whatever the backend does (accepts and never
/// answers, trickles bytes, sends a body without end, redirects in a loop).
public struct NetworkProbeRunner: ProbeRunner {
    let group: any EventLoopGroup
    let tls: NIOSSLContext?
    /// Commands run for exec probes; nil leaves them off (`--probes-exec`).
    let exec: (any ProbeRunner)?

    /// The kubelet reads at most this much of a body; only the status counts, so nothing of
    /// the body is read here at all: the head decides and the connection is closed.
    public static let maxRedirects = 10
    /// What the kubelet sends as its User-Agent, `kube-probe/<major>.<minor>`.
    public static let userAgent = "kube-probe/1.32"

    /// `group` defaults to NIO's shared one.
    public init(group: (any EventLoopGroup)? = nil, exec: (any ProbeRunner)? = nil) {
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
        self.exec = exec
        // HTTPS probes do not check the certificate (the kubelet's neither).
        var settings = TLSConfiguration.makeClientConfiguration()
        settings.certificateVerification = .none
        tls = try? NIOSSLContext(configuration: settings)
    }

    public func run(_ target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        let deadline = NIODeadline.now() + TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                                                  + timeout.components.attoseconds / 1_000_000_000)
        switch target {
        case .tcp(let address, let port):
            return await TCPConnectProbe.run(address, port, timeout: timeout)
        case .http(let scheme, let address, let port, let host, let path, let headers):
            var location = (path: path, hops: 0)
            while true {
                let outcome = await httpGet(scheme: scheme, address: address, port: port, host: host, path: location.path,
                                            headers: headers, deadline: deadline, timeout: timeout)
                switch outcome {
                case .result(let result):
                    return result
                case .redirect(let path):
                    location.hops += 1
                    guard location.hops <= Self.maxRedirects else {
                        return .failure("HTTP probe stopped after \(Self.maxRedirects) redirects")
                    }
                    location.path = path
                }
            }
        case .grpc(let address, let port, let service):
            return await grpcCheck(address, port, service: service, deadline: deadline, timeout: timeout)
        case .exec:
            guard let exec else { return .failure("exec probes are off (serve --probes-exec turns them on)") }
            return await exec.run(target, timeout: timeout)
        case .unusable(let reason):
            return .failure(reason)
        }
    }

    /// TCP connects all together on the epoll loop, without a task each; the others each in a
    /// task of its own.
    public func start(_ attempts: [ProbeAttempt]) {
        var connects: [ProbeAttempt] = []
        var others: [ProbeAttempt] = []
        for attempt in attempts {
            if case .tcp = attempt.target { connects.append(attempt) } else { others.append(attempt) }
        }
        if !connects.isEmpty { TCPConnectProbe.start(connects) }
        startEach(others)
    }

    func socketAddress(_ address: IPAddress, _ port: Int) -> SocketAddress? {
        try? SocketAddress(ipAddress: address.description, port: port)
    }

    enum HTTPOutcome {
        case result(ProbeResult)
        case redirect(String)
    }

    func httpGet(scheme: Probe.HTTPGet.Scheme, address: IPAddress, port: Int, host: String, path: String,
                 headers: [Probe.HTTPGet.Header], deadline: NIODeadline, timeout: Duration) async -> HTTPOutcome {
        guard let socket = socketAddress(address, port) else { return .result(.failure("\(address):\(port) is not an address to connect to")) }
        let tls = scheme == .https ? tls : nil
        if scheme == .https && tls == nil { return .result(.failure("TLS is not available")) }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        for header in headers { head.headers.add(name: header.name, value: header.value) }
        if !head.headers.contains(name: "Host") { head.headers.add(name: "Host", value: host) }
        if !head.headers.contains(name: "User-Agent") { head.headers.add(name: "User-Agent", value: Self.userAgent) }
        if !head.headers.contains(name: "Accept") { head.headers.add(name: "Accept", value: "*/*") }
        head.headers.replaceOrAdd(name: "Connection", value: "close")
        let request = head
        // One loop for the connection and its deadline; the response head completes the
        // attempt once, whichever of the head, the connection's end or the deadline comes first.
        let loop = group.next()
        let completion = Completion(loop.makePromise(of: HTTPResponseHead.self))
        let expiry = loop.scheduleTask(deadline: deadline) { completion.complete(.failure(ChannelError.connectTimeout(.zero))) }
        defer {
            expiry.cancel()
            // Completed on every way out (a refused connect never reaches the handler): NIO
            // traps on a promise dropped uncompleted.
            completion.complete(.failure(ChannelError.alreadyClosed))
        }
        do {
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(max(.zero, deadline - .now()))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        if let tls { try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                        try pipeline.addHTTPClientHandlers()
                        try pipeline.addHandler(ResponseHeadHandler(completion))
                    }
                }
                .connect(to: socket).get()
            channel.write(HTTPClientRequestPart.head(request), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            let response: HTTPResponseHead
            do {
                response = try await completion.promise.futureResult.get()
            } catch {
                channel.close(promise: nil)
                throw error
            }
            channel.close(promise: nil)
            let code = Int(response.status.code)
            if (300..<400).contains(code), let location = response.headers.first(name: "Location"),
               let next = Self.sameHostPath(location, host: host, scheme: scheme) {
                return .redirect(next)
            }
            // A redirect to another host counts as its status: success (the kubelet's rule).
            return .result((200..<400).contains(code) ? .success : .failure("HTTP probe failed with status code \(code)"))
        } catch {
            return .result(.failure(Self.reason(error, timeout: timeout)))
        }
    }

    /// The standard health check over HTTP/2 without TLS (the kubelet's `grpc` probe): SERVING
    /// succeeds; another status, an error status or no answer by the deadline fails.
    func grpcCheck(_ address: IPAddress, _ port: Int, service: String, deadline: NIODeadline, timeout: Duration) async -> ProbeResult {
        guard let socket = socketAddress(address, port) else { return .failure("\(address):\(port) is not an address to connect to") }
        let authority = address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        let loop = group.next()
        let completion = Completion(loop.makePromise(of: GRPCHealthCheck.Reader.Verdict.self))
        let expiry = loop.scheduleTask(deadline: deadline) { completion.complete(.failure(ChannelError.connectTimeout(.zero))) }
        defer {
            expiry.cancel()
            completion.complete(.failure(ChannelError.alreadyClosed))
        }
        let request = GRPCHealthCheck.request(authority: authority, service: service, userAgent: Self.userAgent)
        do {
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(max(.zero, deadline - .now()))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(GRPCHealthHandler(completion, request: request))
                    }
                }
                .connect(to: socket).get()
            let verdict: GRPCHealthCheck.Reader.Verdict
            do {
                verdict = try await completion.promise.futureResult.get()
            } catch {
                channel.close(promise: nil)
                throw error
            }
            channel.close(promise: nil)
            switch verdict {
            case .status(.serving): return .success
            case .status(let status): return .failure("service unhealthy (responded with \(Self.grpcName(status)))")
            case .failed(let reason): return .failure(reason)
            }
        } catch {
            return .failure(Self.reason(error, timeout: timeout))
        }
    }

    static func grpcName(_ status: GRPCHealthCheck.ServingStatus) -> String {
        switch status {
        case .unknown: "UNKNOWN"
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        case .serviceUnknown: "SERVICE_UNKNOWN"
        }
    }

    /// The path to follow when `location` stays on the probed host (relative, or absolute with
    /// the same scheme and authority); nil when it leaves it.
    static func sameHostPath(_ location: String, host: String, scheme: Probe.HTTPGet.Scheme) -> String? {
        if location.hasPrefix("/") && !location.hasPrefix("//") { return location }
        let prefix = "\(scheme.rawValue.lowercased())://\(host)"
        guard location.lowercased().hasPrefix(prefix.lowercased()) else { return nil }
        let rest = String(location.dropFirst(prefix.count))
        if rest.isEmpty { return "/" }
        return rest.hasPrefix("/") ? rest : nil
    }

    /// The failure in the kubelet's words where it has them.
    static func reason(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? NIOConnectionError, let failure = error.connectionErrors.first { return reason(failure.error, timeout: timeout) }
        if case ChannelError.connectTimeout = error { return "no answer within \(timeout)" }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if error is ChannelError { return "the connection closed before a response" }
        if error is NIOSSLError || error is BoringSSLError { return "TLS: \(error)" }
        if error is HTTPParserError { return "not an HTTP response: \(error)" }
        return "\(error)"
    }
}

/// A promise completed once, by whichever of the answer, the connection's end or the deadline
/// comes first.
final class Completion<Value: Sendable>: Sendable {
    let promise: EventLoopPromise<Value>
    let done = Atomic(false)

    init(_ promise: EventLoopPromise<Value>) { self.promise = promise }

    func complete(_ result: Result<Value, any Error>) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        promise.completeWith(result)
    }
}

/// Completes the attempt with the first final response head (the body is never read); the
/// connection's end or an error before a head fails it.
final class ResponseHeadHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    let completion: Completion<HTTPResponseHead>

    init(_ completion: Completion<HTTPResponseHead>) { self.completion = completion }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.status.code >= 200 {
            completion.complete(.success(head))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        completion.complete(.failure(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        completion.complete(.failure(ChannelError.eof))
        context.fireChannelInactive()
    }
}

/// Sends the request the moment the connection is up (on the loop, so that the preface goes
/// before any acknowledgement of what the server sends first), feeds the server's bytes to a
/// `GRPCHealthCheck.Reader`, sends its acknowledgements, and completes the attempt with its
/// verdict; the connection's end before one fails it.
final class GRPCHealthHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let completion: Completion<GRPCHealthCheck.Reader.Verdict>
    let request: [UInt8]
    var reader = GRPCHealthCheck.Reader()

    init(_ completion: Completion<GRPCHealthCheck.Reader.Verdict>, request: [UInt8]) {
        self.completion = completion
        self.request = request
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let (send, verdict) = reader.read(buffer.readableBytesView)
        if !send.isEmpty { context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: send)), promise: nil) }
        if let verdict { completion.complete(.success(verdict)) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        completion.complete(.failure(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        completion.complete(.failure(ChannelError.eof))
        context.fireChannelInactive()
    }
}
