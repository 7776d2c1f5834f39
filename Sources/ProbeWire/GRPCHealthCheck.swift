/// The gRPC health check the kubelet's `grpc` probe makes (`grpc.health.v1.Health/Check`, one
/// unary call over HTTP/2 without TLS), as bytes: the request a client sends, and a reader of
/// the server's frames that decides. It needs only what the health protocol uses: no header
/// is decoded (HPACK state is never needed, since only the response message decides), flow
/// control never comes into play for a message of a few bytes, and the connection's SETTINGS
/// and PINGs are acknowledged as HTTP/2 requires. Pure, so that it is tested frame by frame.
public enum GRPCHealthCheck {
    /// `HealthCheckResponse.ServingStatus`.
    public enum ServingStatus: Int, Sendable {
        case unknown = 0, serving = 1, notServing = 2, serviceUnknown = 3
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let path = "/grpc.health.v1.Health/Check"

    enum FrameType: UInt8 {
        case data = 0, headers = 1, rstStream = 3, settings = 4, ping = 6, goAway = 7, windowUpdate = 8, continuation = 9
    }

    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
    static let padded: UInt8 = 0x8
    static let priority: UInt8 = 0x20

    /// Everything the client sends, at once: the preface, empty SETTINGS, the request's
    /// HEADERS on stream 1 and its one DATA frame ending the stream.
    public static func request(authority: String, service: String, userAgent: String) -> [UInt8] {
        var block: [UInt8] = [0x83, 0x86]  // :method POST, :scheme http (static table 3 and 6)
        literal(&block, nameIndex: 4, path)  // :path
        literal(&block, nameIndex: 1, authority)  // :authority
        literal(&block, nameIndex: 31, "application/grpc")  // content-type
        literal(&block, name: "te", "trailers")
        literal(&block, name: "user-agent", userAgent)
        // HealthCheckRequest { string service = 1; } behind gRPC's 5-byte message prefix.
        var message: [UInt8] = []
        if !service.isEmpty {
            message.append(0x0a)
            varint(&message, UInt64(service.utf8.count))
            message += Array(service.utf8)
        }
        var body: [UInt8] = [0]
        body += withUnsafeBytes(of: UInt32(message.count).bigEndian) { Array($0) }
        body += message
        var bytes = preface
        frame(&bytes, .settings, flags: 0, stream: 0, [])
        frame(&bytes, .headers, flags: endHeaders, stream: 1, block)
        frame(&bytes, .data, flags: endStream, stream: 1, body)
        return bytes
    }

    static func frame(_ out: inout [UInt8], _ type: FrameType, flags: UInt8, stream: UInt32, _ payload: [UInt8]) {
        let length = UInt32(payload.count)
        out += [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type.rawValue, flags]
        out += withUnsafeBytes(of: (stream & 0x7fff_ffff).bigEndian) { Array($0) }
        out += payload
    }

    /// An HPACK integer with an `n`-bit prefix whose other bits are `first`.
    static func integer(_ out: inout [UInt8], _ value: Int, prefix n: Int, first: UInt8) {
        let limit = (1 << n) - 1
        if value < limit {
            out.append(first | UInt8(value))
            return
        }
        out.append(first | UInt8(limit))
        var rest = value - limit
        while rest >= 128 {
            out.append(UInt8(rest % 128) | 0x80)
            rest /= 128
        }
        out.append(UInt8(rest))
    }

    static func string(_ out: inout [UInt8], _ text: String) {
        integer(&out, text.utf8.count, prefix: 7, first: 0)  // not Huffman-coded
        out += Array(text.utf8)
    }

    /// A literal header field without indexing, its name from the static table.
    static func literal(_ out: inout [UInt8], nameIndex: Int, _ value: String) {
        integer(&out, nameIndex, prefix: 4, first: 0)
        string(&out, value)
    }

    /// A literal header field without indexing, its name given.
    static func literal(_ out: inout [UInt8], name: String, _ value: String) {
        out.append(0)
        string(&out, name)
        string(&out, value)
    }

    static func varint(_ out: inout [UInt8], _ value: UInt64) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// The server's side of the connection, read as it arrives.
    public struct Reader: Sendable {
        public enum Verdict: Equatable, Sendable {
            case status(ServingStatus)
            case failed(String)
        }

        var buffer: [UInt8] = []
        var message: [UInt8] = []
        /// The largest frame accepted (SETTINGS_MAX_FRAME_SIZE's default: nothing asked for more).
        static let maxFrame = 16_384

        public init() {}

