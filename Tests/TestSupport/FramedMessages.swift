#if canImport(Glibc)
import Glibc
#endif

/// DNS over TCP's framing (RFC 1035 §4.2.2): a 2-byte big-endian length, then the message.
public func framed(_ message: [UInt8]) -> [UInt8] { [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message }

/// Reads one framed message from a blocking socket; nil at the end of the stream, on an error
/// or when the socket's receive timeout passes.
public func readFramed(_ fd: Int32) -> [UInt8]? {
    func exactly(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return out
    }
    guard let prefix = exactly(2) else { return nil }
    return exactly(Int(prefix[0]) << 8 | Int(prefix[1]))
}
