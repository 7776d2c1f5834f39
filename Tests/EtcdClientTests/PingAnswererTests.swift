@testable import EtcdClient
import NIOCore
import NIOEmbedded
import Testing
import TestSupport

/// The ping answerer on frames as they come off a socket: in pieces of any size.
struct PingAnswererTests {
    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length), type, flags,
                UInt8(stream >> 24), UInt8(truncatingIfNeeded: stream >> 16), UInt8(truncatingIfNeeded: stream >> 8),
                UInt8(truncatingIfNeeded: stream)] + payload
    }

    @Test(arguments: [1, 2, 7, 9, 17, 64, 4096])
    func pingsAreAnsweredAndEverythingElsePasses(chunk: Int) throws {
        let ping = Self.frame(type: 6, payload: [1, 2, 3, 4, 5, 6, 7, 8])
        let pingAck = Self.frame(type: 6, flags: 1, payload: [9, 9, 9, 9, 9, 9, 9, 9])
        let data = Self.frame(type: 0, flags: 1, stream: 3, payload: Array(repeating: 0xAB, count: 300))
        let headers = Self.frame(type: 1, flags: 4, stream: 3, payload: [0x88])
        let settings = Self.frame(type: 4, payload: [])
        // A ping on a stream is a protocol error: the HTTP/2 layer is to see it, not us.
        let badPing = Self.frame(type: 6, stream: 5, payload: [1, 2, 3, 4, 5, 6, 7, 8])
        let input = settings + ping + headers + data + pingAck + ping + badPing + data
        let channel = EmbeddedChannel(handler: PingAnswerer())
        var offset = 0
        while offset < input.count {
            let end = min(offset + chunk, input.count)
            try channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
            offset = end
        }
        var forwarded: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { forwarded += Array(buffer.readableBytesView) }
        #expect(forwarded == settings + headers + data + pingAck + badPing + data)
        var answers: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { answers += Array(buffer.readableBytesView) }
        #expect(answers == Self.frame(type: 6, flags: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8]) + Self.frame(type: 6, flags: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8]))
        _ = try channel.finish()
    }

    /// A frame that announces 16 MB is passed on as its bytes come, never held until complete.
    @Test func largeFramesPassAsTheyCome() throws {
        let channel = EmbeddedChannel(handler: PingAnswerer())
        try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 1] + [1, 2, 3]))
        let first = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(first.readableBytes == 12)
        try channel.writeInbound(ByteBuffer(bytes: Array(repeating: 6, count: 100)))
        let second = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(Array(second.readableBytesView) == Array(repeating: 6, count: 100), "payload bytes that look like a ping are payload")
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }

    /// Frames of every type cut anywhere: nothing is lost or invented, nothing crashes, and
    /// payloads pass as they come (only a header, or a ping, is ever held back).
    @Test func randomFramesSurvive() throws {
        var random = SplitMix64(state: 7)
        for _ in 0..<200 {
            var input: [UInt8] = []
            var expected: [UInt8] = []
            for _ in 0..<Int(random.next() % 6) {
                let type = UInt8(random.next() % 10)
                let payload = (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let frame = Self.frame(type: type, flags: UInt8(random.next() % 2), stream: UInt32(random.next() % 2), payload: payload)
                input += frame
                let answered = type == 6 && frame[4] & 1 == 0 && payload.count == 8 && frame[8] == 0
                if !answered { expected += frame }
            }
            // A trailing incomplete header: held until the rest comes, never forwarded alone.
            input += [0xFF, 0xFF, 0xFF, 0]
            let channel = EmbeddedChannel(handler: PingAnswerer())
            var offset = 0
            while offset < input.count {
                let end = min(offset + 1 + Int(random.next() % 50), input.count)
                try channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
                offset = end
            }
            var forwarded: [UInt8] = []
            while let buffer = try channel.readInbound(as: ByteBuffer.self) { forwarded += Array(buffer.readableBytesView) }
            #expect(forwarded == expected)
            _ = try? channel.finish()
        }
    }
}
