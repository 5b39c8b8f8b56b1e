import NIOCore
import NIOHPACK
import NIOHTTP1

/// A request head as it arrived: its bytes and the offsets of each field line. The pipeline reads
/// the few fields it needs from the bytes, and the upstream head is written by copying the lines
/// it keeps (`ProxySnapshot.upstreamHead`). No header collection is built: NIO's `HTTPHeaders`
/// cost two strings and an array entry per field per request, and a second serialisation on the
/// way out.
///
/// A head from HTTP/2 (NIO's codec gives `HTTPHeaders`) is written out once as HTTP/1.1 field
/// lines by `init(_:)`, so both protocols take the same path after it.
package struct RequestHead: IndexedFields {
    package typealias Field = FieldOffsets

    package enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
    }

    package var method: HTTPMethod
    package var version: HTTPVersion
    package var uri: String
    /// The whole head (for HTTP/2, the field lines only).
    package internal(set) var bytes: ByteBuffer
    package private(set) var fields: [Field]
    /// Where the fields the pipeline reads are, found while the head was parsed.
    package private(set) var known: KnownFields
    /// How the request's body is framed, from `Content-Length` and `Transfer-Encoding`.
    package var framing: Framing
    /// RFC 9112 §9.3: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    package var isKeepAlive: Bool
    /// The parser stopped after this request, which asked to switch protocols (`Connection:
    /// upgrade`, or `Proxy-Connection` as llhttp reads it, with an `Upgrade` value): nothing
    /// after it is parsed until the exchange ends without a switch.
    package internal(set) var pausesParser = false
    /// An absolute-form target's parts, once `check` passed (rare: kept out of line, so the head
    /// stays small to copy).
    var absoluteForm: AbsoluteForm?

    /// The target in origin form (an absolute-form target's path and query), once `check` passed.
    package var target: String { absoluteForm?.target ?? uri }
    /// An absolute-form target's authority, which replaces `Host` (RFC 9112 §3.2.2).
    package var authority: String? { absoluteForm?.authority }

    init(
        method: HTTPMethod,
        version: HTTPVersion,
        uri: String,
        bytes: ByteBuffer,
        fields: [Field],
        known: KnownFields,
        framing: Framing,
        isKeepAlive: Bool
    ) {
        self.method = method
        self.version = version
        self.uri = uri
        self.bytes = bytes
        self.fields = fields
        self.known = known
        self.framing = framing
        self.isKeepAlive = isKeepAlive
    }

    /// A head given as NIO's type (tests), written out as field lines once.
    package init(_ head: HTTPRequestHead) {
        self.init(
            method: head.method,
            version: head.version,
            uri: head.uri,
            fieldLines: head.headers,
            isKeepAlive: head.isKeepAlive
        )
    }

    /// An HTTP/2 request's header block, written out as HTTP/1.1 field lines once, with no
    /// `HTTPHeaders` between: `:authority` becomes `Host` when the block has none, and a request
    /// whose method may carry a body and that states no length gets the framing an HTTP/1.1
    /// upstream needs (`content-length: 0` when the stream already ended, else chunked), as NIO's
    /// `HTTP2FramePayloadToHTTP1ServerCodec` does. NIO's HTTP/2 handler has already validated the
    /// block (pseudo-header fields first, no connection-specific fields, lower-case names).
    package init(http2Block block: HPACKHeaders, endStream: Bool) {
        var method = HTTPMethod.GET
        var path = "/"
        var authority: String?
        var hasHost = false
        var hasLength = false
        var regular: [(String, String)] = []
        regular.reserveCapacity(block.count + 1)
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                switch name {
                case ":method": method = HTTPMethod(rawValue: value)
                case ":path": path = value
                case ":authority": authority = value
                default: break
                }
                continue
            }
            if name == "host" { hasHost = true }
            if name == "content-length" { hasLength = true }
            regular.append((name, value))
        }
        var lines: [(String, String)] = []
        lines.reserveCapacity(regular.count + 2)
        if !hasHost, let authority { lines.append(("host", authority)) }
        switch method {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE: break
        default:
            if !hasLength { lines.append(endStream ? ("content-length", "0") : ("transfer-encoding", "chunked")) }
        }
        lines.append(contentsOf: regular)
        self.init(method: method, version: .http2, uri: path, fieldLines: lines, isKeepAlive: true)
    }

    private init(
        method: HTTPMethod,
        version: HTTPVersion,
        uri: String,
        fieldLines: some Sequence<(name: String, value: String)>,
        isKeepAlive: Bool
    ) {
        var bytes = ByteBuffer()
        var fields: [Field] = []
        for (name, value) in fieldLines {
            let lineStart = UInt32(bytes.writerIndex)
            bytes.writeString(name)
            let nameEnd = UInt32(bytes.writerIndex)
            bytes.writeStaticString(": ")
            let valueStart = UInt32(bytes.writerIndex)
            bytes.writeString(value)
            let valueEnd = UInt32(bytes.writerIndex)
            bytes.writeStaticString("\r\n")
            fields.append(
                Field(
                    lineStart: lineStart,
                    nameEnd: nameEnd,
                    valueStart: valueStart,
                    valueEnd: valueEnd,
                    lineEnd: UInt32(bytes.writerIndex)
                )
            )
        }
        var known = KnownFields()
        var contentLength: Int?
        bytes.withUnsafeReadableBytes { raw in
            for (index, field) in fields.enumerated() {
                let value = raw[Int(field.valueStart)..<Int(field.valueEnd)]
                known.record(index, name: raw[Int(field.lineStart)..<Int(field.nameEnd)], value: value)
                if known.contentLength.first == index { contentLength = HTTP1Syntax.decimal(value) }
            }
        }
        self.init(
            method: method,
            version: version,
            uri: uri,
            bytes: bytes,
            fields: fields,
            known: known,
            framing: known.transferEncoding.count > 0 ? .chunked : contentLength.map { .length($0) } ?? .none,
            isKeepAlive: isKeepAlive
        )
    }

    /// A body follows the head (`Content-Length` above 0 or chunked).
    package var hasBody: Bool {
        switch framing {
        case .none, .length(0): false
        case .length, .chunked: true
        }
    }

    /// The bytes of the field lines, as NIO counts them for its limits: name, value and 4 per
    /// field.
    package var fieldBytes: Int {
        var total = 0
        for field in fields {
            total += Int(field.nameEnd - field.lineStart) + Int(field.valueEnd - field.valueStart) + 4
        }
        return total
    }

    /// The head as NIO's type.
    package var nioHead: HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
    }
}

