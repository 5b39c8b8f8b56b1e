import AsyncHTTPClient
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing
import TollgateCore

@testable import TollgateProxy

/// The client-side handler in an `EmbeddedChannel`, performing the state machine's actions:
/// pipelined requests answered in order, nothing processed after a closing answer, an idle
/// connection closed when the server drains. Requests here are answered by the proxy itself
/// (401 without a token), so no upstream is involved.
@Suite struct ProxyHandlerChannelTests {
    static func withChannel(_ body: (EmbeddedChannel) throws -> Void) throws {
        let configuration = try ConfigurationLoader.parse(
            yaml: ProxyEnvironment.yaml(upstreamPort: 1, jwksPort: 1, introspectionPort: 1),
            file: "test.yaml",
            baseDirectory: "/tmp",
            environment: ["TOLLGATE_TEST_INTROSPECTION_SECRET": "s"]
        )
        let runtime = try ProxyRuntime(
            configuration: configuration,
            group: .singletonMultiThreadedEventLoopGroup,
            client: HTTPClient.shared
        )
        defer { runtime.shutdown() }
        let channel = EmbeddedChannel()
        try ProxyServer.configureHTTP1(channel, runtime: runtime, scheme: "http")
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        defer { _ = try? channel.finish() }
        try body(channel)
    }

    static func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        return text
    }

    /// The status line of each answer (an answer's body runs straight into the next one).
    static func statusLines(_ text: String) -> [String] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().map {
            "HTTP/1.1 " + ($0.components(separatedBy: "\r\n").first ?? "")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndNothingAfterAClosingAnswerIsProcessed() throws {
        try Self.withChannel { channel in
            try channel.writeInbound(
                ByteBuffer(
                    string: "GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nX-Request-Id: first\r\n\r\n"
                        + "GET /orders/2 HTTP/1.1\r\nHost: api.test\r\nX-Request-Id: second\r\nConnection: close\r\n\r\n"
                        + "GET /orders/3 HTTP/1.1\r\nHost: api.test\r\nX-Request-Id: third\r\n\r\n"
                )
            )
            channel.embeddedEventLoop.run()
            let text = try Self.written(channel)
            #expect(Self.statusLines(text) == ["HTTP/1.1 401 Unauthorized", "HTTP/1.1 401 Unauthorized"])
            let first = try #require(text.range(of: "X-Request-Id: first"))
            let second = try #require(text.range(of: "X-Request-Id: second"))
            #expect(first.lowerBound < second.lowerBound)
            #expect(!text.contains("third"))
            #expect(text.lowercased().contains("connection: close"))
            #expect(!channel.isActive)
        }
    }

    @Test func aRequestSplitAcrossReadsIsAnsweredOnceWhole() throws {
        try Self.withChannel { channel in
            for piece in ["GET /orders/1 HT", "TP/1.1\r\nHost: api", ".test\r\n", "\r\n"] {
                #expect(Self.statusLines(try Self.written(channel)).isEmpty)
                try channel.writeInbound(ByteBuffer(string: piece))
            }
            #expect(Self.statusLines(try Self.written(channel)) == ["HTTP/1.1 401 Unauthorized"])
            #expect(channel.isActive, "keep-alive")
        }
    }

    @Test func aConnectionClosesWhenTheServerDrainsOnceItWaitsForARequest() throws {
        try Self.withChannel { channel in
            try channel.writeInbound(ByteBuffer(string: "GET /orders/1 HTTP/1.1\r\nHost: api.test\r\n\r\n"))
            #expect(Self.statusLines(try Self.written(channel)) == ["HTTP/1.1 401 Unauthorized"])
            #expect(channel.isActive)
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            channel.embeddedEventLoop.run()
            #expect(!channel.isActive)
        }
    }

    /// A refusal of a request whose body has not arrived closes rather than reading it.
    @Test func aRefusedRequestWithABodyStillComingIsAnsweredAndClosed() throws {
        try Self.withChannel { channel in
            try channel.writeInbound(
                ByteBuffer(string: "POST /orders/1 HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\n\r\nab")
            )
            channel.embeddedEventLoop.run()
            let text = try Self.written(channel)
            #expect(Self.statusLines(text) == ["HTTP/1.1 401 Unauthorized"])
            #expect(text.lowercased().contains("connection: close"))
            #expect(!channel.isActive)
        }
    }

    @Test func bytesTheParserRefusesAreAnswered400AndTheConnectionCloses() throws {
        try Self.withChannel { channel in
            try? channel.writeInbound(ByteBuffer(string: "GET /orders/1 HTTP/1.1\r\nHost: api.test\nX: y\r\n\r\n"))
            channel.embeddedEventLoop.run()
            let text = try Self.written(channel)
            #expect(Self.statusLines(text) == ["HTTP/1.1 400 Bad Request"])
            #expect(!channel.isActive)
        }
    }
}
