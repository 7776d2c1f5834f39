import NIOCore
import NIOHTTP2

/// Answers etcd's HTTP/2 PING frames itself, before swift-nio-http2 sees them.
///
/// etcd's server (grpc-go) sends a ping to estimate bandwidth with nearly every request it
/// receives. swift-nio-http2 counts every ping it receives as a control frame and closes a
/// connection that gets more than 200 in 30 s (a guard meant for servers), and grpc-swift gives
/// no way to raise that limit: at more than about seven writes a second, the connection to etcd
/// would be torn down every half minute, and with it every call on it (the registry's watch
/// included). So pings are acknowledged here, at the frame level, exactly as the HTTP/2 layer
/// would (same payload, ACK flag), and every other frame goes on unchanged. The acknowledgements
/// of our own keepalive pings go on too: the keepalive needs them.
final class PingAnswerer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let frameHeaderLength = 9
    static let pingType: UInt8 = 6
    static let ackFlag: UInt8 = 1

    /// The start of a frame header (or of a ping) not yet complete: at most 16 bytes.
    var partial: ByteBuffer?
    /// Bytes of the current frame's payload still to pass on as they come.
    var passing = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var partial {
            partial.writeBuffer(&incoming)
            incoming = partial
            self.partial = nil
        }
        var forward = context.channel.allocator.buffer(capacity: incoming.readableBytes)
        var answered = false
        while incoming.readableBytes > 0 {
            if passing > 0 {
                let count = min(passing, incoming.readableBytes)
                var slice = incoming.readSlice(length: count)!
                forward.writeBuffer(&slice)
                passing -= count
                continue
            }
            // The first three bytes are the payload's length, the fourth the frame's type.
            guard incoming.readableBytes >= Self.frameHeaderLength,
                  let word = incoming.getInteger(at: incoming.readerIndex, as: UInt32.self),
                  let flags = incoming.getInteger(at: incoming.readerIndex + 4, as: UInt8.self),
                  let stream = incoming.getInteger(at: incoming.readerIndex + 5, as: UInt32.self) else { break }
            let length = Int(word >> 8)
            let isPing = UInt8(truncatingIfNeeded: word) == Self.pingType && flags & Self.ackFlag == 0 && length == 8
                && stream & 0x7fff_ffff == 0
            guard isPing else {
                var header = incoming.readSlice(length: Self.frameHeaderLength)!
                forward.writeBuffer(&header)
                passing = length
                continue
            }
            guard incoming.readableBytes >= Self.frameHeaderLength + 8 else { break }
            incoming.moveReaderIndex(forwardBy: Self.frameHeaderLength)
            var payload = incoming.readSlice(length: 8)!
            var ack = context.channel.allocator.buffer(capacity: Self.frameHeaderLength + 8)
            ack.writeInteger(UInt32(8 << 8) | UInt32(Self.pingType))
            ack.writeInteger(Self.ackFlag)
            ack.writeInteger(UInt32(0))
            ack.writeBuffer(&payload)
            context.write(wrapOutboundOut(ack), promise: nil)
            answered = true
        }
        if incoming.readableBytes > 0 { partial = incoming }
        if answered { context.flush() }
        if forward.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(forward)) }
    }

    /// Puts the answerer in `channel`'s pipeline just before the HTTP/2 handler (after TLS),
    /// before the connection has read anything.
    static func install(in channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let http2 = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
            try channel.pipeline.syncOperations.addHandler(PingAnswerer(), position: .before(http2))
        }
    }
}
