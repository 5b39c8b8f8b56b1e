import Foundation
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// RFC 9470 at the gate: a route that needs a kind of sign-in (`acr`) or a recent one
/// (`max_age`) answers a token that falls short with 401 `insufficient_user_authentication`,
/// naming what it needs, over the real listener.
@Suite("Step-up challenges")
struct StepUpChallengeTests {
    static let routes = """
          - name: payments
            match: { prefix: /payments }
            issuers: [main]
            require: { acr: ["urn:example:mfa", "urn:example:hardware"], max_age: 5m }
          - name: recent
            match: { prefix: /recent }
            issuers: [main]
            require: { max_age: 60s }
        """

    @Test func aTokenThatFallsShortIsToldWhatSignInTheRouteNeeds() async throws {
        let now = Int(Date().timeIntervalSince1970)
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            func send(_ path: String, _ claims: [String: Any?]) async throws -> RawHTTPClient.Response {
                try await environment.send(path, headers: ["Authorization: Bearer \(TestIssuer.shared.token(claims))"])
            }
            let expected =
                "Bearer realm=\"orders\", error=\"insufficient_user_authentication\", "
                + "error_description=\"a different or more recent authentication is required\", "
                + "acr_values=\"urn:example:mfa urn:example:hardware\", max_age=\"300\""
            for (name, claims) in [
                ("no acr", ["auth_time": now - 10]),
                ("another acr", ["acr": "urn:example:password", "auth_time": now - 10]),
                ("too old", ["acr": "urn:example:mfa", "auth_time": now - 3600]),
                ("no auth_time", ["acr": "urn:example:mfa"]),
                ("auth_time in the future", ["acr": "urn:example:mfa", "auth_time": now + 3600]),
            ] as [(String, [String: Any?])] {
                let response = try await send("/payments/1", claims)
                #expect(response.status == 401, "\(name)")
                #expect(response.header("WWW-Authenticate") == expected, "\(name)")
                #expect(response.body.contains("insufficient_user_authentication"))
            }
            #expect(
                try await send("/payments/1", ["acr": "urn:example:hardware", "auth_time": now - 10]).status == 200
            )
            let recent = try await send("/recent", ["auth_time": now - 120])
            #expect(
                recent.header("WWW-Authenticate")
                    == "Bearer realm=\"orders\", error=\"insufficient_user_authentication\", "
                    + "error_description=\"a different or more recent authentication is required\", max_age=\"60\""
            )
            #expect(try await send("/recent", ["auth_time": now - 5]).status == 200)
            #expect(environment.upstream.requestCount == 2)
        }
    }

    @Test func aDPoPClientIsToldInItsOwnSchemeToo() async throws {
        let now = Int(Date().timeIntervalSince1970)
        let key = DPoPTests.Key()
        let token = TestIssuer.shared.token(
            scope: "@team/orders.read",
            ["cnf": ["jkt": key.thumbprint], "acr": "urn:example:password", "auth_time": now - 10]
        )
        let proofs = try DPoPTests.proofs(
            ["a": key],
            [["name": "payments", "htu": "https://api.test/payments/1", "token": token]]
        )
        try await ProxyEnvironment.with(routes: Self.routes) { environment in
            // The origin a trusted proxy forwarded (this test's address is one).
            let response = try await environment.send(
                "/payments/1",
                headers: DPoPTests.forwarded + ["Authorization: DPoP \(token)", "DPoP: \(proofs["payments"]!)"]
            )
            #expect(response.status == 401)
            let challenges = response.headers.filter { $0.0.lowercased() == "www-authenticate" }.map(\.1)
            #expect(challenges.contains { $0.hasPrefix("Bearer ") && $0.contains("insufficient_user_authentication") })
            #expect(
                challenges.contains {
                    $0.hasPrefix("DPoP algs=") && $0.contains("error=\"insufficient_user_authentication\"")
                        && $0.contains("acr_values=\"urn:example:mfa urn:example:hardware\"")
                        && $0.contains("max_age=\"300\"")
                },
                "\(challenges)"
            )
            #expect(environment.upstream.requestCount == 0)
        }
    }
}
