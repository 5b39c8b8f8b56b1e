import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

@Suite("HTTP/2", .serialized)
struct HTTP2Tests {
    /// One request over HTTP/2 with prior knowledge (no TLS, no upgrade), with NIOHTTP2's client.
    static func h2cRequest(
        port: Int,
        path: String,
        method: HTTPMethod = .GET,
        headers: [(String, String)],
        body: String? = nil
    ) async throws -> (Int, HTTPHeaders, String) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        // A stream that never ends fails the request (its collector sees the close) instead of
        // hanging the test; generous, since the test process's tasks can wait seconds for a thread
        // while many suites start at once.
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(60)) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        let multiplexer = try await channel.configureHTTP2Pipeline(mode: .client, inboundStreamInitializer: nil).get()
        let promise = channel.eventLoop.makePromise(of: (Int, HTTPHeaders, String).self)
        // Completed on every way out (a stream that could not be opened included); a promise
        // already completed ignores this.
        defer { promise.fail(RawHTTPClient.Failure(description: "the request did not complete")) }
        let streamPromise = channel.eventLoop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: streamPromise) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                try stream.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
            }
        }
        let stream = try await streamPromise.futureResult.get()
        var requestHeaders = HTTPHeaders(headers)
        requestHeaders.add(name: "host", value: "api.test")
        try await stream.writeAndFlush(
            HTTPClientRequestPart.head(
                HTTPRequestHead(version: .http2, method: method, uri: path, headers: requestHeaders)
            )
        )
        if let body {
            try await stream.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))))
        }
        try await stream.writeAndFlush(HTTPClientRequestPart.end(nil))
        return try await promise.futureResult.get()
    }

    final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<(Int, HTTPHeaders, String)>
        var status = 0
        var headers = HTTPHeaders()
        var body = ""

        init(promise: EventLoopPromise<(Int, HTTPHeaders, String)>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
                headers = head.headers
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                promise.succeed((status, headers, body))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(RawHTTPClient.Failure(description: "stream closed before the response ended"))
        }
    }

    /// A stream's answer as raw frames: `:status=CODE`, then the body, when the stream ends.
    final class FrameCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTP2Frame.FramePayload
        let promise: EventLoopPromise<String>
        var text = ""

        init(promise: EventLoopPromise<String>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                if let status = headers.headers.first(name: ":status") { text += ":status=\(status)" }
                if headers.endStream { promise.succeed(text) }
            case .data(let data):
                if case .byteBuffer(let buffer) = data.data { text += String(buffer: buffer) }
                if data.endStream { promise.succeed(text) }
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(RawHTTPClient.Failure(description: "stream closed before the response ended"))
        }
    }

    @Test("h2c by prior knowledge: allowed with claim headers, refused with the RFC 6750 answer")
    func h2cPriorKnowledge() async throws {
        try await ProxyEnvironment.with { environment in
            let token = TestIssuer.shared.token()
            let (status, _, body) = try await Self.h2cRequest(
                port: environment.proxy.port,
                path: "/orders/5",
                headers: [("authorization", "Bearer \(token)"), ("x-auth-subject", "spoofed")]
            )
            #expect(status == 200)
            #expect(body.contains("GET /orders/5"))
            let seen = try #require(environment.upstream.requests.first)
            #expect(seen.header("X-Auth-Subject") == "user-42")
            #expect(seen.header("Host") == "api.test")
            let (refused, headers, _) = try await Self.h2cRequest(
                port: environment.proxy.port,
                path: "/orders/5",
                headers: []
            )
            #expect(refused == 401)
            #expect(headers.first(name: "www-authenticate") == #"Bearer realm="orders""#)
        }
    }

    /// Streams of one HTTP/2 connection take the pooled upstream connections of its event loop:
    /// sequential streams reuse one, where each used to close the connection it had (the end
    /// written to the stream closed the stream, whose teardown found the exchange still
    /// forwarding).
    /// An answer to HEAD has no body, but its stream still ends (END_STREAM), or the client
    /// waits for it forever.
    @Test("a HEAD request over HTTP/2 gets its answer's head and the end of the stream")
    func headOverHTTP2EndsTheStream() async throws {
        try await ProxyEnvironment.with(extra: "server:\n  access_log: false\n  h2c: true", replaceServer: true) {
            environment in
            let (status, _, body) = try await Self.h2cRequest(
                port: environment.proxy.port,
                path: "/healthz",
                method: .HEAD,
                headers: []
            )
            #expect(status == 200)
            #expect(body.isEmpty)
        }
    }

    /// A stream has no timer of its own: its loop's `StreamTimeouts` checks it while its request
    /// is with the upstream.
    @Test("an upstream that does not answer a stream within response_timeout: 504 on that stream")
    func streamUpstreamTimeoutIs504() async throws {
        try await ProxyEnvironment.with(
            extra: "server:\n  access_log: false\n  h2c: true",
            upstreamHandler: { _ in
                // Answers 200, long after the timeout: a 504 can only be the timeout's.
                try? await Task.sleep(for: .seconds(6))
                return .json("{}")
            },
            replaceServer: true
        ) { environment in
            try await environment.setUpstreamResponseTimeout(0.3)
            let started = ContinuousClock.now
            let (status, _, body) = try await Self.h2cRequest(
                port: environment.proxy.port,
                path: "/healthz",
                headers: []
            )
            #expect(status == 504)
            #expect(body.contains("upstream_timeout"))
            // Well before the upstream's answer, with room for a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(5))
            // The loop's check stops once nothing is watched; a later stream is watched again.
            let (second, _, _) = try await Self.h2cRequest(port: environment.proxy.port, path: "/healthz", headers: [])
            #expect(second == 504)
        }
    }

    @Test("HTTP/2 streams reuse pooled upstream connections instead of one per stream")
    func streamsReusePooledUpstreamConnections() async throws {
        let upstream = try await RawUpstream.start { _ in "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" }
        defer { Task { try? await upstream.shutdown() } }
        try await ProxyEnvironment.with(upstreamPort: upstream.port) { environment in
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: environment.proxy.port).get()
            defer { channel.close(promise: nil) }
            let multiplexer = try await channel.configureHTTP2Pipeline(mode: .client, inboundStreamInitializer: nil)
                .get()
            for _ in 0..<6 {
                // As h2load, curl and browsers send a GET: HEADERS with END_STREAM.
                let promise = channel.eventLoop.makePromise(of: String.self)
                defer { promise.fail(RawHTTPClient.Failure(description: "the stream did not complete")) }
                let streamPromise = channel.eventLoop.makePromise(of: (any Channel).self)
                multiplexer.createStreamChannel(promise: streamPromise) { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(FrameCollector(promise: promise))
                    }
                }
                let stream = try await streamPromise.futureResult.get()
                let headers: HPACKHeaders = [
                    ":method": "GET", ":path": "/healthz", ":scheme": "http", ":authority": "api.test",
                ]
                try await stream.writeAndFlush(
                    HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true))
                )
                let answer = try await promise.futureResult.get()
                #expect(answer.hasPrefix(":status=200") && answer.hasSuffix("ok"), "\(answer)")
            }
            #expect(upstream.connections == 1, "one upstream connection per stream")
        }
    }

    /// A throwaway self-signed certificate for localhost, made with openssl.
    static func makeCertificate(in directory: URL) throws -> (certificate: String, key: String) {
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let openssl = try ExternalProcess(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                "-subj", "/CN=localhost", "-keyout", key, "-out", certificate,
            ]
        )
        openssl.process.waitUntilExit()
        #expect(openssl.process.terminationStatus == 0, "\(openssl.log)")
        return (certificate, key)
    }

    @Test("TLS with ALPN: a client offering h2 gets HTTP/2, one offering only http/1.1 gets HTTP/1.1")
    func tlsALPN() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (certificate, key) = try Self.makeCertificate(in: directory)
        let extra = """
            server:
              access_log: false
              tls:
                certificate_file: \(certificate)
                key_file: \(key)
            """
        // The environment's own `server:` block is replaced by this one.
        try await ProxyEnvironment.with(extra: extra, replaceServer: true) { environment in
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            for (version, expected) in [(HTTPClient.Configuration.HTTPVersion.automatic, "2"), (.http1Only, "1.1")] {
                var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
                configuration.httpVersion = version
                let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
                var request = HTTPClientRequest(url: "https://localhost:\(environment.proxy.port)/orders/8")
                request.headers.add(name: "Authorization", value: "Bearer \(TestIssuer.shared.token())")
                let response = try await client.execute(request, timeout: .seconds(10))
                let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                try await client.shutdown()
                #expect(response.status.code == 200)
                #expect(
                    "\(response.version.major)\(response.version.major == 1 ? ".\(response.version.minor)" : "")"
                        == expected
                )
                #expect(body.contains("X-Forwarded-Proto: https"))
            }
        }
    }
}
