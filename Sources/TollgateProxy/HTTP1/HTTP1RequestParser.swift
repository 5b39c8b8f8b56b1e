import NIOCore
import NIOHTTP1
import TollgateCore

/// The proxy's HTTP/1.1 request parser: RFC 9112 framing, taking none of the leniencies the RFC
/// allows a recipient, because what it accepts the upstream must read the same way.
///
/// Refused (each an `HTTP1ParseError`, answered 400 and a close): a bare CR or LF, NUL or any other
/// control character but HTAB in the head, obs-fold, whitespace between a field name and its
/// colon, a request line that is not `method SP target SP HTTP/1.x`, a method that is not a
/// registered one in upper case, a target with bytes outside
/// visible ASCII, a second or non-numeric `Content-Length` (or one spelt `Content_Length`), any `Transfer-Encoding` but a single
/// `chunked`, `Transfer-Encoding` in HTTP/1.0 or beside `Content-Length`, a chunk size that is not
/// hexadecimal or too large, chunk extensions past `maximumChunkLineBytes`, chunk data not ended by
/// CRLF. Up to `maximumLeadingEmptyLines` empty lines before a request line are skipped
/// (RFC 9112 §2.2).
///
/// A plain struct over `ByteBuffer`: `ProxyHandler` feeds it, tests
/// and the fuzzer drive it directly. Body bytes are handed on as slices of the received buffer,
/// never copied.
package struct HTTP1RequestParser {
    package struct Limits: Sendable {
        /// The request line and all field lines, line ends included; more is a 431.
        package var maximumHeadBytes: Int
        /// The trailer section of a chunked body.
        package var maximumTrailerBytes: Int
        /// A chunk-size line with its extensions (RFC 9112 §7.1.1 leaves the limit to the
        /// recipient).
        package var maximumChunkLineBytes = 1024
        /// Empty lines skipped before a request line.
        package var maximumLeadingEmptyLines = 8

        package init(maximumHeadBytes: Int, maximumTrailerBytes: Int) {
            self.maximumHeadBytes = maximumHeadBytes
            self.maximumTrailerBytes = maximumTrailerBytes
        }
    }

    package typealias Part = RequestPart

    package enum Next: Equatable {
        case part(Part)
        /// Nothing more is complete in the buffer.
        case needMoreData
        /// The request that just ended asked to switch protocols (`Connection: upgrade` with an
        /// `Upgrade` value): what follows may not be HTTP, so nothing is parsed until `resume()`.
        case paused
    }

    private enum State {
        case head
        case body(HTTP1MessageBody)
        case paused
        case failed(HTTP1ParseError)
    }

    package let limits: Limits
    private var state = State.head
    private var scanner = HTTP1SectionScanner()
    private var leadingEmptyLines = 0
    private var pausesAfterMessage = false

    package init(limits: Limits) {
        self.limits = limits
    }

    /// Between two requests: no head, body or trailer section is partly read.
    package var isBetweenMessages: Bool {
        switch state {
        case .head: scanner.scanned == 0
        case .paused: true
        default: false
        }
    }

    /// Parsing goes on after a request that asked to switch protocols and was answered without
    /// switching (RFC 9110 §7.8).
    package mutating func resume() {
        if case .paused = state { state = .head }
    }

    /// The next complete part of the request stream in `buffer`, which it consumes.
    /// - Throws: `HTTP1ParseError`; every later call throws it again.
    package mutating func next(_ buffer: inout ByteBuffer) throws -> Next {
        do {
            switch state {
            case .failed(let error):
                throw error
            case .paused:
                return .paused
            case .head:
                return try head(&buffer)
            case .body(var body):
                let next = try body.next(&buffer)
                switch next {
                case .body(let slice):
                    state = .body(body)
                    return .part(.body(slice))
                case .end(let trailers):
                    state = pausesAfterMessage ? .paused : .head
                    pausesAfterMessage = false
                    leadingEmptyLines = 0
                    return .part(.end(trailers))
                case .needMoreData:
                    state = .body(body)
                    return .needMoreData
                }
            }
        } catch let error as HTTP1ParseError {
            state = .failed(error)
            throw error
        }
    }

    // MARK: - Head

    private mutating func head(_ buffer: inout ByteBuffer) throws -> Next {
        while scanner.scanned == 0, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first == .cr
        {
            guard let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else {
                return .needMoreData
            }
            guard second == .lf else { throw HTTP1ParseError(.malformed, "a bare CR") }
            leadingEmptyLines += 1
            guard leadingEmptyLines <= limits.maximumLeadingEmptyLines else {
                throw HTTP1ParseError(.malformed, "too many empty lines before the request line")
            }
            buffer.moveReaderIndex(forwardBy: 2)
        }
        guard let length = try scanner.scan(buffer, limit: limits.maximumHeadBytes) else { return .needMoreData }
        var parsed = try buffer.withUnsafeReadableBytes { bytes in
            try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        }
        parsed.head.bytes = buffer.readSlice(length: length)!
        pausesAfterMessage = parsed.asksToSwitch
        parsed.head.pausesParser = parsed.asksToSwitch
        state = .body(
            HTTP1MessageBody(
                parsed.framing,
                maximumTrailerBytes: limits.maximumTrailerBytes,
                maximumChunkLineBytes: limits.maximumChunkLineBytes
            )
        )
        return .part(.head(parsed.head))
    }

    struct ParsedHead {
        /// Its `bytes` are set by the caller, which holds the buffer.
        var head: RequestHead
        var framing: HTTP1MessageBody.Framing
        var asksToSwitch: Bool
    }

    /// The request line and field lines of a complete head (CTLs, bare CR and LF already refused).
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws -> ParsedHead {
        var index = 0
        let methodStart = index
        while index < bytes.count, bytes[index].isTokenCharacter { index += 1 }
        guard index > methodStart, bytes[index] == .space else {
            throw HTTP1ParseError(.malformed, "the request line has no valid method")
        }
        let methodEnd = index
        index += 1
        let targetStart = index
        while bytes[index] > 0x20 && bytes[index] < 0x7F { index += 1 }
        guard index > targetStart, bytes[index] == .space else {
            throw HTTP1ParseError(.malformed, "the request target is empty or holds a byte outside visible ASCII")
        }
        let targetEnd = index
        index += 1
        guard bytes.count - index >= 10,
            bytes[index] == UInt8(ascii: "H"), bytes[index + 1] == UInt8(ascii: "T"),
            bytes[index + 2] == UInt8(ascii: "T"), bytes[index + 3] == UInt8(ascii: "P"),
            bytes[index + 4] == UInt8(ascii: "/"), bytes[index + 5] == UInt8(ascii: "1"),
            bytes[index + 6] == UInt8(ascii: "."),
            bytes[index + 7] == UInt8(ascii: "0") || bytes[index + 7] == UInt8(ascii: "1"),
            bytes[index + 8] == .cr
        else {
            throw HTTP1ParseError(.malformed, "the request line does not end in HTTP/1.0 or HTTP/1.1")
        }
        let version = HTTPVersion(major: 1, minor: bytes[index + 7] == UInt8(ascii: "1") ? 1 : 0)
        index += 10

        var fields: [RequestHead.Field] = []
        fields.reserveCapacity(16)
        var known = KnownFields()
        var contentLength: Int?
        try HTTP1Syntax.parseFields(bytes, from: index) { name, value, lineEnd in
            guard fields.count < KnownFields.maximumFields else {
                throw HTTP1ParseError(.headTooLarge, "too many field lines")
            }
            known.record(fields.count, name: name, value: value)
            fields.append(
                RequestHead.Field(
                    lineStart: UInt32(name.startIndex),
                    nameEnd: UInt32(name.endIndex),
                    valueStart: UInt32(value.startIndex),
                    valueEnd: UInt32(value.endIndex),
                    lineEnd: UInt32(lineEnd)
                )
            )
            if known.contentLength.first == fields.count - 1 {
                guard let length = HTTP1Syntax.decimal(value) else {
                    throw HTTP1ParseError(.malformed, "invalid Content-Length")
                }
                contentLength = length
            } else if known.transferEncoding.first == fields.count - 1 {
                guard value.equalsIgnoringASCIICase(HTTP1Syntax.chunked) else {
                    throw HTTP1ParseError(.malformed, "a transfer coding other than chunked")
                }
            }
        }
        if known.framingSpeltWithUnderscore {
            throw HTTP1ParseError(.malformed, "a framing header spelt with an underscore")
        }
        if known.contentLength.count > 1 { throw HTTP1ParseError(.malformed, "more than one Content-Length") }
        if known.transferEncoding.count > 1 { throw HTTP1ParseError(.malformed, "more than one Transfer-Encoding") }
        let framing: HTTP1MessageBody.Framing
        if known.transferEncoding.count > 0 {
            guard contentLength == nil else {
                throw HTTP1ParseError(.malformed, "both Content-Length and Transfer-Encoding")
            }
            guard version.minor == 1 else {
                throw HTTP1ParseError(.malformed, "Transfer-Encoding in an HTTP/1.0 request")
            }
            framing = .chunked
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .none
        }
        let method = HTTPMethod(rawValue: String(decoding: bytes[methodStart..<methodEnd], as: UTF8.self))
        // Methods are case-sensitive (RFC 9110 §9.1), but some upstreams read `get` as GET while a
        // route for GET would not match it: only the registered methods NIO names pass.
        if case .RAW = method { throw HTTP1ParseError(.malformed, "an unknown method") }
        let head = RequestHead(
            method: method,
            version: version,
            uri: String(decoding: bytes[targetStart..<targetEnd], as: UTF8.self),
            bytes: ByteBuffer(),
            fields: fields,
            known: known,
            framing: framing.requestFraming,
            isKeepAlive: version.minor == 1 ? !known.close : known.keepAlive && !known.close
        )
        return ParsedHead(
            head: head,
            framing: framing,
            asksToSwitch: (known.connectionUpgrade || known.proxyConnectionUpgrade) && known.upgradeHasValue
        )
    }
}

