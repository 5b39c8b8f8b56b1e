import NIOCore
import NIOHTTP1

/// An upstream connection's HTTP/1.1 codec, in place of NIO's `HTTPRequestEncoder` and
/// `HTTPResponseDecoder`: requests are written with the framing their head states, responses are
/// read by `HTTP1ResponseParser`.
///
/// The framing of a request is never changed under it: a body goes out by its `Content-Length`,
/// or chunked; a POST, PUT or PATCH that states neither (an HTTP/2 client's) is sent chunked, as
/// NIO does. NIO's encoder drops the `Content-Length` of a TRACE and writes its body raw, and
/// writes the body of a request stating no framing raw too: either would reach the upstream as a
/// request of its own. Here such bytes close the connection instead.
///
/// A response the parser refuses goes down the pipeline as `errorCaught(HTTP1ParseError)` and
/// nothing after it is read. After a 101 the codec holds what follows until it is removed (the
/// relay takes over); the held bytes then go on raw.
final class UpstreamCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    private enum Framing {
        case none
        case length
        case chunked
    }

    private var parser: HTTP1ResponseParser
    private var buffer = ByteBuffer()
    private var framing = Framing.none
    private var failed = false
    private var decoding = false
    private var removed = false

    init(limits: HTTP1ResponseParser.Limits = .init(maximumHeadBytes: 64 * 1024, maximumTrailerBytes: 16 * 1024)) {
        parser = HTTP1ResponseParser(limits: limits)
    }

    // MARK: - Requests

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            framing = Self.frame(&head)
            parser.expectResponse(to: head.method)
            var out = context.channel.allocator.buffer(capacity: 512)
            out.writeString(head.method.rawValue)
            out.writeInteger(UInt8.space)
            out.writeString(head.uri)
            out.writeStaticString(" HTTP/1.1\r\n")
            for (name, value) in head.headers {
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
            out.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(out)), promise: promise)
        case .body(let body):
            switch framing {
            case .length:
                context.write(wrapOutboundOut(body), promise: promise)
            case .chunked:
                guard body.readableBytes > 0 else {
                    // An empty chunk would end the body.
                    promise?.succeed()
                    return
                }
                var size = context.channel.allocator.buffer(capacity: 20)
                size.writeString(String(body.readableBytes, radix: 16))
                size.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(size)), promise: nil)
                context.write(wrapOutboundOut(body), promise: nil)
                var end = context.channel.allocator.buffer(capacity: 2)
                end.writeStaticString("\r\n")
                context.write(wrapOutboundOut(.byteBuffer(end)), promise: promise)
            case .none:
                guard body.readableBytes > 0 else {
                    promise?.succeed()
                    return
                }
                // A body the head gave no framing to: written raw, the upstream would read it as
                // the next request.
                promise?.fail(ChannelError.ioOnClosedChannel)
                context.close(promise: nil)
            }
        case .end(let trailers):
            guard case .chunked = framing else {
                promise?.succeed()
                return
            }
            var out = context.channel.allocator.buffer(capacity: 5)
            out.writeStaticString("0\r\n")
            for (name, value) in trailers ?? [:] {
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
            out.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(out)), promise: promise)
        }
    }

    /// The framing a request head states, with `Transfer-Encoding: chunked` added for a body
    /// that states none and `Transfer-Encoding` dropped beside `Content-Length` (RFC 9112 §6.3).
    private static func frame(_ head: inout HTTPRequestHead) -> Framing {
        if head.headers.contains(name: "content-length") {
            if head.headers.contains(name: "transfer-encoding") { head.headers.remove(name: "transfer-encoding") }
            return .length
        }
        if head.headers.contains(name: "transfer-encoding") { return .chunked }
        switch head.method {
        case .POST, .PUT, .PATCH:
            head.headers.add(name: "Transfer-Encoding", value: "chunked")
            return .chunked
        default:
            return .none
        }
    }

    // MARK: - Responses

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

    func channelInactive(context: ChannelHandlerContext) {
        if !failed {
            do {
                if let last = try parser.inputClosed() { context.fireChannelRead(wrapInboundOut(convert(last))) }
            } catch {
                failed = true
                context.fireErrorCaught(error)
            }
        }
        context.fireChannelInactive()
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        removed = true
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
        while !failed, !removed {
            do {
                switch try parser.next(&buffer) {
                case .part(let part):
                    context.fireChannelRead(wrapInboundOut(convert(part)))
                case .needMoreData, .switched:
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

    private func convert(_ part: HTTP1ResponseParser.Part) -> HTTPClientResponsePart {
        switch part {
        case .head(let head): .head(head)
        case .body(let body): .body(body)
        case .end(let trailers): .end(trailers)
        }
    }
}
