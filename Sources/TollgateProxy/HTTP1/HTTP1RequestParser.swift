import NIOCore
import NIOHTTP1

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
/// A plain struct over `ByteBuffer`: the channel handler (`HTTP1RequestDecoder`) feeds it, tests
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

    package enum Part: Equatable {
        case head(HTTPRequestHead)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

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
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case endOfMessage
        case paused
        case failed(HTTP1ParseError)
    }

    package let limits: Limits
    private var state = State.head
    /// How far into the unfinished head or trailer section the bytes have been checked, and
    /// where its current line starts (offsets from the buffer's reader index), so a section that
    /// arrives in pieces is scanned once.
    private var scanned = 0
    private var lineStart = 0
    private var leadingEmptyLines = 0
    private var pausesAfterMessage = false

    package init(limits: Limits) {
        self.limits = limits
    }

    /// Between two requests: no head, body or trailer section is partly read.
    package var isBetweenMessages: Bool {
        switch state {
        case .head: scanned == 0
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
        switch state {
        case .failed(let error):
            throw error
        case .paused:
            return .paused
        case .endOfMessage:
            finishMessage()
            return .part(.end(nil))
        case .head:
            do {
                return try head(&buffer)
            } catch let error as HTTP1ParseError {
                state = .failed(error)
                throw error
            }
        case .body(let remaining):
            guard buffer.readableBytes > 0 else { return .needMoreData }
            let count = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: count)!
            state = count == remaining ? .endOfMessage : .body(remaining: remaining - count)
            return .part(.body(slice))
        case .chunkSize, .chunkData, .chunkDataEnd, .trailers:
            do {
                return try chunked(&buffer)
            } catch let error as HTTP1ParseError {
                state = .failed(error)
                throw error
            }
        }
    }

    private mutating func finishMessage() {
        state = pausesAfterMessage ? .paused : .head
        pausesAfterMessage = false
        leadingEmptyLines = 0
    }

    // MARK: - Head

    private mutating func head(_ buffer: inout ByteBuffer) throws -> Next {
        while scanned == 0, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first == .cr {
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
        guard let length = try scanSection(buffer, limit: limits.maximumHeadBytes) else { return .needMoreData }
        let parsed = try buffer.withUnsafeReadableBytes { bytes in
            try Self.parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        }
        buffer.moveReaderIndex(forwardBy: length)
        scanned = 0
        lineStart = 0
        pausesAfterMessage = parsed.asksToSwitch
        switch parsed.framing {
        case .none: state = .endOfMessage
        case .length(let count): state = count == 0 ? .endOfMessage : .body(remaining: count)
        case .chunked: state = .chunkSize
        }
        return .part(.head(parsed.head))
    }

    /// Checks the bytes of a head or trailer section as they arrive and finds its end.
    /// - Returns: the section's length, final empty line included, or `nil` while it is incomplete.
    private mutating func scanSection(_ buffer: ByteBuffer, limit: Int) throws -> Int? {
        let result: Int? = try buffer.withUnsafeReadableBytes { bytes in
            var index = scanned
            while index < bytes.count {
                let byte = bytes[index]
                if byte == .cr {
                    guard index + 1 < bytes.count else { break }
                    guard bytes[index + 1] == .lf else { throw HTTP1ParseError(.malformed, "a bare CR") }
                    if index == lineStart { return index + 2 }
                    index += 2
                    lineStart = index
                    continue
                }
                if byte == .lf { throw HTTP1ParseError(.malformed, "a bare LF") }
                if byte < 0x20 && byte != .htab || byte == 0x7F {
                    throw HTTP1ParseError(.malformed, "a control character in the head")
                }
                index += 1
            }
            scanned = index
            return nil
        }
        if let result {
            guard result <= limit + 2 else { throw HTTP1ParseError(.headTooLarge, "the head is too large") }
            return result
        }
        guard scanned <= limit else { throw HTTP1ParseError(.headTooLarge, "the head is too large") }
        return nil
    }

    package enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
    }

    struct ParsedHead {
        var head: HTTPRequestHead
        var framing: Framing
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

        var headers = HTTPHeaders()
        var contentLength: Int?
        var transferEncoding = false
        var connectionUpgrade = false
        var upgrade = false
        try parseFields(bytes, from: index) { name, value in
            let nameString = String(decoding: name, as: UTF8.self)
            let valueString = String(decoding: value, as: UTF8.self)
            switch name.count {
            case 14 where name.equalsLowercased(contentLengthName):
                guard contentLength == nil else {
                    throw HTTP1ParseError(.malformed, "more than one Content-Length")
                }
                guard let length = Self.decimal(value) else {
                    throw HTTP1ParseError(.malformed, "invalid Content-Length")
                }
                contentLength = length
            case 17 where name.equalsLowercased(transferEncodingName):
                guard !transferEncoding else { throw HTTP1ParseError(.malformed, "more than one Transfer-Encoding") }
                guard value.equalsLowercased(chunkedName) else {
                    throw HTTP1ParseError(.malformed, "a transfer coding other than chunked")
                }
                transferEncoding = true
            case 10 where name.equalsLowercased(connectionName), 16 where name.equalsLowercased(proxyConnectionName):
                if CheckedRequestHead.listContains(valueString, "upgrade") { connectionUpgrade = true }
            case 7 where name.equalsLowercased(upgradeName):
                if !value.isEmpty { upgrade = true }
            case 14 where name.equalsLowercasedFoldingUnderscore(contentLengthName),
                17 where name.equalsLowercasedFoldingUnderscore(transferEncodingName):
                // `Content_Length`: an upstream that reads `_` as `-` would frame the body by it.
                throw HTTP1ParseError(.malformed, "a framing header spelt with an underscore")
            default:
                break
            }
            headers.add(name: nameString, value: valueString)
        }
        let framing: Framing
        if transferEncoding {
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
        let head = HTTPRequestHead(
            version: version,
            method: method,
            uri: String(decoding: bytes[targetStart..<targetEnd], as: UTF8.self),
            headers: headers
        )
        return ParsedHead(head: head, framing: framing, asksToSwitch: connectionUpgrade && upgrade)
    }

    /// Calls `field` with the name and the trimmed value of each field line from `start` to the
    /// section's final empty line.
    static func parseFields(
        _ bytes: UnsafeRawBufferPointer,
        from start: Int,
        _ field: (UnsafeRawBufferPointer.SubSequence, UnsafeRawBufferPointer.SubSequence) throws -> Void
    ) throws {
        var index = start
        while bytes[index] != .cr {
            if bytes[index] == .space || bytes[index] == .htab {
                throw HTTP1ParseError(.malformed, "obs-fold (a field line starting with whitespace)")
            }
            let nameStart = index
            while bytes[index].isTokenCharacter { index += 1 }
            guard bytes[index] == UInt8(ascii: ":") else {
                throw HTTP1ParseError(
                    .malformed,
                    bytes[index] == .space || bytes[index] == .htab
                        ? "whitespace between a field name and its colon" : "a field line without a valid name"
                )
            }
            guard index > nameStart else { throw HTTP1ParseError(.malformed, "an empty field name") }
            let name = bytes[nameStart..<index]
            index += 1
            while bytes[index] == .space || bytes[index] == .htab { index += 1 }
            let valueStart = index
            while bytes[index] != .cr { index += 1 }
            var valueEnd = index
            while valueEnd > valueStart, bytes[valueEnd - 1] == .space || bytes[valueEnd - 1] == .htab {
                valueEnd -= 1
            }
            try field(name, bytes[valueStart..<valueEnd])
            index += 2
        }
    }

    /// `1*DIGIT`, at most 18 digits.
    static func decimal(_ bytes: UnsafeRawBufferPointer.SubSequence) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    // MARK: - Chunked body (RFC 9112 §7.1)

    private mutating func chunked(_ buffer: inout ByteBuffer) throws -> Next {
        while true {
            switch state {
            case .chunkSize:
                guard let size = try chunkSizeLine(&buffer) else { return .needMoreData }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return .needMoreData }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .part(.body(slice))
            case .chunkDataEnd:
                guard buffer.readableBytes >= 2 else {
                    if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first != .cr {
                        throw HTTP1ParseError(.badChunk, "chunk data longer than its size")
                    }
                    return .needMoreData
                }
                guard buffer.readInteger(as: UInt16.self) == UInt16(UInt8.cr) << 8 | UInt16(UInt8.lf) else {
                    throw HTTP1ParseError(.badChunk, "chunk data longer than its size")
                }
                state = .chunkSize
            case .trailers:
                guard let length = try scanSection(buffer, limit: limits.maximumTrailerBytes) else {
                    return .needMoreData
                }
                var trailers = HTTPHeaders()
                try buffer.withUnsafeReadableBytes { bytes in
                    try Self.parseFields(UnsafeRawBufferPointer(rebasing: bytes[0..<length]), from: 0) { name, value in
                        trailers.add(
                            name: String(decoding: name, as: UTF8.self),
                            value: String(decoding: value, as: UTF8.self)
                        )
                    }
                }
                buffer.moveReaderIndex(forwardBy: length)
                scanned = 0
                lineStart = 0
                finishMessage()
                return .part(.end(trailers.isEmpty ? nil : trailers))
            default:
                return .needMoreData
            }
        }
    }

    /// `chunk-size [ chunk-ext ] CRLF`: the size, or `nil` while the line is incomplete.
    private func chunkSizeLine(_ buffer: inout ByteBuffer) throws -> Int? {
        let limit = limits.maximumChunkLineBytes
        let line: (size: Int, length: Int)? = try buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            var size = 0
            while index < bytes.count, let digit = bytes[index].hexValue {
                guard index < 15 else { throw HTTP1ParseError(.badChunk, "a chunk size too large") }
                size = size << 4 | digit
                index += 1
            }
            if index == bytes.count { return nil }
            guard index > 0 else { throw HTTP1ParseError(.badChunk, "a chunk size that is not hexadecimal") }
            // BWS ";" chunk-ext: kept to visible characters and whitespace, and dropped.
            while index < bytes.count, bytes[index] == .space || bytes[index] == .htab { index += 1 }
            if index < bytes.count, bytes[index] != .cr {
                guard bytes[index] == UInt8(ascii: ";") else {
                    throw HTTP1ParseError(.badChunk, "a chunk size that is not hexadecimal")
                }
                while index < bytes.count, bytes[index] != .cr {
                    let byte = bytes[index]
                    guard byte >= 0x20 && byte != 0x7F || byte == .htab else {
                        throw HTTP1ParseError(.badChunk, "a control character in a chunk extension")
                    }
                    index += 1
                }
            }
            guard index + 1 < bytes.count else {
                guard index <= limit else { throw HTTP1ParseError(.badChunk, "chunk extensions too long") }
                return nil
            }
            guard bytes[index + 1] == .lf else { throw HTTP1ParseError(.badChunk, "a bare CR in a chunk line") }
            guard index <= limit else { throw HTTP1ParseError(.badChunk, "chunk extensions too long") }
            return (size, index + 2)
        }
        guard let line else { return nil }
        buffer.moveReaderIndex(forwardBy: line.length)
        return line.size
    }
}

