import NIOCore
import NIOPosix
import NetAddress
import ServiceRegistry
import Synchronization
import Testing
import TestSupport
import WorkloadProbes
#if canImport(Glibc)
import Glibc
#endif

/// Probes against real backends on loopback, each behaving as a backend can: answering,
/// refusing, accepting and never answering, trickling bytes, redirecting in a loop, sending a
/// body without end. Every attempt ends within its deadline with the kubelet's verdict.
struct NetworkProbeRunnerTests {
    /// What a test backend does with a connection.
    enum Behaviour: Sendable {
        /// Writes these bytes when the request arrives, then closes.
        case respond(String)
        /// Accepts and never answers.
        case silent
        /// Writes one byte of an HTTP head every 100 ms, never finishing it within a second.
        case trickle
        /// A 200 head, then body chunks for as long as the client reads (bounded: 4,096 chunks).
        case endlessBody
    }

    final class Backend: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let behaviour: Behaviour
        init(_ behaviour: Behaviour) { self.behaviour = behaviour }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let loop = context.eventLoop
            let channel = context.channel
            switch behaviour {
            case .respond(let text):
                context.writeAndFlush(NIOAny(ByteBuffer(string: text))).whenComplete { _ in channel.close(promise: nil) }
            case .silent:
                break
            case .trickle:
                let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
                for (i, byte) in head.enumerated() {
                    loop.scheduleTask(in: .milliseconds(Int64(100 * (i + 1)))) {
                        channel.writeAndFlush(ByteBuffer(bytes: [byte]), promise: nil)
                    }
                }
            case .endlessBody:
                channel.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"), promise: nil)
                let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 65_536)
                // Bounded: at most 4,096 chunks (256 MiB), written as the client takes them.
                @Sendable func send(_ left: Int) {
                    guard left > 0, channel.isActive else { return }
                    channel.writeAndFlush(chunk).whenSuccess { send(left - 1) }
                }
                send(4096)
            }
        }
    }

    /// A backend on a loopback port of its own.
    static func backend(_ behaviour: Behaviour) async throws -> (any Channel, Int) {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Backend(behaviour)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return (channel, channel.localAddress!.port!)
    }

    static let loopback = IPAddress("127.0.0.1")!

    static func http(_ port: Int, path: String = "/healthz") -> ProbeTarget {
        ProbeTarget(.httpGet(Probe.HTTPGet(path: path, port: .int(port))), podIP: "127.0.0.1", ports: [])
    }

    @Test func tcpConnects() async throws {
        let (channel, port) = try await Self.backend(.silent)
        defer { channel.close(promise: nil) }
        // Deadlines of tests that expect an answer are long: the suite's other tests can hold the
        // cooperative threads for seconds, and only the verdict is checked here.
        let result = await NetworkProbeRunner().run(.tcp(address: Self.loopback, port: port), timeout: .seconds(30))
        #expect(result == .success)
        let closed = ClosedPort()
        defer { closed.close() }
        let refused = await NetworkProbeRunner().run(.tcp(address: Self.loopback, port: Int(closed.port)), timeout: .seconds(30))
        #expect(refused == .failure("connection refused"))
    }

    /// Attempts started together (as the prober starts those due at once): TCP connects on the
    /// epoll loop, the others in tasks; each is answered once, with its own verdict.
    @Test func attemptsStartedTogetherAreEachAnsweredOnce() async throws {
        let (open, openPort) = try await Self.backend(.silent)
        defer { open.close(promise: nil) }
        let (web, webPort) = try await Self.backend(.respond("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
        defer { web.close(promise: nil) }
        let closedPort = ClosedPort()
        defer { closedPort.close() }
        let closed = Int(closedPort.port)
        let targets: [(ProbeTarget, ProbeResult)] = [
            (.tcp(address: Self.loopback, port: openPort), .success),
            (.tcp(address: Self.loopback, port: closed), .failure("connection refused")),
            (.tcp(address: Self.loopback, port: 70_000), .failure("127.0.0.1:70000 is not an address to connect to")),
            (Self.http(webPort), .failure("HTTP probe failed with status code 503")),
            (.tcp(address: Self.loopback, port: openPort), .success),
        ]
        let results = Mutex<[Int: [ProbeResult]]>([:])
        NetworkProbeRunner().start(targets.enumerated().map { index, target in
            ProbeAttempt(target: target.0, timeout: .seconds(30)) { result in results.withLock { $0[index, default: []].append(result) } }
        })
        #expect(await eventually { results.withLock { $0.count } == targets.count })
        try await Task.sleep(for: .milliseconds(50))
        for (index, target) in targets.enumerated() {
            #expect(results.withLock { $0[index] } == [target.1], "\(target.0)")
        }
    }

    struct HTTPCase: CustomTestStringConvertible, Sendable {
        var reason: String
        var response: String
        var succeeds: Bool
        var testDescription: String { reason }
    }

    static let httpCases: [HTTPCase] = [
        HTTPCase(reason: "200 is success", response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", succeeds: true),
        HTTPCase(reason: "399 is still success", response: "HTTP/1.1 399 Whatever\r\nContent-Length: 0\r\n\r\n", succeeds: true),
        HTTPCase(reason: "a redirect elsewhere counts as its status (success)",
                 response: "HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/\r\nContent-Length: 0\r\n\r\n", succeeds: true),
        HTTPCase(reason: "503 is failure", response: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", succeeds: false),
        HTTPCase(reason: "404 is failure", response: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", succeeds: false),
        HTTPCase(reason: "not HTTP is failure", response: "SSH-2.0-OpenSSH_9.2\r\n", succeeds: false),
        HTTPCase(reason: "a close before any head is failure", response: "", succeeds: false),
    ]

    @Test(arguments: httpCases) func httpStatusDecides(_ c: HTTPCase) async throws {
        let (channel, port) = try await Self.backend(.respond(c.response))
        defer { channel.close(promise: nil) }
        let result = await NetworkProbeRunner().run(Self.http(port), timeout: .seconds(30))
        #expect(result.succeeded == c.succeeds, "\(result)")
    }

    /// A refused connection is a failure (it once left the attempt's promise uncompleted, which NIO traps on).
    @Test func httpToAClosedPortIsRefused() async throws {
        let closed = ClosedPort()
        defer { closed.close() }
        let result = await NetworkProbeRunner().run(Self.http(Int(closed.port)), timeout: .seconds(30))
        #expect(result == .failure("connection refused"))
    }

    @Test func aRedirectLoopOnTheSameHostEndsAfterTenHops() async throws {
        let (channel, port) = try await Self.backend(.respond("HTTP/1.1 301 Moved\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"))
        defer { channel.close(promise: nil) }
        // The deadline is generous: eleven connections one after another, in a test process
        // whose other suites can keep the cooperative threads busy for seconds.
        let result = await NetworkProbeRunner().run(Self.http(port), timeout: .seconds(60))
        #expect(result == .failure("HTTP probe stopped after 10 redirects"))
    }

    /// A connect that never completes (the listener's backlog is full, so its SYNs are dropped)
    /// fails by its deadline, and the probes started meanwhile are answered without waiting for it.
    @Test func aTCPConnectThatHangsFailsByItsDeadline() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.7")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        try #require(bound && listen(listener, 0) == 0)
        // The backlog filled by connections never accepted.
        let fillers = (0..<2).map { _ in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) } }
            return fd
        }
        defer { for fd in fillers + [listener] { close(fd) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        async let hung = NetworkProbeRunner().run(.tcp(address: IPAddress("127.0.0.7")!, port: port), timeout: .seconds(1))
        let closed = ClosedPort()
        defer { closed.close() }
        let refused = await NetworkProbeRunner().run(.tcp(address: Self.loopback, port: Int(closed.port)), timeout: .seconds(30))
        #expect(refused == .failure("connection refused"))
        #expect(await hung == .failure("no answer within 1.0 seconds"))
    }

    /// A backend that accepts and never answers, or trickles its head, fails by the deadline;
    /// one that sends a body without end succeeds on its head (the body is never read).
    @Test(arguments: [Behaviour.silent, .trickle]) func aBackendThatNeverFinishesFailsByItsDeadline(_ behaviour: Behaviour) async throws {
        let (channel, port) = try await Self.backend(behaviour)
        defer { channel.close(promise: nil) }
        let result = await NetworkProbeRunner().run(Self.http(port), timeout: .seconds(1))
        #expect(result == .failure("no answer within 1.0 seconds"))
    }

    @Test func anEndlessBodyDoesNotHoldTheProbe() async throws {
        let (channel, port) = try await Self.backend(.endlessBody)
        defer { channel.close(promise: nil) }
        let result = await NetworkProbeRunner().run(Self.http(port), timeout: .seconds(30))
        #expect(result == .success)
    }

    @Test func namedPortsAndHostsAreResolvedFromThePod() {
        let ports = [Pod.ContainerPort(name: "health", containerPort: 8086)]
        let named = ProbeTarget(.tcpSocket(Probe.TCPSocket(port: .string("health"))), podIP: "10.244.0.5", ports: ports)
        #expect(named == .tcp(address: IPAddress("10.244.0.5")!, port: 8086))
        let missing = ProbeTarget(.tcpSocket(Probe.TCPSocket(port: .string("admin"))), podIP: "10.244.0.5", ports: ports)
        #expect(missing == .unusable("the container has no port named \"admin\""))
        let host = ProbeTarget(.httpGet(Probe.HTTPGet(host: "127.0.0.9", port: .int(80))), podIP: "10.244.0.5", ports: ports)
        #expect(host.description == "http://127.0.0.9:80/")
    }
}