        /// Takes bytes from the server; returns what to send back (acknowledgements) and the
        /// verdict once there is one.
        public mutating func read(_ bytes: some Sequence<UInt8>) -> (send: [UInt8], verdict: Verdict?) {
            buffer += bytes
            var send: [UInt8] = []
            var offset = 0
            defer { buffer.removeFirst(offset) }
            while buffer.count - offset >= 9 {
                let length = Int(buffer[offset]) << 16 | Int(buffer[offset + 1]) << 8 | Int(buffer[offset + 2])
                guard length <= Self.maxFrame else { return (send, .failed("HTTP/2 frame of \(length) bytes, above the 16384 allowed")) }
                guard buffer.count - offset >= 9 + length else { break }
                let type = buffer[offset + 3]
                let flags = buffer[offset + 4]
                let stream = UInt32(buffer[offset + 5]) << 24 & 0x7f00_0000 | UInt32(buffer[offset + 6]) << 16
                    | UInt32(buffer[offset + 7]) << 8 | UInt32(buffer[offset + 8])
                let payload = Array(buffer[(offset + 9)..<(offset + 9 + length)])
                offset += 9 + length
                switch FrameType(rawValue: type) {
                case .settings where flags & GRPCHealthCheck.ack == 0:
                    GRPCHealthCheck.frame(&send, .settings, flags: GRPCHealthCheck.ack, stream: 0, [])
                case .ping where flags & GRPCHealthCheck.ack == 0:
                    GRPCHealthCheck.frame(&send, .ping, flags: GRPCHealthCheck.ack, stream: 0, payload)
                case .goAway:
                    return (send, .failed("the server closed the connection (HTTP/2 GOAWAY)"))
                case .rstStream where stream == 1:
                    let code = payload.count >= 4 ? payload[0..<4].reduce(0) { $0 << 8 | UInt32($1) } : 0
                    return (send, .failed("the server reset the call (HTTP/2 error code \(code))"))
                case .data where stream == 1:
                    var data = payload[...]
                    if flags & GRPCHealthCheck.padded != 0 {
                        guard let pad = data.first, Int(pad) < data.count else { return (send, .failed("bad HTTP/2 padding")) }
                        data = data.dropFirst().dropLast(Int(pad))
                    }
                    message += data
                    if let verdict = Self.decide(message) { return (send, verdict) }
                    if flags & GRPCHealthCheck.endStream != 0 { return (send, .failed("the response ended inside its message")) }
                case .headers where stream == 1 && flags & GRPCHealthCheck.endStream != 0:
                    // Trailers before any message: gRPC's error status (an unknown service,
                    // an unimplemented health service).
                    return (send, .failed("the server answered the health check with an error status, not a health status"))
                default:
                    break
                }
            }
            return (send, nil)
        }

        /// The verdict once the gRPC message is whole: its `status` field (1), UNKNOWN when absent.
        static func decide(_ message: [UInt8]) -> Verdict? {
            guard message.count >= 5 else { return nil }
            guard message[0] == 0 else { return .failed("a compressed health response") }
            let length = Int(message[1]) << 24 | Int(message[2]) << 16 | Int(message[3]) << 8 | Int(message[4])
            guard length <= 1024 else { return .failed("a health response of \(length) bytes") }
            guard message.count >= 5 + length else { return nil }
            var fields = message[5..<(5 + length)]
            var status = 0
            while let key = fields.first {
                fields = fields.dropFirst()
                let wire = key & 0x7
                guard key >> 3 != 0, let value = varint(&fields, wire: wire) else { return .failed("a malformed health response") }
                if key >> 3 == 1 && wire == 0 { status = Int(clamping: value) }
            }
            return .status(ServingStatus(rawValue: status) ?? .unknown)
        }

        /// Reads (and for a length-delimited field skips) one field's value; nil when malformed.
        static func varint(_ bytes: inout ArraySlice<UInt8>, wire: UInt8) -> UInt64? {
            switch wire {
            case 0, 2:
                var value: UInt64 = 0
                var shift: UInt64 = 0
                while true {
                    guard let byte = bytes.first, shift < 64 else { return nil }
                    bytes = bytes.dropFirst()
                    value |= UInt64(byte & 0x7f) << shift
                    if byte & 0x80 == 0 { break }
                    shift += 7
                }
                if wire == 2 {
                    guard value <= UInt64(bytes.count) else { return nil }
                    bytes = bytes.dropFirst(Int(value))
                }
                return value
            case 1:
                guard bytes.count >= 8 else { return nil }
                bytes = bytes.dropFirst(8)
                return 0
            case 5:
                guard bytes.count >= 4 else { return nil }
                bytes = bytes.dropFirst(4)
                return 0
            default:
                return nil
            }
        }
    }
}
