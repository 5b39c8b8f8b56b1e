import NIOCore
import NIOHPACK
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// `ResponseRelay` without sockets: which upstream answer heads reach the client, written how,
/// and whether the upstream and the client connection may be reused after them.
@Suite struct ResponseRelayTests {
    /// An upstream answer head as the upstream codec reads it.
    static func parsed(_ text: String, method: HTTPMethod = .GET) throws -> ResponseHead {
        var parser = HTTP1ResponseParser(limits: .init(maximumHeadBytes: 8192, maximumTrailerBytes: 1024))
        parser.expectResponse(to: method)
        var buffer = ByteBuffer(string: text)
        guard case .part(.head(let head)) = try parser.next(&buffer) else {
            throw HTTP1ParseError(.malformed, "no head in the test's text")
        }
        return head
    }

    /// A head as an h2c stream gives it (NIO's type, not read by our parser).
    static func fromStream(_ status: HTTPResponseStatus, _ headers: [(String, String)] = []) -> ResponseHead {
        ResponseHead(HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers)))
    }

    static func relay(
        _ head: ResponseHead,
        upgrade: [String]? = nil,
        keepAlive: Bool = true,
        client: ResponseRelay.Client = .http1_1,
        isHead: Bool = false
    ) -> ResponseRelay.HeadAction {
        ResponseRelay.head(
            head,
            upgradeProtocols: upgrade,
            clientKeepAlive: keepAlive,
            client: client,
            isHeadRequest: isHead
        )
    }

    /// What the client receives as the head, and whether the body goes chunked.
    static func written(_ action: ResponseRelay.HeadAction) throws -> (text: String, chunked: Bool) {
        guard case .relay(let relayed) = action, case .relayedHead(let bytes, let chunked) = relayed.part else {
            throw HTTP1ParseError(.malformed, "not relayed as bytes: \(action)")
        }
        return (String(buffer: bytes), chunked)
    }

    static func relayed(_ action: ResponseRelay.HeadAction) throws -> ResponseRelay.Relayed {
        guard case .relay(let relayed) = action else { throw HTTP1ParseError(.malformed, "not relayed: \(action)") }
        return relayed
    }

    @Test func keptLinesAreCopiedAsReceivedWithoutTheHopByHopOnes() throws {
        let head = try Self.parsed(
            "HTTP/1.1 200 OK\r\nContent-Length:  2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
                + "keep-alive: 5\r\nx-end:\tcase kept \r\nTrailer: x\r\nSet-Cookie: a=b\r\n\r\nok"
        )
        let action = Self.relay(head)
        let (text, chunked) = try Self.written(action)
        #expect(text == "HTTP/1.1 200 OK\r\nContent-Length:  2\r\nx-end:\tcase kept \r\nSet-Cookie: a=b\r\n\r\n")
        #expect(!chunked)
        let relayed = try Self.relayed(action)
        #expect(!relayed.switchesProtocols)
        #expect(relayed.upstreamReusable)
        #expect(!relayed.closesClient)
    }

    @Test func theStatusLineCarriesTollgatesVersionAndAlwaysItsSpace() throws {
        let old = try Self.parsed("HTTP/1.0 404 Not Here\r\nContent-Length: 0\r\n\r\n")
        #expect(try Self.written(Self.relay(old)).text.hasPrefix("HTTP/1.1 404 Not Here\r\n"))
        let bare = try Self.parsed("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
        #expect(try Self.written(Self.relay(bare)).text.hasPrefix("HTTP/1.1 200 \r\n"))
    }

    @Test func aClientConnectionThatClosesGetsConnectionClose() throws {
        let head = try Self.parsed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        let closing = Self.relay(head, keepAlive: false)
        #expect(try Self.written(closing).text == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(try Self.relayed(closing).closesClient)
        guard case .http2Head(let overHTTP2) = try Self.relayed(Self.relay(head, keepAlive: false, client: .http2)).part
        else {
            Issue.record("an HTTP/2 client gets a header block")
            return
        }
        #expect(overHTTP2[":status"] == ["200"])
        #expect(overHTTP2["connection"].isEmpty, "HTTP/2 has no Connection field")
        #expect(overHTTP2["content-length"] == ["0"])
    }

    /// RFC 9113 §8.2.2: no connection-specific field in an HTTP/2 answer, and names in lower case.
    @Test func anHTTP2ClientsBlockHasNoConnectionSpecificFieldsAndLowerCaseNames() throws {
        let head = try Self.parsed(
            "HTTP/1.1 201 Created\r\nX-Mixed-Case: v\r\nConnection: X-Private, keep-alive\r\nX-Private: s\r\n"
                + "Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nTrailer: X-T\r\n"
                + "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n0\r\n\r\n"
        )
        guard case .http2Head(let block) = try Self.relayed(Self.relay(head, client: .http2)).part else {
            Issue.record("an HTTP/2 client gets a header block")
            return
        }
        #expect(
            block.map { "\($0.name)=\($0.value)" } == [
                ":status=201", "x-mixed-case=v", "set-cookie=a=1", "set-cookie=b=2",
            ]
        )
    }

    @Test func anHTTP10ClientWhoseConnectionStaysOpenIsToldSo() throws {
        let head = try Self.parsed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        let kept = Self.relay(head, client: .http1_0)
        #expect(try Self.written(kept).text == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n")
        #expect(try !Self.relayed(kept).closesClient)
        let closing = Self.relay(head, keepAlive: false, client: .http1_0)
        #expect(try Self.written(closing).text == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
    }

    @Test func aBodyWithoutLengthGoesChunkedToAnHTTP11ClientAndUntilTheCloseToAnHTTP10One() throws {
        let unstated = try Self.parsed("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n")
        let toHTTP11 = try Self.written(Self.relay(unstated))
        #expect(toHTTP11.text == "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(toHTTP11.chunked)
        let toHTTP10 = Self.relay(unstated, client: .http1_0)
        #expect(try Self.written(toHTTP10) == ("HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n", false))
        #expect(try Self.relayed(toHTTP10).closesClient)

        let chunked = try Self.parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(
            try Self.written(Self.relay(chunked)) == ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true)
        )
        // An HTTP/1.0 client cannot read chunks: the body goes as it is, ended by the close.
        let dechunked = Self.relay(chunked, client: .http1_0)
        #expect(try Self.written(dechunked) == ("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false))
        #expect(try Self.relayed(dechunked).closesClient)
    }

    @Test func answersWithoutABodyAreNeverChunked() throws {
        let toHead = try Self.parsed("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", method: .HEAD)
        #expect(try Self.written(Self.relay(toHead, isHead: true)) == ("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", false))
        for status in ["204 No Content", "304 Not Modified"] {
            let head = try Self.parsed("HTTP/1.1 \(status)\r\n\r\n")
            #expect(try Self.written(Self.relay(head)) == ("HTTP/1.1 \(status)\r\n\r\n", false))
        }
    }

    @Test func anUpstreamThatClosesAfterItsAnswerIsNotReused() throws {
        for text in ["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\n"] {
            #expect(try !Self.relayed(Self.relay(Self.parsed(text))).upstreamReusable, "\(text)")
        }
        let asked = try Self.relayed(
            Self.relay(Self.parsed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), upgrade: ["websocket"])
        )
        #expect(!asked.upstreamReusable, "an upgrade asked for and not made leaves the upstream's parser in doubt")
    }

    @Test func aSwitchToTheProtocolAskedForIsRelayed() throws {
        let head = try Self.parsed(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"
        )
        let action = Self.relay(head, upgrade: ["websocket"], keepAlive: false)
        #expect(try Self.relayed(action).switchesProtocols)
        #expect(try !Self.relayed(action).closesClient)
        #expect(
            try Self.written(action)
                == (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nSec-WebSocket-Accept: x\r\n"
                        + "Connection: upgrade\r\n\r\n", false
                )
        )
    }

    @Test func aSwitchNobodyAskedForOrToAnotherProtocolIsRefused() throws {
        let h2c = try Self.parsed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
        #expect(Self.relay(h2c) == .refuse(reason: "unrequested_upgrade"))
        #expect(Self.relay(h2c, upgrade: ["websocket"]) == .refuse(reason: "unrequested_upgrade"))
        let two = try Self.parsed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\n\r\n")
        #expect(Self.relay(two, upgrade: ["websocket"]) == .refuse(reason: "unrequested_upgrade"))
    }

    @Test func anH2cStreamsHeadIsCheckedHere() throws {
        #expect(
            Self.relay(Self.fromStream(.ok, [("X-A", "a\r\nX-B: b")])) == .refuse(reason: "invalid_response_header")
        )
        let twoLengths = Self.fromStream(.ok, [("Content-Length", "2"), ("Content-Length", "3")])
        #expect(Self.relay(twoLengths) == .refuse(reason: "repeated_content_length"))
        // A clean one is relayed, written out like a parsed one.
        let clean = Self.fromStream(.ok, [("Content-Length", "2"), ("Connection", "close"), ("X-A", "1")])
        #expect(
            try Self.written(Self.relay(clean)) == ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n", false)
        )
    }

    @Test func aContinueIsSkipped() throws {
        #expect(Self.relay(Self.fromStream(.continue)) == .skip)
    }
}