/// An absolute-form request target (RFC 9112 §3.2.2) split into the authority, which replaces
/// `Host`, and the origin-form rest.
final class AbsoluteForm: Sendable {
    let authority: String
    let target: String

    init(authority: String, target: String) {
        self.authority = authority
        self.target = target
    }
}

/// One field line's offsets in a head's bytes, from their reader index: the line (its CRLF
/// included), the name, and the value without surrounding blanks.
package struct FieldOffsets: Sendable {
    var lineStart: UInt32
    var nameEnd: UInt32
    var valueStart: UInt32
    var valueEnd: UInt32
    var lineEnd: UInt32
}

/// Where the fields the pipeline reads are in a head, and what the few it acts on say, found in
/// the one walk over the field lines that parses the head (HTTP/1.1) or writes it (HTTP/2): no
/// later step looks a field up by name or classifies the fields again.
package struct KnownFields: Sendable, Equatable {
    /// A field's first line and how many lines carry it, in four bytes: a head is copied whole
    /// between the parser and the pipeline. The parser refuses a head of more than
    /// `maximumFields` lines.
    package struct Position: Sendable, Equatable {
        private var firstIndex = UInt16.max
        private var lines: UInt16 = 0

        package init() {}

        package init(first: Int?, count: Int) {
            firstIndex = first.map { UInt16($0) } ?? .max
            lines = UInt16(count)
        }

        package var first: Int? { firstIndex == .max ? nil : Int(firstIndex) }
        package var count: Int { Int(lines) }

        mutating func saw(_ index: Int) {
            if firstIndex == .max { firstIndex = UInt16(truncatingIfNeeded: index) }
            if lines < .max { lines += 1 }
        }
    }

    /// The most field lines a head may have for its positions to be recorded.
    package static let maximumFields = Int(UInt16.max) - 1

    package var host = Position()
    package var authorization = Position()
    package var cookie = Position()
    package var requestID = Position()
    package var traceparent = Position()
    package var upgrade = Position()
    package var connection = Position()
    package var contentLength = Position()
    package var transferEncoding = Position()
    /// `Connection` lists `close`, `keep-alive`, `upgrade`.
    package var close = false
    package var keepAlive = false
    package var connectionUpgrade = false
    /// `Proxy-Connection` lists `upgrade`: llhttp reads it as `Connection`, so the parser pauses
    /// on it too.
    package var proxyConnectionUpgrade = false
    /// `Connection` lists another option: a field to remove on the way upstream.
    package var connectionNamesFields = false
    /// An `Upgrade` field has a value.
    package var upgradeHasValue = false
    /// `TE` lists `trailers` (gRPC).
    package var acceptsTrailers = false
    /// `Content_Length` or `Transfer_Encoding`: an upstream that reads `_` as `-` would frame the
    /// body by it.
    package var framingSpeltWithUnderscore = false

    package init() {}

    /// Notes field `index`, with its name and trimmed value.
    mutating func record(
        _ index: Int,
        name: UnsafeRawBufferPointer.SubSequence,
        value: UnsafeRawBufferPointer.SubSequence
    ) {
        let raw = UnsafeRawBufferPointer(rebasing: name)
        func named(_ lower: StaticString) -> Bool { raw.equalsIgnoringASCIICase(HTTP1Syntax.ascii(lower)) }
        switch raw.count {
        case 2 where named("te"):
            if ConnectionOptions(value).trailers { acceptsTrailers = true }
        case 4 where named("host"):
            host.saw(index)
        case 6 where named("cookie"):
            cookie.saw(index)
        case 7 where named("upgrade"):
            upgrade.saw(index)
            if !value.isEmpty { upgradeHasValue = true }
        case 10 where named("connection"):
            connection.saw(index)
            let options = ConnectionOptions(value)
            if options.close { close = true }
            if options.keepAlive { keepAlive = true }
            if options.upgrade { connectionUpgrade = true }
            if options.namesOthers || options.trailers { connectionNamesFields = true }
        case 11 where named("traceparent"):
            traceparent.saw(index)
        case 12 where named("x-request-id"):
            requestID.saw(index)
        case 13 where named("authorization"):
            authorization.saw(index)
        case 14:
            if named("content-length") {
                contentLength.saw(index)
            } else if name.equalsIgnoringASCIICase(HTTP1Syntax.contentLength, underscoreAsHyphen: true) {
                framingSpeltWithUnderscore = true
            }
        case 16 where named("proxy-connection"):
            if ConnectionOptions(value).upgrade { proxyConnectionUpgrade = true }
        case 17:
            if named("transfer-encoding") {
                transferEncoding.saw(index)
            } else if name.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding, underscoreAsHyphen: true) {
                framingSpeltWithUnderscore = true
            }
        default:
            break
        }
    }
}