/// The options of a `Connection` value the parser acts on (RFC 9110 §7.6.1), read from its bytes.
/// Also reads `TE` lists, for `trailers`.
struct ConnectionOptions {
    var close = false
    var keepAlive = false
    var upgrade = false
    var trailers = false
    /// An option other than these four.
    var namesOthers = false

    init(_ value: UnsafeRawBufferPointer.SubSequence) {
        var start = value.startIndex
        while start < value.endIndex {
            var end = start
            while end < value.endIndex, value[end] != UInt8(ascii: ",") { end += 1 }
            var itemStart = start
            var itemEnd = end
            while itemStart < itemEnd, value[itemStart] == .space || value[itemStart] == .htab { itemStart += 1 }
            while itemEnd > itemStart, value[itemEnd - 1] == .space || value[itemEnd - 1] == .htab { itemEnd -= 1 }
            let item = value[itemStart..<itemEnd]
            switch item.count {
            case 5 where item.equalsIgnoringASCIICase(HTTP1Syntax.ascii("close")): close = true
            case 7 where item.equalsIgnoringASCIICase(HTTP1Syntax.upgrade): upgrade = true
            case 10 where item.equalsIgnoringASCIICase(HTTP1Syntax.ascii("keep-alive")): keepAlive = true
            case 8 where item.equalsIgnoringASCIICase(HTTP1Syntax.trailers): trailers = true
            case 0: break
            default: namesOthers = true
            }
            start = end + 1
        }
    }
}

extension HTTP1MessageBody.Framing {
    var requestFraming: RequestHead.Framing {
        switch self {
        case .none, .untilClose: .none
        case .length(let count): .length(count)
        case .chunked: .chunked
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
