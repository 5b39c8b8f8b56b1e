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
/// records every byte it receives: the cases that need a verified token or real sockets. The
/// framing cases that do not run in process, in `ExchangeTests`.
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
        let trailers = RequestPipeline.upstreamTrailers(
            from: HTTPHeaders([
                ("grpc-status", "0"), ("X-Auth-Subject", "forged"), ("x_auth_scope", "admin"), ("Host", "evil"),
                ("Content-Length", "9"), ("Authorization", "Bearer x"),
            ]),
            snapshot: runtime.snapshot
        )
        #expect(trailers.map { $0.name } == ["grpc-status"])
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

}
