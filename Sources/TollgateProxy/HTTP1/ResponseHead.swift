import NIOCore
import NIOHPACK
import NIOHTTP1

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
            if name.utf8.equalsIgnoringASCIICase(HTTP1Syntax.contentLength) {
                contentLength = Int(value)
            } else if name.utf8.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding) {
                chunked = true
            } else if name.utf8.equalsIgnoringASCIICase(HTTP1Syntax.connection) {
                for item in value.split(separator: ",") {
                    let option = item.trimmingSpaces()
                    if !option.isEmpty, !option.utf8.equalsIgnoringASCIICase("close".utf8),
                        !option.utf8.equalsIgnoringASCIICase("keep-alive".utf8),
                        !option.utf8.equalsIgnoringASCIICase(HTTP1Syntax.upgrade)
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
