import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// HTTP/1.1 framing as an attacker sends it, through the real listener to an upstream that
/// records every byte it receives: the client's answer, and that nothing unauthorised reached the
/// upstream as a request.
@Suite("HTTP/1.1 framing", .serialized)
struct FramingTests {
    /// Writes `text` (CRLF line ends as written) and reads until the proxy closes.
    static func exchange(_ environment: ProxyEnvironment, _ text: String) async throws -> String {
        let raw = try await RawHTTPClient.exchange(port: environment.proxy.port, bytes: Array(text.utf8))
        return String(decoding: raw, as: UTF8.self)
    }

    /// The status of every response in `text` (a body need not end with a line break).
    static func statuses(in text: String) -> [Int] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().compactMap { rest in
            let code = rest.prefix(4)
            guard code.count == 4, code.last == " " else { return nil }
            return Int(code.prefix(3))
        }
    }

    /// An upstream that accepts every upgrade it is asked for, h2c included, as a careless one would.
    static let acceptsAnyUpgrade: TestHTTPServer.Handler = { request in
        if let upgrade = request.header("upgrade") {
            return TestHTTPServer.Response(status: 101, headers: [("Connection", "Upgrade"), ("Upgrade", upgrade)])
        }
        return await ProxyEnvironment.echo(request)
    }

    /// An upstream that answers 101 to anything, even a request that asked for no upgrade.
    static let alwaysSwitches: TestHTTPServer.Handler = { _ in
        TestHTTPServer.Response(status: 101, headers: [("Connection", "Upgrade"), ("Upgrade", "h2c")])
    }

    @Test func anH2CUpgradeIsNeverForwardedSoNoTunnelOpens() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.acceptsAnyUpgrade) { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                    + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                    + "GET /admin/users HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200, 401], "\(text.prefix(400))")
            let upstream = environment.upstream.rawReceived
            #expect(!upstream.lowercased().contains("upgrade: h2c"))
            #expect(!upstream.lowercased().contains("http2-settings"))
            #expect(!upstream.contains("/admin"))
        }
    }

    @Test func aSwitchNobodyAskedForIsA502AndTheConnectionCloses() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.alwaysSwitches) { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                    + "GET /admin/users HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [502], "\(text.prefix(400))")
            #expect(!environment.upstream.rawReceived.contains("/admin"))
        }
    }

    @Test func aWebSocketSwitchToAnotherProtocolIsA502() async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.alwaysSwitches) { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                    + "GET /admin/users HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [502], "\(text.prefix(400))")
            #expect(!environment.upstream.rawReceived.contains("/admin"))
        }
    }

    @Test func anUpgradeTheRouteDoesNotAllowIsNotForwarded() async throws {
        // The default: WebSocket only.
        try await ProxyEnvironment.with(upstreamHandler: Self.acceptsAnyUpgrade) { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: raw-tcp\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200, 200], "\(text.prefix(400))")
            #expect(!environment.upstream.rawReceived.lowercased().contains("upgrade: raw-tcp"))
        }
    }

    @Test func anUpgradeTheUpstreamIgnoresLeavesAnHTTPConnection() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                    + "GET /healthz?second HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200, 200], "\(text.prefix(400))")
            #expect(environment.upstream.requests.map(\.uri) == ["/healthz", "/healthz?second"])
        }
    }

    @Test func aRefusedUpgradeRequestLeavesAnHTTPConnection() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [401, 200], "\(text.prefix(400))")
            #expect(environment.upstream.requests.map(\.uri) == ["/healthz"])
        }
    }

    @Test func forgedClaimHeadersInRequestTrailersNeverReachTheUpstream() async throws {
        try await ProxyEnvironment.with { environment in
            let token = TestIssuer.shared.token()
            let text = try await Self.exchange(
                environment,
                "POST /orders/1 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer \(token)\r\n"
                    + "Transfer-Encoding: chunked\r\nTrailer: X-Auth-Subject\r\nConnection: close\r\n\r\n"
                    + "5\r\nhello\r\n0\r\nX-Auth-Subject: forged\r\nx_auth_scope: admin\r\nX-Note: kept-out\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200], "\(text.prefix(400))")
            let upstream = environment.upstream.rawReceived
            #expect(upstream.contains("hello"))
            #expect(!upstream.contains("forged"))
            #expect(!upstream.contains("x_auth_scope"))
            #expect(!upstream.contains("kept-out"))
            #expect(environment.upstream.requests.first?.header("x-auth-subject") == "user-42")
        }
    }

    @Test func trailersOfATrailersRequestGoOnWithoutSpoofableNames() throws {
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
        let trailers = runtime.snapshot.upstreamTrailers(
            from: HTTPHeaders([
                ("grpc-status", "0"), ("X-Auth-Subject", "forged"), ("x_auth_scope", "admin"), ("Host", "evil"),
                ("Content-Length", "9"), ("Authorization", "Bearer x"),
            ])
        )
        #expect(trailers.map { $0.name } == ["grpc-status"])
    }

    @Test(arguments: [
        ("two Host lines", "Host: api.test\r\nHost: evil.example\r\n"),
        ("a blank in Host", "Host: a b.example\r\n"),
        ("a path in Host", "Host: evil.example/admin@x\r\n"),
        ("userinfo in Host", "Host: user@evil.example\r\n"),
        ("no Host", ""),
    ])
    func badHostIsA400AndNothingReachesTheUpstream(_ label: String, _ host: String) async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(environment, "GET /healthz HTTP/1.1\r\n\(host)Connection: close\r\n\r\n")
            #expect(Self.statuses(in: text) == [400], "\(label): \(text.prefix(300))")
            #expect(environment.upstream.rawReceived.isEmpty, "\(label)")
        }
    }

    @Test func http10WithTransferEncodingIsAnsweredThenClosed() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "POST /healthz HTTP/1.0\r\nHost: api.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "0\r\n\r\nGET /healthz?smuggled HTTP/1.1\r\nHost: api.test\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [400], "\(text.prefix(300))")
            #expect(!environment.upstream.rawReceived.contains("smuggled"))
        }
    }

    @Test func absoluteFormIsAcceptedAndItsNormalisedPathForwarded() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "GET http://API.example/orders/../healthz?x=1 HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200], "\(text.prefix(300))")
            let request = try #require(environment.upstream.requests.first)
            #expect(request.uri == "/healthz?x=1")
            #expect(request.header("host") == "API.example")
            #expect(request.headers.filter { $0.0.lowercased() == "host" }.count == 1)
        }
    }

    @Test func absoluteFormStillNeedsTheRoutesToken() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "GET http://api.example/admin/users HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [401])
            #expect(environment.upstream.rawReceived.isEmpty)
        }
    }

    @Test func aChunkFramingErrorAfterTheHeadIsA400() async throws {
        try await ProxyEnvironment.with { environment in
            let token = TestIssuer.shared.token()
            let text = try await Self.exchange(
                environment,
                "POST /orders/1 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer \(token)\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [400], "\(text.prefix(300))")
        }
    }

    @Test func methodOverrideAndURLRewriteHeadersAreRemoved() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nX-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: PUT\r\n"
                    + "X-Method-Override: PATCH\r\nX-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200])
            let upstream = environment.upstream.rawReceived.lowercased()
            for name in [
                "x-http-method-override", "x-http-method", "x-method-override", "x-original-url", "x-rewrite-url",
            ] {
                #expect(!upstream.contains(name + ":"), "\(name)")
            }
        }
    }

    @Test func aRouteMayAllowTheOverrideHeaders() throws {
        let yaml = """
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            upstream: http://127.0.0.1:1
            routes:
              - match: { prefix: /legacy }
                auth: none
                allow_override_headers: true
                upgrades: [websocket, "tls/1.2"]
            """
        let configuration = try ConfigurationLoader.parse(yaml: yaml, file: "t.yaml", baseDirectory: "/tmp")
        let route = try #require(configuration.routes.routes.first)
        #expect(route.allowsOverrideHeaders)
        #expect(route.upgrades == ["websocket", "tls/1.2"])
        let refused = yaml.replacingOccurrences(of: "\"tls/1.2\"", with: "h2c")
        #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader.parse(yaml: refused, file: "t.yaml", baseDirectory: "/tmp")
        }
    }

    @Test func aConnectionIsCountedFromItsAcceptHTTP2Included() async throws {
        let extra = """
            server:
              access_log: false
              h2c: true
            """
        try await ProxyEnvironment.with(extra: extra, replaceServer: true) { environment in
            func gauge() async throws -> Int? {
                let response = try await environment.client.get(
                    url: "http://127.0.0.1:\(environment.proxy.adminPort)/metrics"
                ).get()
                let text = String(buffer: response.body ?? .init())
                let line = text.split(separator: "\n").first { $0.hasPrefix("tollgate_active_connections ") }
                return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }
            }
            let silent = try await RawConnection.connect(port: environment.proxy.port)
            let http2 = try await RawConnection.connect(port: environment.proxy.port)
            try await http2.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
            var count: Int?
            for _ in 0..<100 {
                count = try await gauge()
                if count == 2 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(count == 2)
            await silent.close()
            await http2.close()
            for _ in 0..<100 {
                count = try await gauge()
                if count == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(count == 0)
        }
    }

    @Test func underscoreSpellingsOfOverrideAndForwardingHeadersAreRemovedToo() async throws {
        try await ProxyEnvironment.with(trustedProxies: []) { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\nX_HTTP_Method_Override: DELETE\r\nX_Original_URL: /admin\r\n"
                    + "X_Forwarded_For: 10.9.9.9\r\nX-Forwarded-Prefix: /admin\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200])
            let upstream = environment.upstream.rawReceived
            #expect(!upstream.contains("DELETE"))
            #expect(!upstream.contains("/admin"))
            #expect(!upstream.contains("10.9.9.9"))
        }
    }

    @Test func connectIsRefusedAndClosed() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\nGET /healthz?tunnelled HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [400], "\(text.prefix(300))")
            #expect(environment.upstream.rawReceived.isEmpty)
        }
    }

    @Test(arguments: [
        ("Proxy-Connection", "Proxy-Connection: Upgrade\r\nUpgrade: websocket\r\n"),
        ("an empty Upgrade", "Connection: Upgrade\r\nUpgrade: \r\n"),
        ("HTTP/1.0", ""),
    ])
    func upgradeSpellingsTheDecoderStopsOnStillLeaveAnHTTPConnection(_ label: String, _ headers: String) async throws {
        try await ProxyEnvironment.with(upstreamHandler: Self.acceptsAnyUpgrade) { environment in
            let first =
                label == "HTTP/1.0"
                ? "GET /healthz HTTP/1.0\r\nHost: api.test\r\nConnection: Upgrade, keep-alive\r\nUpgrade: websocket\r\n\r\n"
                : "GET /healthz HTTP/1.1\r\nHost: api.test\r\n\(headers)\r\n"
            let text = try await Self.exchange(
                environment,
                first + "GET /healthz?second HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200, 200], "\(label): \(text.prefix(400))")
            #expect(!environment.upstream.rawReceived.lowercased().contains("upgrade: websocket"), "\(label)")
        }
    }

    @Test func badBytesAfterACompleteRequestLetItsAnswerFinish() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.1\r\nHost: api.test\r\n\r\nGET /x HTTP/1.1\r\nBad Header\u{1}: x\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200], "\(text.prefix(300))")
            #expect(environment.upstream.requests.map(\.uri) == ["/healthz"])
        }
    }

    @Test func answersToHEADCarryNoBodySoTheNextResponseIsIntact() async throws {
        try await ProxyEnvironment.with { environment in
            let text = try await Self.exchange(
                environment,
                "HEAD /orders/1 HTTP/1.1\r\nHost: api.test\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: api.test\r\n\r\n"
                    + "GET /healthz HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [403, 200, 200], "\(text.prefix(600))")
            let heads = text.components(separatedBy: "HTTP/1.1 ")
            #expect(heads.count == 4)
            // The 403 to HEAD announces its length but sends no body.
            #expect(heads[1].hasSuffix("\r\n\r\n"), "\(heads[1])")
            #expect(heads[2].hasSuffix("\r\n\r\n"), "\(heads[2])")
        }
    }

    /// An HTTP/1.0 client keeps its connection only when the answer says `keep-alive` (RFC 9112
    /// §C.2.2): proxied and local answers both say it while the connection stays open.
    @Test func anHTTP10ClientThatAsksForKeepAliveIsToldItsConnectionStaysOpen() async throws {
        try await ProxyEnvironment.with { environment in
            let keepAlive = "Host: api.test\r\nConnection: keep-alive\r\n\r\n"
            let text = try await Self.exchange(
                environment,
                "GET /healthz HTTP/1.0\r\n" + keepAlive + "GET /admin/users HTTP/1.0\r\n" + keepAlive
                    + "GET /healthz?last HTTP/1.0\r\nHost: api.test\r\n\r\n"
            )
            #expect(Self.statuses(in: text) == [200, 401, 200], "\(text.prefix(600))")
            let heads = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map {
                $0.components(separatedBy: "\r\n\r\n")[0]
            }
            #expect(heads.count == 3)
            #expect(heads.prefix(2).allSatisfy { $0.contains("\r\nConnection: keep-alive") }, "\(heads)")
            #expect(heads.last?.contains("\r\nConnection: close") == true, "\(heads)")
            #expect(environment.upstream.requests.map(\.uri) == ["/healthz", "/healthz?last"])
        }
    }
}
