import Foundation
import NIOCore
import NetAddress
import Testing
import TestSupport
@testable import ProbeWire
import WorkloadProbes

/// The gRPC health probe: the reader frame by frame (pure), then against a real gRPC server
/// (Python's grpcio, Debian's python3-grpcio) serving `grpc.health.v1.Health/Check`.
struct GRPCProbeTests {
    typealias Reader = GRPCHealthCheck.Reader

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 1, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags,
                UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    static func message(_ fields: [UInt8]) -> [UInt8] { [0, 0, 0, 0, UInt8(fields.count)] + fields }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var chunks: [[UInt8]]
        var send: [UInt8] = []
        var verdict: Reader.Verdict?
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "serving", chunks: [frame(1, flags: 4, []) + frame(0, message([0x08, 0x01]))], verdict: .status(.serving)),
        Case(name: "not serving", chunks: [frame(0, message([0x08, 0x02]))], verdict: .status(.notServing)),
        Case(name: "status left out is UNKNOWN", chunks: [frame(0, message([]))], verdict: .status(.unknown)),
        Case(name: "unknown fields skipped", chunks: [frame(0, message([0x12, 0x02, 0x61, 0x62, 0x08, 0x01, 0x1d, 1, 2, 3, 4]))],
             verdict: .status(.serving)),
        Case(name: "split across reads", chunks: [Array(frame(0, message([0x08, 0x01])).prefix(7)), Array(frame(0, message([0x08, 0x01])).dropFirst(7))],
             verdict: .status(.serving)),
        Case(name: "message split across frames", chunks: [frame(0, [0, 0, 0, 0]) + frame(0, [2, 0x08, 0x01])], verdict: .status(.serving)),
        Case(name: "padded data", chunks: [frame(0, flags: 0x8, [3] + message([0x08, 0x01]) + [0, 0, 0])], verdict: .status(.serving)),
        Case(name: "settings and ping acknowledged", chunks: [frame(4, stream: 0, [0, 3, 0, 0, 0, 100]) + frame(6, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8])],
             send: frame(4, flags: 1, stream: 0, []) + frame(6, flags: 1, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8]), verdict: nil),
        Case(name: "an acknowledgement is not acknowledged", chunks: [frame(4, flags: 1, stream: 0, [])], verdict: nil),
        Case(name: "trailers only", chunks: [frame(1, flags: 5, [0x88])],
             verdict: .failed("the server answered the health check with an error status, not a health status")),
        Case(name: "reset", chunks: [frame(3, [0, 0, 0, 2])], verdict: .failed("the server reset the call (HTTP/2 error code 2)")),
        Case(name: "goaway", chunks: [frame(7, stream: 0, [0, 0, 0, 0, 0, 0, 0, 1])], verdict: .failed("the server closed the connection (HTTP/2 GOAWAY)")),
        Case(name: "oversized frame", chunks: [[0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 1]], verdict: .failed("HTTP/2 frame of 65536 bytes, above the 16384 allowed")),
        Case(name: "compressed", chunks: [frame(0, [1, 0, 0, 0, 0])], verdict: .failed("a compressed health response")),
        Case(name: "huge message", chunks: [frame(0, [0, 0x7f, 0xff, 0xff, 0xff])], verdict: .failed("a health response of 2147483647 bytes")),
        Case(name: "truncated varint", chunks: [frame(0, message([0x08, 0x81]))], verdict: .failed("a malformed health response")),
        Case(name: "field number 0", chunks: [frame(0, message([0x00, 0x01]))], verdict: .failed("a malformed health response")),
        Case(name: "stream ends inside the message", chunks: [frame(0, flags: 1, [0, 0, 0, 0, 9, 0x08])], verdict: .failed("the response ended inside its message")),
        Case(name: "another stream's data", chunks: [frame(0, stream: 3, message([0x08, 0x01]))], verdict: nil),
    ]

    @Test(arguments: cases) func theReaderDecides(_ c: Case) {
        var reader = Reader()
        var sent: [UInt8] = []
        var verdict: Reader.Verdict? = nil
        for chunk in c.chunks where verdict == nil {
            let (send, decided) = reader.read(chunk)
            sent += send
            verdict = decided
        }
        #expect(sent == c.send)
        #expect(verdict == c.verdict)
    }

    /// Hostile bytes (seeded): the reader never traps, and how the bytes are split into reads
    /// never changes what it decides or sends.
    @Test func anyBytesInAnySplitGiveOneVerdict() {
        var random = SplitMix64(state: 0x6772_7063)
        for _ in 0..<5_000 {
            // Frames that look right, with random types, flags, streams and payloads, then noise.
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                let payload = (0..<Int.random(in: 0...12, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                bytes += Self.frame(UInt8.random(in: 0...9, using: &random), flags: UInt8.random(in: 0...255, using: &random),
                                    stream: UInt32.random(in: 0...3, using: &random), payload)
            }
            bytes += (0..<Int.random(in: 0...20, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            func run(_ chunks: [ArraySlice<UInt8>]) -> ([UInt8], Reader.Verdict?) {
                var reader = Reader()
                var sent: [UInt8] = []
                for chunk in chunks {
                    let (send, verdict) = reader.read(chunk)
                    sent += send
                    if let verdict { return (sent, verdict) }
                }
                return (sent, nil)
            }
            let whole = run([bytes[...]])
            var chunks: [ArraySlice<UInt8>] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int.random(in: 1...7, using: &random))
                chunks.append(bytes[start..<end])
                start = end
            }
            let split = run(chunks)
            #expect(whole.0 == split.0 && whole.1 == split.1, "\(bytes)")
        }
    }

    /// The request as a gRPC server expects it: preface, SETTINGS, HEADERS (HPACK literals, no
    /// Huffman), one DATA frame with the service name.
    @Test func theRequestIsWhatAServerReads() {
        let bytes = GRPCHealthCheck.request(authority: "127.0.0.1:50051", service: "db", userAgent: "kube-probe/1.31")
        #expect(Array(bytes.prefix(24)) == Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8))
        #expect(Array(bytes[24..<33]) == [0, 0, 0, 4, 0, 0, 0, 0, 0])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("/grpc.health.v1.Health/Check") && text.contains("application/grpc") && text.contains("trailers"))
        #expect(Array(bytes.suffix(18)) == [0, 0, 9, 0, 1, 0, 0, 0, 1] + [0, 0, 0, 0, 4, 0x0a, 2, 0x64, 0x62])
        // HPACK integers past their prefix.
        var out: [UInt8] = []
        GRPCHealthCheck.integer(&out, 1337, prefix: 5, first: 0)
        #expect(out == [31, 154, 10])
    }

    /// A Python gRPC server answering the health service: "" and "db" serving, "cache" not
    /// serving, anything else NOT_FOUND (as grpc-health-probe sees an unknown service).
    static let server = """
        import grpc, sys
        from concurrent import futures
        statuses = {"": 1, "db": 1, "cache": 2}
        def check(request, context):
            service = request[2:2 + request[1]].decode() if request else ""
            if service not in statuses:
                context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            return bytes([0x08, statuses[service]])
        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.31:0")
        server.start()
        print(port, flush=True)
        sys.stdin.read()
        server.stop(0)
        """

    @Test func againstARealGRPCServer() async throws {
        let python = "/usr/bin/python3"
        let probe = ChildProcess()
        probe.executableURL = URL(fileURLWithPath: python)
        probe.arguments = ["-c", "import grpc"]
        probe.standardError = FileHandle.nullDevice
        let available = (try? probe.run()) != nil && { probe.waitUntilExit(); return probe.terminationStatus == 0 }()
        #expect(available, "Python's grpcio is not installed (Debian: python3-grpcio; .ci/run installs it)")
        guard available else { return }
        let child = ChildProcess()
        child.executableURL = URL(fileURLWithPath: python)
        child.arguments = ["-c", Self.server]
        let output = Pipe()
        let input = Pipe()
        child.standardOutput = output
        child.standardInput = input
        child.standardError = FileHandle.nullDevice
        try child.run()
        defer {
            try? input.fileHandleForWriting.close()
            child.terminate()
            child.waitUntilExit()
        }
        let reading = output.fileHandleForReading
        let line = await onThread { () -> String in
            var bytes: [UInt8] = []
            while let byte = (try? reading.read(upToCount: 1))??.first, byte != 0x0a { bytes.append(byte) }
            return String(decoding: bytes, as: UTF8.self)
        }.value
        let port = try #require(Int(line), "the server printed \(line)")
        let runner = NetworkProbeRunner()
        let address = IPAddress("127.0.0.31")!
        func check(_ service: String) async -> ProbeResult {
            await runner.run(.grpc(address: address, port: port, service: service), timeout: .seconds(5))
        }
        let first = await check("")
        #expect(first == .success, "\(first)")
        #expect(await check("db") == .success)
        #expect(await check("cache") == .failure("service unhealthy (responded with NOT_SERVING)"))
        #expect(await check("nope") == .failure("the server answered the health check with an error status, not a health status"))
    }

    /// A server that accepts and never answers fails the probe at its deadline; a closed port
    /// at once.
    @Test func aSilentServerFailsByTheDeadline() async throws {
        let (channel, port) = try await NetworkProbeRunnerTests.backend(.silent)
        defer { channel.close(promise: nil) }
        let loopback = IPAddress("127.0.0.1")!
        #expect(await NetworkProbeRunner().run(.grpc(address: loopback, port: port, service: ""), timeout: .seconds(1))
                == .failure("no answer within 1.0 seconds"))
        let closed = ClosedPort()
        defer { closed.close() }
        #expect(await NetworkProbeRunner().run(.grpc(address: loopback, port: Int(closed.port), service: ""), timeout: .seconds(1))
                == .failure("connection refused"))
    }
}
