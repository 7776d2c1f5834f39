#if canImport(Glibc)
import Glibc
#endif
import CShims
import Dispatch

/// A minimal HTTP/1.1 server for the operational endpoints (health, readiness, metrics): one
/// GET per connection, the handler's status and body, `Connection: close`. Requests larger than
/// 8 KiB, or slower than 5 s, are dropped. Knows nothing of what the paths mean.
public final class HTTPServer: @unchecked Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String

        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    /// The response to a method and path.
    public typealias Handler = @Sendable (_ method: String, _ path: String) -> Response

    public let address: SocketAddress
    let listener: Listener
    var queue: DispatchQueue { listener.queue }
    let handler: Handler

    public init(address: SocketAddress, handler: @escaping Handler) throws(SocketError) {
        self.handler = handler
        nonisolated(unsafe) weak var server: HTTPServer? = nil
        listener = try Listener(address: address, label: "http", reusePort: false) { client in
            guard let server else { close(client); return }
            server.serve(client)
        }
        self.address = listener.address
        server = self
    }

    public func start() { listener.start() }

    public func stop() { listener.stop() }

    func serve(_ client: Int32) {
        let source = DispatchSource.makeReadSource(fileDescriptor: client, queue: queue)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        var request: [UInt8] = []
        var finished = false
        func finish() {
            guard !finished else { return }
            finished = true
            source.cancel()
            timer.cancel()
        }
        source.setCancelHandler { close(client) }
        source.setEventHandler { [handler] in
            var chunk = [UInt8](repeating: 0, count: 2048)
            let n: Int
            switch chunk.withUnsafeMutableBytes({ Socket.receive(client, into: $0) }) {
            case .done(let count) where count > 0: n = count
            case .wouldBlock: return
            default:
                finish()
                return
            }
            request.append(contentsOf: chunk[0..<n])
            guard request.count <= 8192 else { finish(); return }
            guard let end = Self.headerEnd(request) else { return }
            let line = String(decoding: request[0..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
            let parts = line.split(separator: " ")
            let response: Response
            if parts.count >= 2 {
                response = handler(String(parts[0]), String(parts[1].split(separator: "?").first ?? ""))
            } else {
                response = Response(status: 400, body: "bad request\n")
            }
            let body = Array(response.body.utf8)
            let head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            let bytes = Array(head.utf8) + (parts.first == "HEAD" ? [] : body)
            // Small responses: one blocking-free attempt, the rest dropped if the client is that slow.
            var offset = 0
            while offset < bytes.count {
                guard case .done(let sent) = bytes.withUnsafeBytes({ Socket.send(client, UnsafeRawBufferPointer(rebasing: $0[offset...])) }),
                      sent > 0 else { break }
                offset += sent
            }
            finish()
        }
        timer.schedule(deadline: .now() + .seconds(5))
        timer.setEventHandler { finish() }
        source.resume()
        timer.resume()
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}
