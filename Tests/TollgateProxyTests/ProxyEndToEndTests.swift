import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// DESIGN.md's failure table, each row through a real listening Tollgate to a real upstream.
@Suite("Proxy end to end", .serialized)
struct ProxyEndToEndTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let path: String
        let headers: @Sendable (TestIssuer) -> [String]
        let status: Int
        /// Expected `WWW-Authenticate`, exactly or by prefix (`…` at the end); `nil`: absent.
        let challenge: String?
        let error: String?
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "no token",
            path: "/orders/1",
            headers: { _ in [] },
            status: 401,
            challenge: #"Bearer realm="orders""#,
            error: "invalid_request"
        ),
        Row(
            name: "malformed token",
            path: "/orders/1",
            headers: { _ in ["Authorization: Bearer eyJhbGciOi.x.y"] },
            status: 401,
            challenge: #"Bearer realm="orders", error="invalid_token"…"#,
            error: "invalid_token"
        ),
        Row(
            name: "bad signature",
            path: "/orders/1",
            headers: { issuer in
                let token = issuer.token()
                return ["Authorization: Bearer " + token.dropLast(4) + "AAAA"]
            },
            status: 401,
            challenge: #"Bearer realm="orders", error="invalid_token"…"#,
            error: "invalid_token"
        ),
        Row(
            name: "expired",
            path: "/orders/1",
            headers: { issuer in
                ["Authorization: Bearer " + issuer.token(["exp": Int(Date().timeIntervalSince1970) - 3600])]
            },
            status: 401,
            challenge: #"Bearer realm="orders", error="invalid_token", error_description="the token has expired""#,
            error: "invalid_token"
        ),
        Row(
            name: "wrong audience",
            path: "/orders/1",
            headers: { issuer in ["Authorization: Bearer " + issuer.token(["aud": "@other/api"])] },
            status: 401,
            challenge: #"Bearer realm="orders", error="invalid_token"…"#,
            error: "invalid_token"
        ),
        Row(
            name: "wrong issuer",
            path: "/orders/1",
            headers: { issuer in ["Authorization: Bearer " + issuer.token(["iss": TestIssuer.issuer + "/"])] },
            status: 401,
            challenge: #"Bearer realm="orders", error="invalid_token"…"#,
            error: "invalid_token"
        ),
        Row(
            name: "inactive opaque token",
            path: "/opaque/x",
            headers: { _ in ["Authorization: Bearer \(ProxyEnvironment.inactiveOpaque)"] },
            status: 401,
            challenge: #"Bearer realm="orders", error="invalid_token"…"#,
            error: "invalid_token"
        ),
        Row(
            name: "scope missing",
            path: "/admin/users",
            headers: { issuer in ["Authorization: Bearer " + issuer.token()] },
            status: 403,
            challenge: #"Bearer realm="orders", error="insufficient_scope", scope="@team/admin""#,
            error: "insufficient_scope"
        ),
        Row(
            name: "no route: default deny",
            path: "/unknown",
            headers: { issuer in ["Authorization: Bearer " + issuer.token()] },
            status: 403,
            challenge: nil,
            error: "forbidden"
        ),
        Row(
            name: "bad path",
            path: "/orders/%2e%2e%2fadmin",
            headers: { issuer in ["Authorization: Bearer " + issuer.token()] },
            status: 400,
            challenge: nil,
            error: "invalid_request"
        ),
        Row(
            name: "two Authorization headers",
            path: "/orders/1",
            headers: { issuer in ["Authorization: Bearer " + issuer.token(), "authorization: Bearer " + issuer.token()]
            },
            status: 400,
            challenge: #"Bearer realm="orders", error="invalid_request"…"#,
            error: "invalid_request"
        ),
        Row(
            name: "request target too long",
            path: "/orders/" + String(repeating: "a", count: 9000),
            headers: { _ in [] },
            status: 414,
            challenge: nil,
            error: "uri_too_long"
        ),
        Row(
            name: "too many headers",
            path: "/orders/1",
            headers: { _ in (0..<120).map { "X-Filler-\($0): x" } },
            status: 431,
            challenge: nil,
            error: "headers_too_large"
        ),
    ]

    @Test("a refused request gets the failure table's answer and never reaches the upstream", arguments: rows)
    func failureTableRow(_ row: Row) async throws {
        try await ProxyEnvironment.with { environment in
            let response = try await environment.send(row.path, headers: row.headers(TestIssuer.shared))
            #expect(response.status == row.status, "\(response.body)")
            let challenge = response.header("WWW-Authenticate")
            if let expected = row.challenge {
                if expected.hasSuffix("…") {
                    #expect(challenge?.hasPrefix(String(expected.dropLast())) == true, "\(challenge ?? "none")")
                } else {
                    #expect(challenge == expected)
                }
            } else {
                #expect(challenge == nil)
            }
            if let error = row.error { #expect(response.body.contains(#""error":"\#(error)""#), "\(response.body)") }
            #expect(response.header("Content-Type") == "application/json")
            #expect(environment.upstream.requestCount == 0)
            // The answer never echoes the token.
            for header in row.headers(TestIssuer.shared) where header.hasPrefix("Authorization") {
                let token = header.split(separator: " ").last.map(String.init) ?? ""
                #expect(!response.body.contains(token))
            }
        }
    }

    @Test("keys unreachable and nothing cached: 503 with Retry-After, never the upstream")
    func keysUnavailableIs503() async throws {
        try await ProxyEnvironment.with(jwksDown: true) { environment in
            let response = try await environment.send(
                "/orders/1",
                headers: ["Authorization: Bearer " + TestIssuer.shared.token()]
            )
            #expect(response.status == 503)
            #expect(response.header("Retry-After") != nil)
            #expect(response.header("WWW-Authenticate") == nil)
            #expect(environment.upstream.requestCount == 0)
        }
    }

    @Test("a valid token reaches the upstream with claim headers; spoofed copies in any spelling do not")
    func claimHeadersAndSpoofing() async throws {
        try await ProxyEnvironment.with(trustedProxies: []) { environment in
            let token = TestIssuer.shared.token()
            let response = try await environment.send(
                "/orders/42?expand=lines",
                headers: [
                    "Authorization: Bearer \(token)",
                    "X-Auth-Subject: admin",
                    "x-auth-subject: admin2",
                    "X_AUTH_SUBJECT: admin3",
                    "x_Auth-Actor: 9999",
                    "X-Auth-Claims: e30",
                    "X-Forwarded-For: 6.6.6.6",
                    "Connection: X-Forwarded-For, X-Auth-Subject",
                    "X-Request-Id: req-1",
                ]
            )
            #expect(response.status == 200, "\(response.body)")
            let seen = try #require(environment.upstream.requests.first)
            #expect(seen.uri == "/orders/42?expand=lines")
            let subjects = seen.headers.filter {
                $0.0.lowercased().replacingOccurrences(of: "_", with: "-") == "x-auth-subject"
            }
            #expect(subjects.map(\.1) == ["user-42"])
            #expect(seen.headers.filter { $0.0.lowercased().contains("actor") }.map(\.1) == ["1234"])
            #expect(seen.header("X-Auth-Scope") == "@team/orders.read openid")
            let payload = try #require(seen.header("X-Auth-Claims"))
            #expect(payload == String(token.split(separator: ".")[1]))
            // An untrusted client's X-Forwarded-For is replaced; its Connection header removed
            // nothing Tollgate sets.
            #expect(seen.header("X-Forwarded-For") == "127.0.0.1")
            #expect(seen.header("X-Forwarded-Proto") == "http")
            #expect(seen.header("X-Forwarded-Host") == "api.test")
            #expect(seen.header("Connection") == nil || seen.header("Connection")?.lowercased() == "keep-alive")
            #expect(seen.header("X-Request-Id") == "req-1")
            #expect(seen.header("traceparent").map(TraceParent.isValid) == true)
            #expect(response.body.contains("GET /orders/42?expand=lines"))
        }
    }

    @Test("a trusted proxy's X-Forwarded-For is appended to, not replaced")
    func trustedForwardedFor() async throws {
        try await ProxyEnvironment.with { environment in
            let response = try await environment.send(
                "/healthz",
                headers: ["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https", "X-Forwarded-Host: shop.test"]
            )
            #expect(response.status == 200)
            let seen = try #require(environment.upstream.requests.first)
            #expect(seen.header("X-Forwarded-For") == "203.0.113.9, 127.0.0.1")
            #expect(seen.header("X-Forwarded-Proto") == "https")
            #expect(seen.header("X-Forwarded-Host") == "shop.test")
        }
    }

    @Test("the upstream sees the normalised path")
    func upstreamSeesNormalisedPath() async throws {
        try await ProxyEnvironment.with { environment in
            let response = try await environment.send(
                "/orders//a/./b/../%7Euser?q=%2F",
                headers: ["Authorization: Bearer " + TestIssuer.shared.token()]
            )
            #expect(response.status == 200)
            #expect(environment.upstream.requests.first?.uri == "/orders/a/~user?q=%2F")
        }
    }

    static let bypassAttempts = [
        "/orders/../admin", "/orders/%2e%2e/admin", "/orders/..%2fadmin", "/admin;/x", "/ADMIN/../admin",
        "//admin", "/admin/./", "/orders/.%2e/admin", "/orders\\..\\admin", "/admin%00", "/%61dmin",
        "/orders/%2E%2E/admin", "/admin#/orders", "/./admin",
    ]

    @Test("no spelling of the path reaches the protected route without its scope", arguments: bypassAttempts)
    func pathBypassCannotReachProtectedRoute(_ path: String) async throws {
        try await ProxyEnvironment.with { environment in
            let response = try await environment.send(
                path,
                headers: ["Authorization: Bearer " + TestIssuer.shared.token()]
            )
            #expect([400, 403].contains(response.status), "\(path) → \(response.status)")
            for request in environment.upstream.requests {
                #expect(!request.uri.lowercased().hasPrefix("/admin"), "\(path) reached \(request.uri)")
            }
        }
    }

    @Test("an opaque token is introspected and forwarded; an outage answers 503, never 200")
    func introspection() async throws {
        try await ProxyEnvironment.with { environment in
            let ok = try await environment.send(
                "/opaque/x",
                headers: ["Authorization: Bearer \(ProxyEnvironment.activeOpaque)"]
            )
            #expect(ok.status == 200)
            #expect(environment.upstream.requests.last?.header("X-Auth-Subject") == "svc-7")
            environment.introspectionFailing.set(true)
            let down = try await environment.send("/opaque/x", headers: ["Authorization: Bearer opaque-never-seen-42"])
            #expect(down.status == 503)
            #expect(down.header("Retry-After") != nil)
            #expect(environment.upstream.requestCount == 1)
        }
    }

    @Test("a JWKS outage while serving: loaded keys keep verifying")
    func jwksOutageKeepsCachedKeys() async throws {
        try await ProxyEnvironment.with { environment in
            let first = try await environment.send(
                "/orders/1",
                headers: ["Authorization: Bearer " + TestIssuer.shared.token()]
            )
            #expect(first.status == 200)
            environment.jwksFailing.set(true)
            await environment.proxy.runtime.snapshot.verifier.issuers[0].jwks?.refresh()
            let fresh = TestIssuer.shared.token(algorithm: "ES256")
            let second = try await environment.send("/orders/2", headers: ["Authorization: Bearer \(fresh)"])
            #expect(second.status == 200)
            // A key the cached set does not have cannot be fetched: refused, never allowed.
            let unknown = TestIssuer.shared.token(kid: "rsa-rotated")
            let third = try await environment.send("/orders/3", headers: ["Authorization: Bearer \(unknown)"])
            #expect(third.status == 401)
            #expect(environment.upstream.requestCount == 2)
        }
    }

    @Test("the upstream down: 502")
    func upstreamDownIs502() async throws {
        try await ProxyEnvironment.with { environment in
            try await environment.upstream.shutdown()
            let response = try await environment.send(
                "/orders/1",
                headers: ["Authorization: Bearer " + TestIssuer.shared.token()]
            )
            #expect(response.status == 502)
        }
    }

    @Test("an upstream that does not answer within response_timeout: 504")
    func upstreamTimeoutIs504() async throws {
        try await ProxyEnvironment.with(upstreamHandler: { _ in
            // Answers 200, long after the timeout: a 504 can only be the timeout's.
            try? await Task.sleep(for: .seconds(6))
            return .json("{}")
        }) { environment in
            try await environment.setUpstreamResponseTimeout(0.3)
            let started = ContinuousClock.now
            let response = try await environment.send(
                "/orders/1",
                headers: ["Authorization: Bearer " + TestIssuer.shared.token()]
            )
            #expect(response.status == 504)
            #expect(response.body.contains("upstream_timeout"))
            // Well before the upstream's answer, with room for a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("a client that does not finish its request head within header_timeout is disconnected")
    func headerTimeout() async throws {
        let server = "server:\n  access_log: false\n  header_timeout: 300ms"
        try await ProxyEnvironment.with(extra: server, replaceServer: true) { environment in
            let connection = try await RawConnection.connect(port: environment.proxy.port)
            try await connection.send(Array("GET /orders/1 HTTP/1.1\r\nHost: a\r\nX-Slow: ".utf8))
            let started = ContinuousClock.now
            try await waitUntil(timeout: .seconds(5)) { !connection.isOpen }
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(environment.upstream.requestCount == 0)
            await connection.close()
        }
    }

    @Test("bytes that are not HTTP/1.1 get a 400 and the connection closes; nothing reaches the upstream")
    func unparsableRequest() async throws {
        try await ProxyEnvironment.with { environment in
            for garbage in ["GET /healthz HTTP/1.1\r\nHost a\r\n\r\n", "\u{1}\u{2}\u{3} nonsense\r\n\r\n"] {
                // `exchange` reads until the proxy closes the connection.
                let raw = try await RawHTTPClient.exchange(port: environment.proxy.port, bytes: Array(garbage.utf8))
                let response = try RawHTTPClient.parse(raw)
                #expect(response.status == 400)
                #expect(response.header("Connection") == "close")
                #expect(response.body.contains("invalid_request"))
            }
            #expect(environment.upstream.requestCount == 0)
        }
    }

    @Test("pipelined requests are answered in order, each through the whole pipeline")
    func pipelinedRequests() async throws {
        try await ProxyEnvironment.with { environment in
            let token = TestIssuer.shared.token()
            let requests =
                "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /orders/2 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \(token)\r\n\r\n"
                + "GET /orders/3 HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            let raw = try await RawHTTPClient.exchange(port: environment.proxy.port, bytes: Array(requests.utf8))
            let text = String(decoding: raw, as: UTF8.self)
            let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "200", "401", "200"], "\(text)")
            #expect(environment.upstream.requests.map(\.uri) == ["/healthz", "/orders/2", "/healthz"])
        }
    }

    @Test("a client that connects and sends nothing is disconnected after header_timeout")
    func silentClient() async throws {
        let server = "server:\n  access_log: false\n  header_timeout: 300ms"
        try await ProxyEnvironment.with(extra: server, replaceServer: true) { environment in
            let connection = try await RawConnection.connect(port: environment.proxy.port)
            let started = ContinuousClock.now
            try await waitUntil(timeout: .seconds(5)) { !connection.isOpen }
            #expect(ContinuousClock.now - started < .seconds(3))
            await connection.close()
        }
    }

    @Test("keep-alive: sequential requests reuse one upstream connection")
    func keepAliveReuse() async throws {
        try await ProxyEnvironment.with { environment in
            let token = TestIssuer.shared.token()
            for index in 0..<10 {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(environment.proxy.port)/orders/\(index)")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                let response = try await environment.client.execute(request, timeout: .seconds(5))
                #expect(response.status.code == 200)
                _ = try await response.body.collect(upTo: 1 << 20)
            }
            let opened = await environment.proxy.runtime.snapshot.pools?.openedCount()
            #expect(opened == 1)
            #expect(environment.upstream.requestCount == 10)
        }
    }

    @Test("an upstream answer with Connection: close is not reused for the next request")
    func upstreamConnectionCloseIsHonoured() async throws {
        try await ProxyEnvironment.with(upstreamHandler: { _ in
            .json("{}", headers: [("Connection", "close")])
        }) { environment in
            for index in 0..<3 {
                let response = try await environment.send("/healthz?n=\(index)")
                #expect(response.status == 200)
            }
            let opened = await environment.proxy.runtime.snapshot.pools?.openedCount()
            #expect(opened == 3)
        }
    }

    @Test("a pooled connection the upstream closed is retried once on a new one for an idempotent request")
    func stalePooledConnectionIsRetried() async throws {
        // The second request the upstream sees (the first on a reused connection) finds the
        // connection closing, as when the upstream's keep-alive timeout ends at that moment.
        let seen = Counter()
        try await ProxyEnvironment.with(upstreamHandler: { _ in
            seen.next() == 1 ? .closeConnection : .json("{}")
        }) { environment in
            // One keep-alive client connection, so every request runs on the same event loop and
            // meets the same pool.
            func send(_ index: Int, method: HTTPMethod = .GET) async throws -> UInt {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(environment.proxy.port)/healthz?n=\(index)")
                request.method = method
                if method == .POST { request.body = .bytes(ByteBuffer(string: "x")) }
                let response = try await environment.client.execute(request, timeout: .seconds(5))
                _ = try await response.body.collect(upTo: 1 << 20)
                return response.status.code
            }
            let status1 = try await send(1)
            #expect(status1 == 200)
            let status2 = try await send(2)
            #expect(status2 == 200)
            #expect(environment.upstream.requestCount == 3)
            let opened = await environment.proxy.runtime.snapshot.pools?.openedCount()
            #expect(opened == 2)
            // A request with a body is not repeated: the client learns of the failure.
            let status3 = try await send(3, method: .POST)
            #expect(status3 == 200)
            seen.set(1)
            let status4 = try await send(4, method: .POST)
            #expect(status4 == 502)
            #expect(environment.upstream.requestCount == 5)
        }
    }

    @Test("hop-by-hop headers of the upstream's response, and those its Connection names, do not reach the client")
    func responseHopByHopHeaders() async throws {
        try await ProxyEnvironment.with(upstreamHandler: { _ in
            .json(
                "{}",
                headers: [
                    ("Connection", "keep-alive, X-Internal"), ("Keep-Alive", "timeout=5"), ("X-Internal", "secret"),
                    ("Proxy-Authenticate", "Basic"), ("Trailer", "X-Checksum"), ("Upgrade", "h2c"), ("X-Kept", "1"),
                ]
            )
        }) { environment in
            let response = try await environment.send("/healthz")
            #expect(response.status == 200)
            #expect(response.header("X-Kept") == "1")
            for name in ["Keep-Alive", "X-Internal", "Proxy-Authenticate", "Trailer", "Upgrade"] {
                #expect(response.header(name) == nil, "\(name) reached the client")
            }
            #expect(response.header("Connection")?.contains("X-Internal") != true)
            #expect(response.header("Content-Length") == "2")
        }
    }

    @Test("a public route needs no token and still strips spoofed claim headers")
    func publicRoute() async throws {
        try await ProxyEnvironment.with { environment in
            let response = try await environment.send("/healthz", headers: ["X-Auth-Subject: root"])
            #expect(response.status == 200)
            #expect(environment.upstream.requests.first?.header("X-Auth-Subject") == nil)
        }
    }
}
