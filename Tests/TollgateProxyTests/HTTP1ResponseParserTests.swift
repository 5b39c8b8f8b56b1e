import NIOCore
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `HTTP1ResponseParser` on its own: RFC 9112 §6.3 framing of an upstream's answers, what it
/// refuses, and that bytes arriving one at a time parse exactly as they do at once.
@Suite struct HTTP1ResponseParserTests {
    static let limits = HTTP1ResponseParser.Limits(maximumHeadBytes: 4096, maximumTrailerBytes: 1024)

    struct Parsed: Equatable {
        var heads: [HTTPResponseHead] = []
        var bodies: [[UInt8]] = []
        var trailers: [HTTPHeaders?] = []
        var switched = false
    }

    /// Feeds `text` in pieces of `step` bytes (0: all at once) as the answers to `methods`, then
    /// closes the input when `closes`.
    static func parse(
        _ text: String,
        to methods: [HTTPMethod] = [.GET],
        step: Int = 0,
        closes: Bool = false
    ) throws -> Parsed {
        var parser = HTTP1ResponseParser(limits: limits)
        for method in methods { parser.expectResponse(to: method) }
        var parsed = Parsed()
        var buffer = ByteBuffer()
        let bytes = Array(text.utf8)
        var offset = 0
        func take(_ part: HTTP1ResponseParser.Part) {
            switch part {
            case .head(let head):
                parsed.heads.append(head.nioHead)
                parsed.bodies.append([])
            case .body(let body):
                parsed.bodies[parsed.bodies.count - 1] += body.readableBytesView
            case .end(let trailers):
                parsed.trailers.append(trailers)
            }
        }
        repeat {
            let end = step == 0 ? bytes.count : min(bytes.count, offset + step)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            loop: while true {
                switch try parser.next(&buffer) {
                case .part(let part): take(part)
                case .needMoreData: break loop
                case .switched:
                    parsed.switched = true
                    break loop
                }
            }
        } while offset < bytes.count
        if closes, let last = try parser.inputClosed() { take(last) }
        return parsed
    }

    static func refusal(_ text: String, to methods: [HTTPMethod] = [.GET], closes: Bool = false) -> HTTP1ParseError? {
        do {
            _ = try parse(text, to: methods, closes: closes)
            return nil
        } catch {
            return error as? HTTP1ParseError
        }
    }

    @Test func aResponseWithContentLengthParsesToItsHeadBodyAndEnd() throws {
        let parsed = try Self.parse("HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello")
        #expect(parsed.heads.count == 1)
        #expect(parsed.heads[0].status == .created)
        #expect(parsed.heads[0].status.reasonPhrase == "Created")
        #expect(parsed.heads[0].version == .http1_1)
        #expect(parsed.heads[0].headers["x-a"] == ["b"])
        #expect(parsed.bodies == [Array("hello".utf8)])
        #expect(parsed.trailers == [nil])
    }

