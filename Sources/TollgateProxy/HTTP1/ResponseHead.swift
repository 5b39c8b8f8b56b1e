import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// An upstream's answer head as it arrived: the status, the bytes and the offsets of each field
/// line, so the relay copies the lines it keeps to the client (`ResponseRelay`) instead of
/// building, editing and serialising a header collection.
///
/// An answer from an h2c upstream (NIO's codec gives `HTTPHeaders`) is written out once as an
/// HTTP/1.1 head by `init(_:)`.
package struct ResponseHead: IndexedFields {
    package enum Framing: Equatable {
        case length(Int)
        case chunked
        /// Neither `Content-Length` nor `Transfer-Encoding` (RFC 9112 §6.3, point 8).
        case unstated
    }

    package var version: HTTPVersion
    package var status: HTTPResponseStatus
    /// The whole head: the status line, the field lines, the empty line.
    package internal(set) var bytes: ByteBuffer
    package private(set) var fields: [FieldOffsets]
    /// Where the field lines start in `bytes` (after the status line's CRLF).
    package private(set) var fieldsStart: Int
    /// The framing the head states (whatever the request's method or the status make of it).
    package var framing: Framing
    /// RFC 9112 §9.3: the upstream keeps the connection open after this answer.
    package var isKeepAlive: Bool
    /// `Connection` lists an option other than `close`, `keep-alive` and `upgrade`: the fields
    /// it names are hop-by-hop too.
    package var connectionNamesOthers: Bool
    /// Read by `HTTP1ResponseParser`, which refused any field that could not be relayed; a head
    /// from an h2c stream is checked by the relay.
    package var isChecked: Bool

    init(
        version: HTTPVersion,
        status: HTTPResponseStatus,
        bytes: ByteBuffer,
        fields: [FieldOffsets],
        fieldsStart: Int,
        framing: Framing,
        isKeepAlive: Bool,
        connectionNamesOthers: Bool,
        isChecked: Bool
    ) {
        self.version = version
        self.status = status
        self.bytes = bytes
        self.fields = fields
        self.fieldsStart = fieldsStart
        self.framing = framing
        self.isKeepAlive = isKeepAlive
        self.connectionNamesOthers = connectionNamesOthers
        self.isChecked = isChecked
    }

    /// A head given as NIO's type (an h2c upstream's, tests), written out once.
    package init(_ head: HTTPResponseHead) {
        var bytes = ByteBuffer()
        bytes.writeString("HTTP/\(head.version.major).\(head.version.minor) \(head.status.code) ")
        bytes.writeString(head.status.reasonPhrase)
        bytes.writeStaticString("\r\n")
        let fieldsStart = bytes.writerIndex
        var fields: [FieldOffsets] = []
        fields.reserveCapacity(head.headers.count)
        var contentLength: Int?
        var chunked = false
        var namesOthers = false
        for (name, value) in head.headers {
            let lineStart = UInt32(bytes.writerIndex)
            bytes.writeString(name)
            let nameEnd = UInt32(bytes.writerIndex)
            bytes.writeStaticString(": ")
            let valueStart = UInt32(bytes.writerIndex)
            bytes.writeString(value)
            let valueEnd = UInt32(bytes.writerIndex)
            bytes.writeStaticString("\r\n")
            fields.append(
                FieldOffsets(
                    lineStart: lineStart,
                    nameEnd: nameEnd,
                    valueStart: valueStart,
                    valueEnd: valueEnd,
                    lineEnd: UInt32(bytes.writerIndex)
                )
            )
            if name.caseInsensitiveEquals("content-length") {
                contentLength = Int(value)
            } else if name.caseInsensitiveEquals("transfer-encoding") {
                chunked = true
            } else if name.caseInsensitiveEquals("connection") {
                for item in value.split(separator: ",") {
                    let option = item.trimmingSpaces()
                    if !option.isEmpty, !option.caseInsensitiveEquals("close"),
                        !option.caseInsensitiveEquals("keep-alive"), !option.caseInsensitiveEquals("upgrade")
                    {
                        namesOthers = true
                    }
                }
            }
        }
        bytes.writeStaticString("\r\n")
        self.init(
            version: head.version,
            status: head.status,
            bytes: bytes,
            fields: fields,
            fieldsStart: fieldsStart,
            framing: contentLength.map { .length($0) } ?? (chunked ? .chunked : .unstated),
            isKeepAlive: head.isKeepAlive,
            connectionNamesOthers: namesOthers,
            isChecked: false
        )
    }

    /// The head as NIO's type.
    package var nioHead: HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: headers)
    }
}

extension ResponseHead: Equatable {
    /// The same answer: version, status, fields in order, framing and keep-alive (not the
    /// bytes' spacing).
    package static func == (lhs: ResponseHead, rhs: ResponseHead) -> Bool {
        lhs.nioHead == rhs.nioHead && lhs.framing == rhs.framing && lhs.isKeepAlive == rhs.isKeepAlive
    }
}

/// What an upstream connection or stream hands the proxy handler: `HTTPClientResponsePart` with
/// the head as received.
package enum UpstreamResponsePart: Equatable {
    case head(ResponseHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// What the proxy handler writes to the client: an answer of its own (`head`), or the upstream's
/// head already written out for an HTTP/1.1 client (`relayedHead`), whose body goes chunked when
/// `chunked` says so, or as an HTTP/2 header block (`http2Head`: `:status` and the kept fields,
/// lower-cased).
package enum ClientResponsePart: Equatable {
    case head(HTTPResponseHead)
    case relayedHead(ByteBuffer, chunked: Bool)
    case http2Head(HPACKHeaders)
    case body(IOData)
    case end(HTTPHeaders?)
}

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
