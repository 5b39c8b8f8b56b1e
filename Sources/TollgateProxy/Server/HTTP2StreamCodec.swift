import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// An HTTP/2 client stream's frames as request parts, and answer parts as frames, inside
/// `ProxyHandler`, in place of NIO's `HTTP2FramePayloadToHTTP1ServerCodec` and an adapter after
/// it: two handlers per stream fewer, and the request's header block goes straight to field
/// lines (`RequestHead(http2Block:endStream:)`) with no `HTTPHeaders` between.
struct HTTP2StreamCodec {
    private var headReceived = false

    /// The request parts a frame carries, in order, handed to `deliver`.
    mutating func decode(_ payload: HTTP2Frame.FramePayload, deliver: (RequestPart) -> Void) {
        switch payload {
        case .headers(let headers):
            if headReceived {
                // A second header block is the trailers (RFC 9113 §8.1).
                var trailers = HTTPHeaders()
                for (name, value, _) in headers.headers where name.utf8.first != UInt8(ascii: ":") {
                    trailers.add(name: name, value: value)
                }
                deliver(.end(trailers))
                return
            }
            headReceived = true
            deliver(.head(RequestHead(http2Block: headers.headers, endStream: headers.endStream)))
            if headers.endStream { deliver(.end(nil)) }
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return }
            if bytes.readableBytes > 0 { deliver(.body(bytes)) }
            if data.endStream { deliver(.end(nil)) }
        default:
            // Other frames are the connection's business (NIO's HTTP/2 handler answers them).
            break
        }
    }

    /// The frame for an answer part (an HTTP/1.1 head already written out never goes to a
    /// stream).
    static func encode(_ part: ClientResponsePart, allocator: ByteBufferAllocator) -> HTTP2Frame.FramePayload? {
        switch part {
        case .head(let head):
            var block = HPACKHeaders()
            block.reserveCapacity(head.headers.count + 1)
            block.add(name: ":status", value: String(head.status.code))
            appendFields(head.headers, to: &block)
            return .headers(.init(headers: block))
        case .relayedHead:
            assertionFailure("an HTTP/1.1 head written to an HTTP/2 stream")
            return nil
        case .http2Head(let block):
            return .headers(.init(headers: block))
        case .body(let body):
            return .data(.init(data: body))
        case .end(let trailers):
            if let trailers {
                var block = HPACKHeaders()
                appendFields(trailers, to: &block)
                return .headers(.init(headers: block, endStream: true))
            }
            return .data(.init(data: .byteBuffer(allocator.buffer(capacity: 0)), endStream: true))
        }
    }

    /// HTTP/2 field names are lower case, and the connection-specific fields of HTTP/1.1 are not
    /// sent (RFC 9113 §8.2.2), as NIO's codec normalises them.
    private static func appendFields(_ fields: HTTPHeaders, to block: inout HPACKHeaders) {
        for (name, value) in fields {
            let lowered = name.lowercased()
            switch lowered {
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade": continue
            default: block.add(name: lowered, value: value)
            }
        }
    }
}