    @Test func aChunkedResponseIsDechunkedWithItsTrailers() throws {
        let parsed = try Self.parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\ngrpc-status: 0\r\n\r\n"
        )
        #expect(parsed.bodies == [Array("abcde".utf8)])
        #expect(parsed.trailers.count == 1)
        #expect(parsed.trailers[0]?["grpc-status"] == ["0"])
    }

    @Test func aResponseWithoutLengthRunsUntilTheConnectionCloses() throws {
        let parsed = try Self.parse("HTTP/1.1 200 OK\r\n\r\nall of it", closes: true)
        #expect(parsed.bodies == [Array("all of it".utf8)])
        #expect(parsed.trailers == [nil])
        let open = try Self.parse("HTTP/1.1 200 OK\r\n\r\nall of it")
        #expect(open.trailers.isEmpty, "the end comes only with the close")
    }

    @Test func answersToHEADAnd204And304HaveNoBodyWhateverTheirLength() throws {
        let parsed = try Self.parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                + "HTTP/1.1 204 No Content\r\n\r\n"
                + "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            to: [.HEAD, .GET, .GET, .GET]
        )
        #expect(parsed.heads.map(\.status.code) == [200, 204, 304, 200])
        #expect(parsed.bodies == [[], [], [], Array("ok".utf8)])
        #expect(parsed.trailers.count == 4)
    }

    @Test func interimAnswersAreDroppedAndTheFinalOneFollows() throws {
        let parsed = try Self.parse(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        #expect(parsed.heads.map(\.status.code) == [200])
        #expect(parsed.bodies == [Array("ok".utf8)])
    }

    @Test func afterA101NothingIsParsed() throws {
        let parsed = try Self.parse(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\u{1}\u{2}not http"
        )
        #expect(parsed.heads.map(\.status.code) == [101])
        #expect(parsed.trailers == [nil])
        #expect(parsed.switched)
    }

    @Test func aStatusLineWithoutReasonIsRead() throws {
        let parsed = try Self.parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
        #expect(parsed.heads.map(\.status.code) == [200])
        let empty = try Self.parse("HTTP/1.0 404 \r\nContent-Length: 0\r\n\r\n")
        #expect(empty.heads.map(\.status.code) == [404])
        #expect(empty.heads[0].version == .http1_0)
    }

    static let streams: [String] = [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nA: b\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    ]

    @Test(arguments: streams, [1, 2, 3, 7, 64])
    func aStreamParsesTheSameInAnyPieces(_ text: String, step: Int) throws {
        let whole = try Self.parse(text, to: [.GET, .GET])
        #expect(try Self.parse(text, to: [.GET, .GET], step: step) == whole)
        #expect(!whole.heads.isEmpty)
    }

    static let refused: [(String, String)] = [
        (
            "Content-Length and Transfer-Encoding",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        ("two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
        ("a Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"),
        ("a signed Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"),
        ("Content_Length", "HTTP/1.1 200 OK\r\nContent_Length: 2\r\n\r\nok"),
        ("Transfer_Encoding", "HTTP/1.1 200 OK\r\nTransfer_Encoding: chunked\r\n\r\n"),
        ("gzip before chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        (
            "two Transfer-Encoding",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        ("Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
        ("whitespace before a colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
        ("a bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
        ("a bare CR", "HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n"),
        ("NUL in a value", "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 0\r\n\r\n"),
        ("HTTP/2.0 status line", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("HTTP/9", "HTTP/9 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("a two-digit status", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
        ("a four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
        ("status 600", "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n"),
        ("status 099", "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n"),
        ("lower-case http", "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("an empty line before the status line", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ("a chunk size that is not hexadecimal", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        (
            "chunk data longer than its size",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
        ),
        ("a chunk size too large", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n"),
        ("a field name that is not a token", "HTTP/1.1 200 OK\r\nX(A): b\r\nContent-Length: 0\r\n\r\n"),
        (
            "a response nobody asked for",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        ),
    ]

    @Test(arguments: refused)
    func aResponseThatCouldBeFramedTwoWaysIsRefused(_ name: String, _ text: String) {
        #expect(Self.refusal(text) != nil, "\(name)")
    }

    @Test func aConnectionClosedInsideAFramedResponseIsAnError() {
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", closes: true) != nil)
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", closes: true) != nil)
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nContent-Le", closes: true) != nil)
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", closes: true) == nil)
    }

    @Test func aHeadLargerThanTheLimitIsRefused() {
        let large = "HTTP/1.1 200 OK\r\nX-A: " + String(repeating: "a", count: 5000) + "\r\n\r\n"
        #expect(Self.refusal(large)?.code == .headTooLarge)
    }

    @Test func aRefusalSticks() {
        var parser = HTTP1ResponseParser(limits: Self.limits)
        parser.expectResponse(to: .GET)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
        #expect(throws: HTTP1ParseError.self) { try parser.next(&buffer) }
        var good = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(throws: HTTP1ParseError.self) { try parser.next(&good) }
    }
}
