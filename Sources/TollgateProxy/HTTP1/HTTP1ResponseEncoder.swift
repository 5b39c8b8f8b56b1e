import NIOCore
import NIOHTTP1

/// The client connection's HTTP/1.1 answer writer, in place of NIO's `HTTPResponseEncoder`, run
/// inside `ProxyHandler` (no pipeline hop per part): a relayed head goes out as the bytes the relay
/// wrote, Tollgate's own answers are written from their head. Bodies are chunked when the head
/// says so.
struct HTTP1ResponseEncoder {
    private var chunked = false

    /// Writes `part` as the bytes a client reads, through `emit` (the last piece carries the
    /// part's promise).
    mutating func encode(
        _ part: ClientResponsePart,
        allocator: ByteBufferAllocator,
        promise: EventLoopPromise<Void>?,
        emit: (IOData, EventLoopPromise<Void>?) -> Void
    ) {
        switch part {
        case .head(let head):
            var out = allocator.buffer(capacity: 256)
            out.writeStaticString("HTTP/1.1 ")
            out.writeString(String(head.status.code))
            out.writeInteger(UInt8.space)
            out.writeString(head.status.reasonPhrase)
            out.writeStaticString("\r\n")
            for (name, value) in head.headers { out.writeField(name, value) }
            // As NIO's encoder: a head stating no length for a body that may follow goes chunked.
            let code = head.status.code
            let mayHaveBody = code >= 200 && code != 204 && code != 304
            chunked =
                head.headers.contains(name: "transfer-encoding")
                || (mayHaveBody && !head.headers.contains(name: "content-length"))
            if chunked && !head.headers.contains(name: "transfer-encoding") {
                out.writeStaticString("Transfer-Encoding: chunked\r\n")
            }
            out.writeStaticString("\r\n")
            emit(.byteBuffer(out), promise)
        case .relayedHead(let bytes, let chunked):
            self.chunked = chunked
            emit(.byteBuffer(bytes), promise)
        case .http2Head:
            assertionFailure("an HTTP/2 head written to an HTTP/1.1 connection")
            promise?.fail(ChannelError.inappropriateOperationForState)
        case .body(let body):
            guard chunked else {
                emit(body, promise)
                return
            }
            guard body.readableBytes > 0 else {
                // An empty chunk would end the body.
                promise?.succeed()
                return
            }
            var size = allocator.buffer(capacity: 20)
            size.writeString(String(body.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            emit(.byteBuffer(size), nil)
            emit(body, nil)
            var end = allocator.buffer(capacity: 2)
            end.writeStaticString("\r\n")
            emit(.byteBuffer(end), promise)
        case .end(let trailers):
            guard chunked else {
                // Nothing to write; a promise asked for is completed by an empty write, after the
                // body's bytes went out.
                if promise != nil { emit(.byteBuffer(allocator.buffer(capacity: 0)), promise) }
                return
            }
            chunked = false
            var out = allocator.buffer(capacity: 5)
            out.writeStaticString("0\r\n")
            for (name, value) in trailers ?? [:] { out.writeField(name, value) }
            out.writeStaticString("\r\n")
            emit(.byteBuffer(out), promise)
        }
    }
}
