import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import TollgateProxy

/// The upstream connection's handler and its codec in an `EmbeddedChannel`: the bytes it writes
/// for each request and the parts it hands its delegate from the answers.
@Suite struct UpstreamCodecTests {
    /// The delegate's side: every part, malformed answer and close, in order.
    final class Recorder: UpstreamDelegate {
        var parts: [UpstreamResponsePart] = []
        var malformed: [HTTP1ParseError] = []
        var closed = false

        func upstreamReceived(_ part: UpstreamResponsePart) { parts.append(part) }
        func upstreamReadComplete() {}
        func upstreamWritabilityChanged(isWritable: Bool) {}
        func upstreamClosed() { closed = true }
        func upstreamMalformed(_ error: HTTP1ParseError) { malformed.append(error) }

        /// The parts received, as short text.
        var summary: [String] {
            parts.map { part in
                switch part {
                case .head(let head): "head \(head.status.code)"
                case .body(let body): "body \(String(buffer: body))"
                case .end: "end"
                }
            }
        }
    }

    static func channel(_ recorder: Recorder? = nil) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let handler = UpstreamHandler()
        handler.delegate = recorder
        try channel.pipeline.syncOperations.addHandler(handler, name: "upstream")
        return channel
    }

    /// Everything written so far, as text.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { continue }
            text += String(buffer: buffer)
        }
        return text
    }

    static func head(_ method: HTTPMethod, _ headers: [(String, String)] = []) -> UpstreamRequestPart {
        .head(
            UpstreamRequestHead(
                HTTPRequestHead(version: .http1_1, method: method, uri: "/p?q=1", headers: HTTPHeaders(headers))
            )
        )
    }

    static func body(_ text: String) -> UpstreamRequestPart {
        .body(.byteBuffer(ByteBuffer(string: text)))
    }

    @Test func aRequestWithoutBodyIsItsHeadInOneWrite() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(Self.head(.GET, [("Host", "api.test"), ("X-A", "b")]))
        try channel.writeOutbound(UpstreamRequestPart.end(nil))
        var writes: [String] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { writes.append(String(buffer: buffer)) }
        }
        #expect(writes == ["GET /p?q=1 HTTP/1.1\r\nHost: api.test\r\nX-A: b\r\n\r\n"])
    }

    @Test func aBodyWithContentLengthGoesOutAsItIs() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(Self.head(.POST, [("Content-Length", "5")]))
        try channel.writeOutbound(Self.body("hel"))
        try channel.writeOutbound(Self.body("lo"))
        try channel.writeOutbound(UpstreamRequestPart.end(nil))
        #expect(try Self.written(channel) == "POST /p?q=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    }

    @Test func aChunkedBodyIsChunkedWithItsTrailers() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(Self.head(.POST, [("Transfer-Encoding", "chunked")]))
        try channel.writeOutbound(Self.body("0123456789abcdefg"))
        try channel.writeOutbound(Self.body(""))
        try channel.writeOutbound(UpstreamRequestPart.end(HTTPHeaders([("grpc-timeout", "1S")])))
        #expect(
            try Self.written(channel)
                == "POST /p?q=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n0123456789abcdefg\r\n0\r\ngrpc-timeout: 1S\r\n\r\n"
        )
    }

    @Test func aPOSTStatingNoFramingIsSentChunked() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(Self.head(.POST))
        try channel.writeOutbound(Self.body("abc"))
        try channel.writeOutbound(UpstreamRequestPart.end(nil))
        #expect(
            try Self.written(channel)
                == "POST /p?q=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
    }

    /// NIO's encoder drops a TRACE's Content-Length and writes its body raw: a request smuggled
    /// behind it. Here the framing stays.
    @Test func aTRACEKeepsItsContentLength() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(Self.head(.TRACE, [("Content-Length", "3")]))
        try channel.writeOutbound(Self.body("abc"))
        try channel.writeOutbound(UpstreamRequestPart.end(nil))
        #expect(try Self.written(channel) == "TRACE /p?q=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    }

    @Test func bodyBytesAfterAHeadStatingNoBodyCloseTheConnectionUnwritten() throws {
        let channel = try Self.channel()
        try channel.writeOutbound(Self.head(.GET))
        _ = try Self.written(channel)
        #expect(throws: (any Error).self) { try channel.writeOutbound(Self.body("GET /smuggled HTTP/1.1\r\n\r\n")) }
        #expect(try Self.written(channel) == "")
        #expect(!channel.isActive)
    }

    @Test func answersAreReadAsTheirRequestsFrameThem() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        try channel.writeOutbound(Self.head(.HEAD))
        try channel.writeOutbound(Self.head(.GET))
        try channel.writeInbound(
            ByteBuffer(
                string: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            )
        )
        #expect(recorder.summary == ["head 200", "end", "head 200", "body ok", "end"])
    }

    @Test func anAnswerRunningUntilTheCloseEndsWithIt() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        try channel.writeOutbound(Self.head(.GET))
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\npart"))
        channel.pipeline.fireChannelInactive()
        #expect(recorder.summary == ["head 200", "body part", "end"])
        #expect(recorder.closed, "the close is told after the end it delimited")
    }

    @Test func aMalformedAnswerIsReportedClosesAndNothingAfterItIsRead() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        try channel.writeOutbound(Self.head(.GET))
        try channel.writeInbound(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok")
        )
        #expect(recorder.malformed.count == 1)
        #expect(!channel.isActive)
        try? channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        #expect(recorder.parts.isEmpty)
    }

    @Test func theDelegateIsToldOfTheCloseOnce() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        try channel.writeOutbound(Self.head(.GET))
        try channel.close().wait()
        #expect(recorder.closed)
        #expect(recorder.parts.isEmpty, "no answer had started")
    }

    @Test func bytesAfterA101GoOnRawWhenTheHandlerIsRemoved() throws {
        let recorder = Recorder()
        let channel = try Self.channel(recorder)
        try channel.writeOutbound(Self.head(.GET, [("Connection", "upgrade"), ("Upgrade", "websocket")]))
        try channel.writeInbound(
            ByteBuffer(
                string:
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\u{1}frame"
            )
        )
        #expect(recorder.summary == ["head 101", "end"])
        let context = try channel.pipeline.syncOperations.context(name: "upstream")
        channel.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        channel.embeddedEventLoop.run()
        let raw = try channel.readInbound(as: ByteBuffer.self)
        #expect(raw.map { Array($0.readableBytesView) } == [0x01] + Array("frame".utf8))
    }
}
