import NIOCore

/// Writes an answer's parts to the client: as HTTP/1.1 bytes on a connection, as HTTP/2 frames on
/// a stream (whose codec is `HTTP2StreamCodec`).
struct ClientWriter {
    let isHTTP2: Bool
    private var encoder = HTTP1ResponseEncoder()

    init(isHTTP2: Bool) {
        self.isHTTP2 = isHTTP2
    }

    mutating func write(
        _ part: ClientResponsePart,
        context: ChannelHandlerContext,
        promise: EventLoopPromise<Void>? = nil
    ) {
        if isHTTP2 {
            if let frame = HTTP2StreamCodec.encode(part, allocator: context.channel.allocator) {
                context.write(NIOAny(frame), promise: promise)
            } else {
                promise?.fail(ChannelError.inappropriateOperationForState)
            }
            return
        }
        encoder.encode(part, allocator: context.channel.allocator, promise: promise) { bytes, promise in
            context.write(NIOAny(bytes), promise: promise)
        }
    }

    /// Closes once everything written has gone out: closing at once would drop whatever the
    /// socket had not taken yet (the tail of a large body to a slow reader). An empty write goes
    /// last and the close follows its completion, so no answer needs a promise of its own.
    static func closeAfterLastWrite(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(IOData.byteBuffer(ByteBuffer())), promise: promise)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}
