import NIOCore
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `HTTP1RequestParser` on its own, without a channel: RFC 9112's framing, what it refuses, and
/// that bytes arriving one at a time parse exactly as they do at once.
@Suite struct HTTP1RequestParserTests {
    static let limits = HTTP1RequestParser.Limits(maximumHeadBytes: 4096, maximumTrailerBytes: 1024)

    /// What a stream of bytes parses to: heads, the body bytes of each request joined, trailers.
    struct Parsed: Equatable {
        var heads: [HTTPRequestHead] = []
        var bodies: [[UInt8]] = []
        var trailers: [HTTPHeaders?] = []
        var paused = false
    }

    /// Feeds `text` in pieces of `step` bytes (0: all at once).
    static func parse(_ text: String, step: Int = 0, limits: HTTP1RequestParser.Limits = limits) throws -> Parsed {
        var parser = HTTP1RequestParser(limits: limits)
        var parsed = Parsed()
        var buffer = ByteBuffer()
        let bytes = Array(text.utf8)
        var offset = 0
        repeat {
            let end = step == 0 ? bytes.count : min(bytes.count, offset + step)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            loop: while true {
                switch try parser.next(&buffer) {
                case .part(.head(let head)):
                    parsed.heads.append(head.nioHead)
                    parsed.bodies.append([])
                case .part(.body(let body)):
                    parsed.bodies[parsed.bodies.count - 1] += body.readableBytesView
                case .part(.end(let trailers)):
                    parsed.trailers.append(trailers)
                case .needMoreData:
                    break loop
                case .paused:
                    parsed.paused = true
                    break loop
                }
            }
        } while offset < bytes.count
        return parsed
    }

