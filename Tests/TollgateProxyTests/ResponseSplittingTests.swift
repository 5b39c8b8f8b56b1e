import Foundation
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// Hostile bytes in a token's header, its claims and an introspection answer, through the real
/// listener: whatever they hold, the answer is one response with Tollgate's own headers and a
/// JSON body, and its status is the failure table's.
@Suite("Response splitting", .serialized)
struct ResponseSplittingTests {
    static let injection =
        "ES256\r\nX-Injected: yes\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nX-Second: yes\r\n\r\n"

    /// Values a token or an introspection answer can carry.
    static let hostileValues: [(String, String)] = [
        ("CR LF", injection),
        ("LF only", "a\nX-Injected: yes"),
        ("NUL", "a\u{0}X-Injected: yes"),
        ("quotes", #"a", error="none", x="#),
        ("backslash", #"a\", X-Injected: \"yes"#),
        ("DEL and C1", "a\u{7F}\u{85}X-Injected: yes"),
        ("8 KiB", String(repeating: "A", count: 8192) + "\r\nX-Injected: yes"),
    ]

    /// Header JSON whose bytes are not UTF-8.
    static let nonUTF8Header = Base64URL.encode([
        0x7B, 0x22, 0x61, 0x6C, 0x67, 0x22, 0x3A, 0x22, 0xFF, 0xFE, 0x0D, 0x0A, 0x22, 0x7D,
    ])

    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let path: String
        let authorization: @Sendable (TestIssuer) -> String
        let statuses: Set<Int>
        var testDescription: String { name }
    }

    static func unsignedToken(header: [String: Any], claims: [String: Any] = ["iss": TestIssuer.issuer]) -> String {
        TestIssuer.encode(header) + "." + TestIssuer.encode(claims) + ".AAAA"
    }

    static let cases: [Case] = {
        var cases: [Case] = []
        for (label, value) in hostileValues {
            // Header fields, with any signature and no key that could verify it.
            cases.append(
                Case(
                    name: "alg \(label)",
                    path: "/orders/1",
                    authorization: { _ in unsignedToken(header: ["alg": value, "kid": "k"]) },
                    statuses: [401]
                )
            )
            cases.append(
                Case(
                    name: "kid \(label)",
                    path: "/orders/1",
                    authorization: { _ in unsignedToken(header: ["alg": "RS256", "kid": value]) },
                    statuses: [401]
                )
            )
            cases.append(
                Case(
                    name: "crit \(label)",
                    path: "/orders/1",
                    authorization: { _ in unsignedToken(header: ["alg": "RS256", "kid": "rsa-1", "crit": [value]]) },
                    statuses: [401]
                )
            )
            // Signed by the trusted issuer, so they reach the claim checks and the claim headers.
            cases.append(
                Case(
                    name: "typ \(label)",
                    path: "/orders/1",
                    authorization: { issuer in issuer.token(header: ["typ": value]) },
                    statuses: [200, 401]
                )
            )
            cases.append(
                Case(
                    name: "iss \(label)",
                    path: "/orders/1",
                    authorization: { issuer in issuer.token(["iss": value]) },
                    statuses: [401]
                )
            )
            cases.append(
                Case(
                    name: "aud \(label)",
                    path: "/orders/1",
                    authorization: { issuer in issuer.token(["aud": [value]]) },
                    statuses: [401]
                )
            )
            cases.append(
                Case(
                    name: "scope \(label)",
                    path: "/orders/1",
                    authorization: { issuer in issuer.token(scope: "@team/orders.read " + value) },
                    statuses: [200, 401, 403]
                )
            )
            cases.append(
                Case(
                    name: "scope on a forward-auth call \(label)",
                    path: "/_tollgate/auth",
                    authorization: { issuer in issuer.token(scope: "@team/orders.read " + value) },
                    statuses: [200, 401, 403]
                )
            )
        }
        cases.append(
            Case(
                name: "header not UTF-8",
                path: "/orders/1",
                authorization: { _ in nonUTF8Header + ".e30.AAAA" },
                statuses: [401]
            )
        )
        return cases
    }()

    /// Sends `authorization` raw and checks the answer is exactly one well-formed response.
    static func expectOneCleanResponse(
        port: Int,
        path: String,
        authorization: String,
        extraHeaders: [String] = [],
        statuses: Set<Int>
    ) async throws {
        var request = "GET \(path) HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer \(authorization)\r\n"
        for header in extraHeaders { request += header + "\r\n" }
        request += "Connection: close\r\n\r\n"
        let raw = try await RawHTTPClient.exchange(port: port, bytes: Array(request.utf8))
        let text = String(decoding: raw, as: UTF8.self)
        let response = try RawHTTPClient.parse(raw)
        #expect(statuses.contains(response.status), "status \(response.status): \(text.prefix(300))")
        // The head is Tollgate's (or the upstream's echo, whose body may quote the value).
        let head = text.components(separatedBy: "\r\n\r\n")[0]
        #expect(!head.contains("\r\nX-Injected"), "\(text.prefix(600))")
        #expect(!text.contains("\r\nX-Second"))
        #expect(!response.headers.contains { $0.0.lowercased() == "x-injected" })
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK\r\nX-Second").count == 1, "one response")
        for (name, value) in response.headers {
            #expect(!name.contains(" ") && !value.contains("\u{0}"))
        }
        if response.status >= 400 {
            let body = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
            #expect(body?["error"] is String, "body \(response.body.prefix(200))")
            if let description = body?["error_description"] as? String {
                #expect(!description.contains("Injected") && !description.contains("AAAA"))
            }
        }
    }

    @Test(arguments: cases)
    func hostileTokenContentNeverReachesTheAnswer(_ row: Case) async throws {
        try await ProxyEnvironment.with { environment in
            let token = row.authorization(TestIssuer.shared)
            try await Self.expectOneCleanResponse(
                port: environment.proxy.port,
                path: row.path,
                authorization: token,
                extraHeaders: row.path.hasPrefix("/_tollgate")
                    ? ["X-Forwarded-Method: GET", "X-Forwarded-Uri: /orders/1"] : [],
                statuses: row.statuses
            )
        }
    }

    @Test func theReportedSplittingTokenGetsOneCleanAnswerWithoutAnyKey() async throws {
        try await ProxyEnvironment.with(jwksDown: true) { environment in
            let token = Self.unsignedToken(header: ["alg": Self.injection, "kid": "k"])
            try await Self.expectOneCleanResponse(
                port: environment.proxy.port,
                path: "/orders/1",
                authorization: token,
                statuses: [401, 503]
            )
        }
    }

    @Test func hostileIntrospectionAnswersNeverReachTheAnswerOrTheUpstreamHeaders() async throws {
        for (label, value) in Self.hostileValues {
            let quoted = JSONValue.quoted(value)
            try await ProxyEnvironment.with(
                introspectionHandler: { request in
                    let exp = Int(Date().timeIntervalSince1970) + 300
                    if request.bodyText.contains("scope-token") {
                        return .json(#"{"active":true,"sub":\#(quoted),"scope":\#(quoted),"exp":\#(exp)}"#)
                    }
                    return .json(#"{"active":false}"#)
                }
            ) { environment in
                // A claim value with control characters is refused (403), never sent as a header.
                try await Self.expectOneCleanResponse(
                    port: environment.proxy.port,
                    path: "/opaque/x",
                    authorization: "scope-token-0123456789",
                    statuses: value.contains("\r") || value.contains("\n") || value.contains("\u{0}")
                        ? [403] : [200, 403]
                )
                for request in environment.upstream.requests {
                    for (_, headerValue) in request.headers {
                        #expect(!headerValue.contains("\r") && !headerValue.contains("\n"), "\(label)")
                    }
                }
            }
        }
    }

    @Test func anUpstreamHeaderThatCannotBeSentIsA502NotRelayed() {
        var headers = HTTPHeaders()
        headers.add(name: "X-Ok", value: "fine")
        #expect(HTTPQuoting.areValidToSend(headers))
        headers.add(name: "X-Bad", value: "a\u{0}b")
        #expect(!HTTPQuoting.areValidToSend(headers))
        var names = HTTPHeaders()
        names.add(name: "X Bad", value: "v")
        #expect(!HTTPQuoting.areValidToSend(names))
    }
}
