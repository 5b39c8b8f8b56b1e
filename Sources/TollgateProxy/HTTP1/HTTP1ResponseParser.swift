import NIOCore
import NIOHTTP1

/// The upstream's HTTP/1.1 responses, parsed as strictly as the client's requests: a response a
/// second parser could frame differently would desynchronise the pooled connection (and the next
/// client's answer with it), so none of the leniencies of RFC 9112 is taken.
///
/// Refused (each an `HTTP1ParseError`; the proxy answers 502 and closes the connection): a bare CR
/// or LF, NUL or any other control character but HTAB in the head, obs-fold, whitespace before a
/// colon, a status line that is not `HTTP/1.x SP 3DIGIT [SP reason]`, a status outside 100–599,
/// a second or non-numeric `Content-Length` (or one spelt `Content_Length`), any
/// `Transfer-Encoding` but a single `chunked`, `Transfer-Encoding` beside `Content-Length` or in
/// HTTP/1.0, broken chunk framing, a response nobody asked for, a connection closed inside a
/// message framed by length or chunks.
///
/// Framing follows RFC 9112 §6.3: no body after a HEAD request or in a 1xx, 204 or 304 answer;
/// chunked; `Content-Length`; otherwise the body runs until the connection closes. Interim 1xx
/// answers but 101 are dropped. After a 101 nothing is parsed: the bytes that follow belong to
/// the new protocol.
package struct HTTP1ResponseParser {
    package struct Limits: Sendable {
        package var maximumHeadBytes: Int
        package var maximumTrailerBytes: Int
        package var maximumChunkLineBytes = 1024

        package init(maximumHeadBytes: Int, maximumTrailerBytes: Int) {
            self.maximumHeadBytes = maximumHeadBytes
            self.maximumTrailerBytes = maximumTrailerBytes
        }
    }

    package typealias Part = UpstreamResponsePart

    package enum Next: Equatable {
        case part(Part)
        case needMoreData
        /// A 101 has ended: what follows is not HTTP/1.1.
        case switched
    }

    private enum State {
        case head
        case body(HTTP1MessageBody, switches: Bool)
        case switched
        case failed(HTTP1ParseError)
    }

    package let limits: Limits
    private var state = State.head
    private var scanner = HTTP1SectionScanner()
    /// The methods of the requests sent and not yet answered, oldest first.
    private var awaiting: [HTTPMethod] = []

    package init(limits: Limits) {
        self.limits = limits
    }

    /// A request went out: its response is the next one expected.
    package mutating func expectResponse(to method: HTTPMethod) {
        awaiting.append(method)
    }

    /// Between two responses: no head, body or trailer section is partly read.
    package var isBetweenMessages: Bool {
        if case .head = state { return scanner.scanned == 0 }
        return false
    }

    /// The next complete part of the response stream in `buffer`, which it consumes.
    /// - Throws: `HTTP1ParseError`; every later call throws it again.
    package mutating func next(_ buffer: inout ByteBuffer) throws -> Next {
        do {
            switch state {
            case .failed(let error):
                throw error
            case .switched:
                return .switched
            case .head:
                return try head(&buffer)
            case .body(var body, let switches):
                let next = try body.next(&buffer)
                return finish(next, body: body, switches: switches)
            }
        } catch let error as HTTP1ParseError {
            state = .failed(error)
            throw error
        }
    }

    /// The upstream closed its side: the end of a body that runs until the close, `nil` between
    /// responses.
    /// - Throws: `HTTP1ParseError` when a response was cut short.
    package mutating func inputClosed() throws -> Part? {
        do {
            switch state {
            case .failed(let error):
                throw error
            case .switched:
                return nil
            case .head:
                guard scanner.scanned == 0 else {
                    throw HTTP1ParseError(.malformed, "the connection closed inside a response head")
                }
                return nil
            case .body(var body, let switches):
                guard case .part(let part) = finish(try body.inputClosed(), body: body, switches: switches) else {
                    return nil
                }
                return part
            }
        } catch let error as HTTP1ParseError {
            state = .failed(error)
            throw error
        }
    }

    private mutating func finish(_ next: HTTP1MessageBody.Next, body: HTTP1MessageBody, switches: Bool) -> Next {
        switch next {
        case .body(let slice):
            state = .body(body, switches: switches)
            return .part(.body(slice))
        case .end(let trailers):
            state = switches ? .switched : .head
            return .part(.end(trailers))
        case .needMoreData:
            state = .body(body, switches: switches)
            return .needMoreData
        }
    }

    private mutating func head(_ buffer: inout ByteBuffer) throws -> Next {
        while true {
            guard let length = try scanner.scan(buffer, limit: limits.maximumHeadBytes) else { return .needMoreData }
            var parsed = try buffer.withUnsafeReadableBytes { bytes in
                try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
            }
            parsed.head.bytes = buffer.readSlice(length: length)!
            let status = parsed.head.status.code
            if status >= 100 && status < 200 && status != 101 {
                // Interim (100 Continue, 103 Early Hints): dropped; the final answer follows.
                continue
            }
            guard !awaiting.isEmpty else { throw HTTP1ParseError(.malformed, "a response nobody asked for") }
            let method = awaiting.removeFirst()
            var framing = parsed.framing
            if method == .HEAD || status < 200 || status == 204 || status == 304 { framing = .none }
            state = .body(
                HTTP1MessageBody(
                    framing,
                    maximumTrailerBytes: limits.maximumTrailerBytes,
                    maximumChunkLineBytes: limits.maximumChunkLineBytes
                ),
                switches: status == 101
            )
            return .part(.head(parsed.head))
        }
    }

    struct ParsedHead {
        /// Its `bytes` are set by the caller, which holds the buffer.
        var head: ResponseHead
        var framing: HTTP1MessageBody.Framing
    }

    /// The status line and field lines of a complete head (CTLs, bare CR and LF already refused).
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws -> ParsedHead {
        // HTTP/1.x SP 3DIGIT, then SP reason-phrase or the line's end.
        guard bytes.count >= 14,
            bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"), bytes[2] == UInt8(ascii: "T"),
            bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/"), bytes[5] == UInt8(ascii: "1"),
            bytes[6] == UInt8(ascii: "."), bytes[7] == UInt8(ascii: "0") || bytes[7] == UInt8(ascii: "1"),
            bytes[8] == .space, bytes[9].isDigit, bytes[10].isDigit, bytes[11].isDigit,
            bytes[12] == .space || bytes[12] == .cr
        else {
            throw HTTP1ParseError(.malformed, "the status line is not HTTP/1.x, a space and three digits")
        }
        let version = HTTPVersion(major: 1, minor: bytes[7] == UInt8(ascii: "1") ? 1 : 0)
        let code = Int(bytes[9] - 48) * 100 + Int(bytes[10] - 48) * 10 + Int(bytes[11] - 48)
        guard code >= 100 && code <= 599 else { throw HTTP1ParseError(.malformed, "a status outside 100-599") }
        var index = 12
        var reasonRange = 12..<12
        if bytes[12] == .space {
            let start = 13
            index = start
            while bytes[index] != .cr { index += 1 }
            reasonRange = start..<index
        }
        index += 2
        let fieldsStart = index

        var fields: [FieldOffsets] = []
        fields.reserveCapacity(16)
        var contentLength: Int?
        var transferEncoding = false
        var close = false
        var keepAlive = false
        var namesOthers = false
        try HTTP1Syntax.parseFields(bytes, from: index) { name, value, lineEnd in
            fields.append(
                FieldOffsets(
                    lineStart: UInt32(name.startIndex),
                    nameEnd: UInt32(name.endIndex),
                    valueStart: UInt32(value.startIndex),
                    valueEnd: UInt32(value.endIndex),
                    lineEnd: UInt32(lineEnd)
                )
            )
            switch name.count {
            case 14 where name.equalsIgnoringASCIICase(HTTP1Syntax.contentLength):
                guard contentLength == nil else { throw HTTP1ParseError(.malformed, "more than one Content-Length") }
                guard let length = HTTP1Syntax.decimal(value) else {
                    throw HTTP1ParseError(.malformed, "invalid Content-Length")
                }
                contentLength = length
            case 17 where name.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding):
                guard !transferEncoding else { throw HTTP1ParseError(.malformed, "more than one Transfer-Encoding") }
                guard value.equalsIgnoringASCIICase(HTTP1Syntax.chunked) else {
                    throw HTTP1ParseError(.malformed, "a transfer coding other than chunked")
                }
                transferEncoding = true
            case 10 where name.equalsIgnoringASCIICase(HTTP1Syntax.connection):
                let options = ConnectionOptions(value)
                if options.close { close = true }
                if options.keepAlive { keepAlive = true }
                if options.namesOthers || options.trailers { namesOthers = true }
            case 14 where name.equalsIgnoringASCIICase(HTTP1Syntax.contentLength, underscoreAsHyphen: true),
                17 where name.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding, underscoreAsHyphen: true):
                throw HTTP1ParseError(.malformed, "a framing header spelt with an underscore")
            default:
                break
            }
        }
        let framing: HTTP1MessageBody.Framing
        if transferEncoding {
            guard contentLength == nil else {
                throw HTTP1ParseError(.malformed, "both Content-Length and Transfer-Encoding")
            }
            guard version.minor == 1 else { throw HTTP1ParseError(.malformed, "Transfer-Encoding in HTTP/1.0") }
            framing = .chunked
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .untilClose
        }
        // NIO's type names the registered codes itself; the phrase is kept for the others.
        let status = HTTPResponseStatus(
            statusCode: code,
            reasonPhrase: String(decoding: bytes[reasonRange], as: UTF8.self)
        )
        let head = ResponseHead(
            version: version,
            status: status,
            bytes: ByteBuffer(),
            fields: fields,
            fieldsStart: fieldsStart,
            framing: framing.responseFraming,
            isKeepAlive: version.minor == 1 ? !close : keepAlive && !close,
            connectionNamesOthers: namesOthers,
            isChecked: true
        )
        return ParsedHead(head: head, framing: framing)
    }
}

extension HTTP1MessageBody.Framing {
    var responseFraming: ResponseHead.Framing {
        switch self {
        case .none, .untilClose: .unstated
        case .length(let count): .length(count)
        case .chunked: .chunked
        }
    }
}
