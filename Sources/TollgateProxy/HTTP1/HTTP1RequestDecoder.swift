import NIOCore
import NIOHTTP1
import TollgateCore

/// Turns a client connection's bytes into `RequestPart`s with `HTTP1RequestParser`, in
/// place of NIO's `HTTPRequestDecoder` (whose llhttp accepts bare LF, obs-fold in some spellings,
/// chained transfer codings and more than a proxy should pass on: `HTTP1ParserDifferentialTests`).
///
/// A refusal goes down the pipeline as `errorCaught(HTTP1ParseError)` and nothing after it is
/// parsed. After a request asking to switch protocols the decoder holds what follows until
/// `resume()` (answered without a switch) or its removal (relayed: the held bytes go on raw).
final class HTTP1RequestDecoder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = RequestPart

    private var parser: HTTP1RequestParser
    private var buffer = ByteBuffer()
    private var context: ChannelHandlerContext?
    private var decoding = false
    private var failed = false

    init(limits: HTTP1RequestParser.Limits) {
        parser = HTTP1RequestParser(limits: limits)
    }

    convenience init(server: ServerSettings) {
        self.init(limits: HTTP1RequestParser.Limits(server))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var received = unwrapInboundIn(data)
        if buffer.readableBytes == 0 {
            buffer = received
        } else {
            buffer.writeBuffer(&received)
        }
        decode(context: context)
    }

    /// Parses on after a request that asked to switch protocols was answered without switching.
    func resume() {
        parser.resume()
        if let context { decode(context: context) }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if !failed, buffer.readableBytes > 0 {
            let rest = buffer
            buffer = ByteBuffer()
            context.fireChannelRead(NIOAny(rest))
        }
        context.leavePipeline(removalToken: removalToken)
    }

    private func decode(context: ChannelHandlerContext) {
        guard !decoding else { return }
        decoding = true
        defer { decoding = false }
        while !failed, self.context != nil {
            do {
                switch try parser.next(&buffer) {
                case .part(let part):
                    context.fireChannelRead(wrapInboundOut(part))
                case .needMoreData, .paused:
                    // An empty buffer is replaced by the next read; clearing it would copy storage
                    // that body slices still share.
                    if buffer.readableBytes > 0 && buffer.readerIndex > 16 * 1024 {
                        buffer.discardReadBytes()
                    }
                    return
                }
            } catch {
                failed = true
                buffer = ByteBuffer()
                context.fireErrorCaught(error)
                return
            }
        }
    }
}

extension HTTP1RequestParser.Limits {
    /// The configured header limits, with room for the request line and line ends: a head past
    /// `max_header_bytes` but within this is answered 431 by the pipeline's own check, a larger
    /// one by the parser, before it is buffered whole.
    init(_ server: ServerSettings) {
        self.init(
            maximumHeadBytes: server.maximumHeaderBytes + server.maximumRequestLine + 4 * server.maximumHeaderCount,
            maximumTrailerBytes: server.maximumHeaderBytes
        )
    }
}