    static func refusal(_ text: String) -> HTTP1ParseError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error as? HTTP1ParseError
        }
    }

    @Test func aSimpleRequestParsesToItsHeadAndEnd() throws {
        let parsed = try Self.parse("GET /a?b=1 HTTP/1.1\r\nHost: api.test\r\nX-Empty:\r\nX-Pad: \t v  \t\r\n\r\n")
        let head = try #require(parsed.heads.first)
        #expect(head.method == .GET)
        #expect(head.uri == "/a?b=1")
        #expect(head.version == .http1_1)
        #expect(
            Array(head.headers.map { [$0.name, $0.value] }) == [
                ["Host", "api.test"], ["X-Empty", ""], ["X-Pad", "v"],
            ]
        )
        #expect(parsed.trailers == [nil])
    }

    @Test func pipelinedRequestsWithBodiesParseInOrderWhateverTheReadSizes() throws {
        let text =
            "\r\nPOST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "3;name=value\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "GET /three HTTP/1.0\r\n\r\n"
        let whole = try Self.parse(text)
        #expect(whole.heads.map(\.uri) == ["/one", "/two", "/three"])
        #expect(whole.bodies == [Array("hello".utf8), Array("abc0123456789abcdef".utf8), []])
        #expect(whole.trailers == [nil, HTTPHeaders([("X-Trailer", "t")]), nil])
        #expect(whole.heads[2].version == .http1_0)
        for step in [1, 2, 3, 7, 64] {
            #expect(try Self.parse(text, step: step) == whole, "in pieces of \(step)")
        }
    }

    @Test func aRequestAskingToSwitchPausesTheParserUntilResumed() throws {
        var parser = HTTP1RequestParser(limits: Self.limits)
        var buffer = ByteBuffer(
            string: "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{1}\u{2}raw"
        )
        guard case .part(.head) = try parser.next(&buffer) else { Issue.record("no head"); return }
        #expect(try parser.next(&buffer) == .part(.end(nil)))
        #expect(try parser.next(&buffer) == .paused)
        #expect(buffer.readableBytes == 5, "the bytes after the request are held, unparsed")
        parser.resume()
        #expect(throws: HTTP1ParseError.self) { try parser.next(&buffer) }
    }

    /// Which requests pause the parser: `Connection` (or `Proxy-Connection`, as llhttp reads it)
    /// listing `upgrade`, and an `Upgrade` field with a value. The head says so itself
    /// (`pausesParser`), and the parser delivers nothing after it.
    static let switchRequests: [(String, Bool)] = [
        ("Connection: Upgrade\r\nUpgrade: websocket\r\n", true),
        ("Connection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n", true),
        ("Connection: upgrade\r\nUpgrade: websocket, h2c\r\n", true),
        ("Proxy-Connection: Upgrade\r\nUpgrade: websocket\r\n", true),
        ("Connection: Upgrade\r\nUpgrade: \r\n", false),
        ("Connection: Upgrade\r\nUpgrade: ,\r\n", true),
        ("Connection: Upgrade\r\nUpgrade:    \r\n", false),
        ("connection: UPGRADE\r\nupgrade: WebSocket\r\n", true),
        ("Connection: Upgrade\r\nConnection: close\r\nUpgrade: websocket\r\n", true),
        ("Connection: Upgrade\r\n", false),
        ("Upgrade: websocket\r\n", false),
        ("Connection: Upgraded\r\nUpgrade: websocket\r\n", false),
        ("Connection: close-upgrade\r\nUpgrade: websocket\r\n", false),
        ("Connection: x, upgrade ,y\r\nUpgrade: websocket\r\n", true),
        ("", false),
    ]

    @Test(arguments: switchRequests)
    func theHeadSaysWhetherTheParserPausedAfterIt(fields: String, pauses: Bool) throws {
        var parser = HTTP1RequestParser(limits: Self.limits)
        var buffer = ByteBuffer(
            string: "GET / HTTP/1.1\r\nHost: a\r\n\(fields)\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        var heads: [RequestHead] = []
        while case .part(let part) = try parser.next(&buffer) {
            if case .head(let head) = part { heads.append(head) }
        }
        #expect(heads.count == (pauses ? 1 : 2), "\(fields.debugDescription)")
        #expect(heads.first?.pausesParser == pauses, "\(fields.debugDescription)")
        #expect(heads.dropFirst().allSatisfy { !$0.pausesParser })
    }

    /// The parser notes where the fields the pipeline reads are: a later step reads them there
    /// instead of looking them up by name.
    @Test func theHeadLocatesTheFieldsThePipelineReads() throws {
        var buffer = ByteBuffer(
            string: "GET / HTTP/1.1\r\nX-A: 1\r\nhost: a.test\r\nAUTHORIZATION: Bearer t\r\nCookie: c=1\r\n"
                + "x-request-id: r1\r\nTraceparent: tp\r\nTE: trailers\r\nCookie: d=2\r\n"
                + "Connection: keep-alive, X-A\r\nX_Request_Id: r2\r\n\r\n"
        )
        var parser = HTTP1RequestParser(limits: Self.limits)
        guard case .part(.head(let head)) = try parser.next(&buffer) else {
            Issue.record("no head")
            return
        }
        let known = head.known
        #expect(known.host == .init(first: 1, count: 1))
        #expect(known.authorization == .init(first: 2, count: 1))
        #expect(known.cookie == .init(first: 3, count: 2))
        #expect(known.requestID == .init(first: 4, count: 1), "X_Request_Id is another field")
        #expect(known.traceparent == .init(first: 5, count: 1))
        #expect(known.connection == .init(first: 8, count: 1))
        #expect(known.acceptsTrailers && known.keepAlive && known.connectionNamesFields && !known.close)
        #expect(head.value(of: known.authorization) == "Bearer t")
        #expect(head.connectionNamed == ["x-a"])
        #expect(head.upgradeProtocols.isEmpty && !head.pausesParser)
    }

    static let refused: [(String, String)] = [
        (
            "both Content-Length and Transfer-Encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        (
            "Transfer-Encoding before Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        ),
        ("two equal Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        (
            "two differing Content-Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        ),
        ("a Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"),
        ("a negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
        ("a signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"),
        ("a hexadecimal Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc"),
        ("an empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"),
        ("an overflowing Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        ("gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        ("chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        ("chunked twice in one field", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        (
            "chunked in two fields",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        ("identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"),
        ("a misspelt chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"),
        ("a quoted chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"),
        ("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n"),
        ("obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n"),
        ("whitespace before the colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc"),
        ("a tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
        ("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
        ("a bare LF ending a field", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n"),
        ("a bare LF ending the head", "GET / HTTP/1.1\nHost: a\n\n"),
        ("a bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"),
        ("a bare CR ending the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n"),
        ("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{0}c\r\n\r\n"),
        ("a control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{1B}c\r\n\r\n"),
        ("DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{7F}c\r\n\r\n"),
        ("NUL in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\u{0}A: b\r\n\r\n"),
        ("a separator in a name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"),
        ("a non-ASCII name", "GET / HTTP/1.1\r\nHost: a\r\nX-Ä: b\r\n\r\n"),
        ("an empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"),
        ("a line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n"),
        ("two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a tab after the method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a non-ASCII target", "GET /ä HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("no version", "GET /\r\nHost: a\r\n\r\n"),
        ("HTTP/2.0 in a request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
        ("a lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n"),
        ("a space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
        ("a method with a separator", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("an empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "Content_Length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        (
            "Transfer_Encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        ("a lower-case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("an unknown method", "FROB / HTTP/1.1\r\nHost: a\r\n\r\n"),
        (
            "a chunk size that is not hexadecimal",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "an empty chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "a negative chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "a 0x chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "an overflowing chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "chunk data longer than its size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "a bare LF after a chunk size",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"
        ),
        (
            "a bare LF after chunk data",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"
        ),
        (
            "a control character in a chunk extension",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\u{0}b\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "chunk extensions past the limit",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\(String(repeating: "x", count: 2000))\r\nhello\r\n0\r\n\r\n"
        ),
        (
            "obs-fold in a trailer",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n"
        ),
        (
            "a bare LF in the trailers",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\n\r\n"
        ),
        ("too many empty lines first", String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ]

    @Test(arguments: refused)
    func hostileFramingIsRefused(_ name: String, _ text: String) {
        #expect(Self.refusal(text) != nil, "\(name) was accepted")
    }

    @Test func aRefusalSticksAndNamesTheRuleNotTheBytes() throws {
        var parser = HTTP1RequestParser(limits: Self.limits)
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\nX-Secret: top\u{0}secret\r\n\r\n")
        let error = try #require(throws: HTTP1ParseError.self) { try parser.next(&buffer) }
        #expect(!error.reason.contains("secret"))
        var next = ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(throws: HTTP1ParseError.self) { try parser.next(&next) }
    }

    @Test func aHeadPastTheLimitIsRefusedBeforeItEnds() throws {
        let limits = HTTP1RequestParser.Limits(maximumHeadBytes: 64, maximumTrailerBytes: 64)
        let error = try #require(throws: HTTP1ParseError.self) {
            try Self.parse("GET / HTTP/1.1\r\nX-A: \(String(repeating: "a", count: 100))", limits: limits)
        }
        #expect(error.code == .headTooLarge)
        #expect(
            try Self.parse("GET / HTTP/1.1\r\nX-A: \(String(repeating: "a", count: 30))\r\n\r\n", limits: limits).heads
                .count == 1
        )
    }

    @Test func aControlCharacterIsRefusedAsSoonAsItArrivesNotAtTheEndOfTheHead() throws {
        var parser = HTTP1RequestParser(limits: Self.limits)
        var buffer = ByteBuffer()
        for byte in Array("GET / HTTP/1.1\r\nX-A: b".utf8) {
            buffer.writeInteger(byte)
            #expect(try parser.next(&buffer) == .needMoreData)
        }
        buffer.writeInteger(UInt8(0))
        #expect(throws: HTTP1ParseError.self) { try parser.next(&buffer) }
    }

    /// The scanner's eight-byte test flags exactly the words holding a control character or DEL:
    /// every byte value at every position, then random words against the byte-wise rule.
    /// Each eight-byte test against the byte-wise rule it stands for: every byte value at every
    /// position of a plain word, and 40,000 random words.
    static let wordTests: [(String, @Sendable (UInt64) -> Bool, @Sendable (UInt8) -> Bool)] = [
        ("control or DEL", ByteWord.hasControlOrDelete, { $0 < 0x20 || $0 == 0x7F }),
        ("CR", { ByteWord.has(.cr, in: $0) }, { $0 == .cr }),
        ("not visible", ByteWord.hasNonVisible, { $0 <= 0x20 || $0 >= 0x7F }),
    ]

    @Test(arguments: 0..<wordTests.count)
    func aWordTestFlagsExactlyTheBytesItsRuleFlags(_ test: Int) {
        let (name, wordTest, byteRule) = Self.wordTests[test]
        func reference(_ word: UInt64) -> Bool {
            (0..<8).contains { shift in byteRule(UInt8(truncatingIfNeeded: word >> (8 * UInt64(shift)))) }
        }
        let plain = UInt64(0x6161_6161_6161_6161)
        for position in 0..<8 {
            for value in 0...255 {
                let shift = UInt64(8 * position)
                let word = (plain & ~(0xFF << shift)) | (UInt64(value) << shift)
                #expect(wordTest(word) == reference(word), "\(name): \(value) at \(position)")
            }
        }
        var random = SplitMix64()
        var mismatches: [UInt64] = []
        for _ in 0..<20_000 {
            // Random words, and words of random bytes near the rule's edges.
            let word = random.next()
            let edgy = word & 0x7F7F_7F7F_7F7F_7F7F | (random.next() & 0x2020_2020_2020_2020)
            for candidate in [word, edgy] where wordTest(candidate) != reference(candidate) {
                mismatches.append(candidate)
            }
        }
        #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(5).map { String($0, radix: 16) })")
    }
}