/// A head as received with the offsets of its field lines: fields are read from the bytes, and
/// copied as they are, without a header collection being built.
package protocol IndexedFields {
    var bytes: ByteBuffer { get }
    var fields: [FieldOffsets] { get }
}

extension IndexedFields {
    package var count: Int { fields.count }

    /// Calls `body` with each field's index, name and value bytes, in order, until it returns
    /// `false`.
    package func forEachField(
        _ body: (Int, UnsafeRawBufferPointer.SubSequence, UnsafeRawBufferPointer.SubSequence) throws -> Bool
    ) rethrows {
        try bytes.withUnsafeReadableBytes { raw in
            for (index, field) in fields.enumerated() {
                let name = raw[Int(field.lineStart)..<Int(field.nameEnd)]
                let value = raw[Int(field.valueStart)..<Int(field.valueEnd)]
                if try !body(index, name, value) { return }
            }
        }
    }

    package func name(at index: Int) -> String {
        let field = fields[index]
        return bytes.getString(
            at: bytes.readerIndex + Int(field.lineStart),
            length: Int(field.nameEnd - field.lineStart)
        )
            ?? ""
    }

    package func value(at index: Int) -> String {
        let field = fields[index]
        return bytes.getString(
            at: bytes.readerIndex + Int(field.valueStart),
            length: Int(field.valueEnd - field.valueStart)
        ) ?? ""
    }

    /// `body` applied to the bytes of field `index`'s value.
    package func withValue<Result>(
        at index: Int,
        _ body: (UnsafeRawBufferPointer.SubSequence) throws -> Result
    ) rethrows -> Result {
        let field = fields[index]
        return try bytes.withUnsafeReadableBytes { raw in
            try body(raw[Int(field.valueStart)..<Int(field.valueEnd)])
        }
    }

    /// The value of a known field's first line.
    package func value(of position: KnownFields.Position) -> String? {
        position.first.map { value(at: $0) }
    }

    /// The value of the first field named `name` (ASCII case-insensitive; `name` lower-case).
    package func first(name: String) -> String? {
        var found: Int?
        var lowercased = name
        lowercased.withUTF8 { wanted in
            forEachField { index, fieldName, _ in
                if fieldName.equalsIgnoringASCIICase(wanted) {
                    found = index
                    return false
                }
                return true
            }
        }
        return found.map { value(at: $0) }
    }

    /// The values of every field named `name` (lower-case), in order.
    package func values(name: String) -> [String] {
        var indices: [Int] = []
        var lowercased = name
        lowercased.withUTF8 { wanted in
            forEachField { index, fieldName, _ in
                if fieldName.equalsIgnoringASCIICase(wanted) { indices.append(index) }
                return true
            }
        }
        return indices.map { value(at: $0) }
    }

    package func contains(name: String) -> Bool {
        var found = false
        var lowercased = name
        lowercased.withUTF8 { wanted in
            forEachField { _, fieldName, _ in
                found = fieldName.equalsIgnoringASCIICase(wanted)
                return !found
            }
        }
        return found
    }

    /// The fields as NIO's collection, for the paths that are not per request (local endpoints,
    /// tests).
    package var headers: HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count)
        for index in fields.indices { headers.add(name: name(at: index), value: value(at: index)) }
        return headers
    }
}

/// What the proxy handler reads from a client connection or stream: `HTTPServerRequestPart` with
/// the head as received.
package enum RequestPart: Equatable {
    case head(RequestHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

extension RequestHead: Equatable {
    /// The same request: method, target, version, fields in order, framing and keep-alive (not
    /// the bytes' spacing).
    package static func == (lhs: RequestHead, rhs: RequestHead) -> Bool {
        lhs.nioHead == rhs.nioHead && lhs.framing == rhs.framing && lhs.isKeepAlive == rhs.isKeepAlive
    }
}

extension Slice where Base == UnsafeRawBufferPointer {
    /// The bytes as a string.
    var string: String { String(decoding: self, as: UTF8.self) }
}
