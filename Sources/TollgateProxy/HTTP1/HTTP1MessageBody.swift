import NIOCore
import NIOHTTP1

/// The body of an HTTP/1.1 message after its head (RFC 9112 §6.3, §7.1), shared by the request
/// and the response parser: a length, chunked, or (a response only) everything until the
/// connection closes. Body bytes are handed on as slices of the received buffer, never copied.
struct HTTP1MessageBody {
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
        /// A response without `Content-Length` or `Transfer-Encoding` (RFC 9112 §6.3, point 8).
        case untilClose
    }

    enum Next {
        case body(ByteBuffer)
        case end(HTTPHeaders?)
        case needMoreData
    }

    private enum State {
        case length(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case complete
    }

    private var state: State
    private var scanner = HTTP1SectionScanner()
    private let maximumTrailerBytes: Int
    private let maximumChunkLineBytes: Int

    init(_ framing: Framing, maximumTrailerBytes: Int, maximumChunkLineBytes: Int) {
        switch framing {
        case .none, .length(0): state = .complete
        case .length(let count): state = .length(remaining: count)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
        self.maximumTrailerBytes = maximumTrailerBytes
        self.maximumChunkLineBytes = maximumChunkLineBytes
    }

    /// The next body slice, or the end once the body is complete (trailers of a chunked body
    /// with it).
    /// - Throws: `HTTP1ParseError` for broken chunk framing or trailers.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Next {
        while true {
            switch state {
            case .complete:
                return .end(nil)
            case .length(let remaining):
                guard buffer.readableBytes > 0 else { return .needMoreData }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = count == remaining ? .complete : .length(remaining: remaining - count)
                return .body(slice)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return .needMoreData }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunkSize:
                guard let size = try chunkSizeLine(&buffer) else { return .needMoreData }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return .needMoreData }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(slice)
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
                guard let length = try scanner.scan(buffer, limit: maximumTrailerBytes) else {
                    return .needMoreData
                }
                var trailers = HTTPHeaders()
                try buffer.withUnsafeReadableBytes { bytes in
                    try HTTP1Syntax.parseFields(UnsafeRawBufferPointer(rebasing: bytes[0..<length]), from: 0) {
                        name,
                        value,
                        _ in
                        trailers.add(
                            name: String(decoding: name, as: UTF8.self),
                            value: String(decoding: value, as: UTF8.self)
                        )
                    }
                }
                buffer.moveReaderIndex(forwardBy: length)
                state = .complete
                return .end(trailers.isEmpty ? nil : trailers)
            }
        }
    }

    /// The connection's input ended: the end of a body read until the close.
    /// - Throws: `HTTP1ParseError` when the body was framed otherwise and is not complete.
    mutating func inputClosed() throws -> Next {
        switch state {
        case .untilClose, .complete:
            state = .complete
            return .end(nil)
        default:
            throw HTTP1ParseError(.malformed, "the connection closed inside a message")
        }
    }

    /// `chunk-size [ chunk-ext ] CRLF`: the size, or `nil` while the line is incomplete.
    private func chunkSizeLine(_ buffer: inout ByteBuffer) throws -> Int? {
        let limit = maximumChunkLineBytes
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
