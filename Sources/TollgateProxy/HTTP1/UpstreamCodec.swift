import NIOCore
import NIOHTTP1

/// A request head ready for the upstream: its bytes as they are written, the method (the
/// answer's framing depends on it) and the body framing the head states.
struct UpstreamRequestHead {
    enum Framing {
        case none
        case length
        case chunked
    }

    var method: HTTPMethod
    var bytes: ByteBuffer
    var framing: Framing

    init(method: HTTPMethod, bytes: ByteBuffer, framing: Framing) {
        self.method = method
        self.bytes = bytes
        self.framing = framing
    }

    /// A head given as NIO's type, written out with the framing it states: `Transfer-Encoding`
    /// dropped beside `Content-Length` (RFC 9112 §6.3), `Transfer-Encoding: chunked` added for a
    /// POST, PUT or PATCH that states none (an HTTP/2 client's).
    init(_ head: HTTPRequestHead) {
        var headers = head.headers
        if headers.contains(name: "content-length") {
            if headers.contains(name: "transfer-encoding") { headers.remove(name: "transfer-encoding") }
            framing = .length
        } else if headers.contains(name: "transfer-encoding") {
            framing = .chunked
        } else if head.method == .POST || head.method == .PUT || head.method == .PATCH {
            headers.add(name: "Transfer-Encoding", value: "chunked")
            framing = .chunked
        } else {
            framing = .none
        }
        method = head.method
        bytes = ByteBuffer()
        bytes.writeString(head.method.rawValue)
        bytes.writeInteger(UInt8.space)
        bytes.writeString(head.uri)
        bytes.writeStaticString(" HTTP/1.1\r\n")
        for (name, value) in headers {
            bytes.writeString(name)
            bytes.writeStaticString(": ")
            bytes.writeString(value)
            bytes.writeStaticString("\r\n")
        }
        bytes.writeStaticString("\r\n")
    }

    /// The head as NIO's type, for an HTTP/2 upstream (read back by the request parser).
    func nioHead() throws -> HTTPRequestHead {
        let parsed = try bytes.withUnsafeReadableBytes { try HTTP1RequestParser.parseHead($0) }
        var head = parsed.head
        head.bytes = bytes
        return head.nioHead
    }
}

/// What the proxy handler writes to an upstream connection or stream.
enum UpstreamRequestPart {
    case head(UpstreamRequestHead)
    case body(IOData)
    case end(HTTPHeaders?)
}

/// On an h2c upstream stream, beside NIO's HTTP/1-to-HTTP/2 codec: requests go out as NIO's
/// parts, answers come in as ours.
final class UpstreamHTTP2Adapter: ChannelDuplexHandler {
    typealias OutboundIn = UpstreamRequestPart
    typealias OutboundOut = HTTPClientRequestPart
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = UpstreamResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): context.fireChannelRead(wrapInboundOut(.head(ResponseHead(head))))
        case .body(let body): context.fireChannelRead(wrapInboundOut(.body(body)))
        case .end(let trailers): context.fireChannelRead(wrapInboundOut(.end(trailers)))
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            do {
                context.write(wrapOutboundOut(.head(try head.nioHead())), promise: promise)
            } catch {
                promise?.fail(error)
                context.close(promise: nil)
            }
        case .body(let body): context.write(wrapOutboundOut(.body(body)), promise: promise)
        case .end(let trailers): context.write(wrapOutboundOut(.end(trailers)), promise: promise)
        }
    }
}

/// An upstream connection's HTTP/1.1 codec, in place of NIO's `HTTPRequestEncoder` and
/// `HTTPResponseDecoder`, run inside `UpstreamHandler` (no pipeline hop per part): requests are
/// written with the framing their head states, responses are read by `HTTP1ResponseParser`.
///
/// The framing of a request is never changed under it: a body goes out by its `Content-Length`,
/// or chunked; a POST, PUT or PATCH that states neither (an HTTP/2 client's) is sent chunked, as
/// NIO does. NIO's encoder drops the `Content-Length` of a TRACE and writes its body raw, and
/// writes the body of a request stating no framing raw too: either would reach the upstream as a
/// request of its own. Here such bytes close the connection instead.
///
/// After a 101 the parser holds what follows until the handler is removed (the relay takes
/// over); the held bytes then go on raw.
struct UpstreamCodec {
    private var parser: HTTP1ResponseParser
    /// The bytes received and not parsed yet.
    var buffer = ByteBuffer()
    private var framing = UpstreamRequestHead.Framing.none
    /// The answer broke HTTP/1.1 framing: nothing more is read.
    private(set) var failed = false

    init(limits: HTTP1ResponseParser.Limits = .init(maximumHeadBytes: 64 * 1024, maximumTrailerBytes: 16 * 1024)) {
        parser = HTTP1ResponseParser(limits: limits)
    }

    enum Write {
        /// Write these bytes (the last one carries the part's promise).
        case bytes
        /// Nothing to write: the promise succeeds.
        case nothing
        /// Body bytes the head gave no framing to: written raw, the upstream would read them as
        /// the next request. The connection closes instead.
        case refuse
    }

    /// Encodes a request part through `emit`.
    mutating func encode(
        _ part: UpstreamRequestPart,
        allocator: ByteBufferAllocator,
        promise: EventLoopPromise<Void>?,
        emit: (IOData, EventLoopPromise<Void>?) -> Void
    ) -> Write {
        switch part {
        case .head(let head):
            framing = head.framing
            parser.expectResponse(to: head.method)
            emit(.byteBuffer(head.bytes), promise)
            return .bytes
        case .body(let body):
            switch framing {
            case .length:
                emit(body, promise)
                return .bytes
            case .chunked:
                // An empty chunk would end the body.
                guard body.readableBytes > 0 else { return .nothing }
                var size = allocator.buffer(capacity: 20)
                size.writeString(String(body.readableBytes, radix: 16))
                size.writeStaticString("\r\n")
                emit(.byteBuffer(size), nil)
                emit(body, nil)
                var end = allocator.buffer(capacity: 2)
                end.writeStaticString("\r\n")
                emit(.byteBuffer(end), promise)
                return .bytes
            case .none:
                return body.readableBytes > 0 ? .refuse : .nothing
            }
        case .end(let trailers):
            guard case .chunked = framing else { return .nothing }
            var out = allocator.buffer(capacity: 5)
            out.writeStaticString("0\r\n")
            for (name, value) in trailers ?? [:] {
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
            out.writeStaticString("\r\n")
            emit(.byteBuffer(out), promise)
            return .bytes
        }
    }

    /// Adds received bytes.
    mutating func received(_ bytes: inout ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next part of the answer, `nil` when more bytes are needed (or after a 101).
    mutating func next() throws -> UpstreamResponsePart? {
        guard !failed else { return nil }
        do {
            switch try parser.next(&buffer) {
            case .part(let part):
                return part
            case .needMoreData, .switched:
                if buffer.readableBytes > 0 && buffer.readerIndex > 16 * 1024 { buffer.discardReadBytes() }
                return nil
            }
        } catch {
            failed = true
            buffer = ByteBuffer()
            throw error
        }
    }

    /// The connection closed: the end of an answer delimited by the close, if one was running.
    mutating func inputClosed() throws -> UpstreamResponsePart? {
        guard !failed else { return nil }
        do {
            return try parser.inputClosed()
        } catch {
            failed = true
            throw error
        }
    }
}