private let contentLengthName = Array("content-length".utf8)
private let transferEncodingName = Array("transfer-encoding".utf8)
private let connectionName = Array("connection".utf8)
private let proxyConnectionName = Array("proxy-connection".utf8)
private let upgradeName = Array("upgrade".utf8)
private let chunkedName = Array("chunked".utf8)

extension UInt8 {
    fileprivate static let cr = UInt8(ascii: "\r")
    fileprivate static let lf = UInt8(ascii: "\n")
    fileprivate static let space = UInt8(ascii: " ")
    fileprivate static let htab = UInt8(ascii: "\t")

    /// RFC 9110 §5.6.2 tchar.
    fileprivate var isTokenCharacter: Bool { tokenCharacters[Int(self)] }

    fileprivate var hexValue: Int? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(self - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(self - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(self - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}

private let tokenCharacters: [Bool] = (0..<256).map { value in
    let byte = UInt8(value)
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

extension Slice where Base == UnsafeRawBufferPointer {
    /// Like `equalsLowercased`, with `_` read as `-`.
    fileprivate func equalsLowercasedFoldingUnderscore(_ lowercased: [UInt8]) -> Bool {
        guard count == lowercased.count else { return false }
        var other = lowercased.startIndex
        for byte in self {
            var folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            if folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
            guard folded == lowercased[other] else { return false }
            other += 1
        }
        return true
    }

    /// ASCII case-insensitive comparison with a lower-case name.
    fileprivate func equalsLowercased(_ lowercased: [UInt8]) -> Bool {
        guard count == lowercased.count else { return false }
        var other = lowercased.startIndex
        for byte in self {
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard folded == lowercased[other] else { return false }
            other += 1
        }
        return true
    }
}
