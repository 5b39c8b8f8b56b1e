import Foundation
import HTTPTypes
import Testing
import TollgateCore

@testable import TollgateIssuer

/// RFC 9470 on the issuer's side: access tokens say when and how the person signed in
/// (`auth_time`, `acr`), and `max_age` at the authorization endpoint makes the person sign in
/// again when the session is older.
@Suite struct StepUpTests {
    typealias Flow = AuthorizationCodeFlowTests

    @Test func accessTokensCarryAuthTimeAndAcrAndMaxAgeMakesThePersonSignInAgain() async throws {
        let clock = DeviceFlowTests.Clock()
        let issuer = try await Flow.makeIssuer(clock: clock)
        let signedInAt = clock.now
        let (query, browser) = try await Flow.signInAndConsent(issuer)
        let answer = try Flow.json(try await Flow.exchange(issuer, code: try #require(query["code"])))
        let access = try Flow.claims(ofJWT: try #require(answer["access_token"]?.stringValue))
        #expect(access["auth_time"] == .number(Double(signedInAt)))
        #expect(access["acr"] == .string("urn:tollgate:acr:password"))
        let idToken = try Flow.claims(ofJWT: try #require(answer["id_token"]?.stringValue))
        #expect(idToken["acr"] == .string("urn:tollgate:acr:password"))
        let discovery = try Flow.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        #expect(discovery["acr_values_supported"] == .array([.string("urn:tollgate:acr:password")]))

        clock.advance(600)
        // The session is ten minutes old: without max_age it is used as it is (no form) ...
        let reused = await Flow.get(issuer, Flow.authorizePath(), browser: browser)
        #expect(reused.head.status == .found, "the session signs the person in")
        // ... and with max_age=60 the person signs in again.
        let stepUp = await Flow.get(
            issuer,
            Flow.authorizePath(extra: [
                ("code_challenge", Flow.challenge), ("code_challenge_method", "S256"), ("max_age", "60"),
            ]),
            browser: browser
        )
        #expect(stepUp.head.status == .ok)
        #expect(Flow.hidden(stepUp, "csrf") != nil && String(decoding: stepUp.body, as: UTF8.self).contains("password"))
    }

    @Test func acrValuesTheIssuerCannotMeetAreSaidSoAndOnesItCanAreSignedIn() async throws {
        let issuer = try await Flow.makeIssuer()
        let pkce = [("code_challenge", Flow.challenge), ("code_challenge_method", "S256")]
        let unmet = await Flow.get(issuer, Flow.authorizePath(extra: pkce + [("acr_values", "urn:example:mfa")]))
        #expect(unmet.head.status == .found)
        let location = try #require(unmet.head.headerFields[.location])
        #expect(location.hasPrefix("https://app.test/callback?"))
        #expect(location.contains("error=unmet_authentication_requirements") && location.contains("state=st-1"))
        let met = await Flow.get(
            issuer,
            Flow.authorizePath(extra: pkce + [("acr_values", "urn:example:mfa urn:tollgate:acr:password")])
        )
        #expect(met.head.status == .ok, "the sign-in form")
        #expect(String(decoding: met.body, as: UTF8.self).contains("password"))
    }

    @Test func anOpaqueTokensIntrospectionAnswerSaysWhenAndHowThePersonSignedIn() async throws {
        let clock = DeviceFlowTests.Clock()
        let issuer = try await Flow.makeIssuer(clock: clock) { $0.jwtAccessToken = false }
        let signedInAt = clock.now
        let (query, _) = try await Flow.signInAndConsent(issuer)
        clock.advance(30)
        let answer = try Flow.json(try await Flow.exchange(issuer, code: try #require(query["code"])))
        let token = try #require(answer["access_token"]?.stringValue)
        #expect(!token.contains("."), "opaque")
        let described = try Flow.json(
            await Flow.post(issuer, "/oauth2/introspect", [("token", token)], authorization: Flow.webBasic)
        )
        #expect(described["active"] == .bool(true))
        #expect(described["auth_time"] == .number(Double(signedInAt)))
        #expect(described["acr"] == .string("urn:tollgate:acr:password"))
        // A client's own token (client_credentials) has no person behind it: neither member.
        let secret = "svc-secret-0123456789abcdef0123456789"
        try await issuer.store.saveClient(
            RegisteredClient(
                id: "@team/svc",
                kind: .machine,
                secret: .hashing(secret),
                redirectURIs: [],
                scopes: ["@team/orders.read"]
            )
        )
        let machineBasic = FormURLEncoding.basicAuthorization(clientID: "@team/svc", clientSecret: secret)
        let own = try Flow.json(
            await Flow.post(
                issuer,
                "/oauth2/token",
                [("grant_type", "client_credentials"), ("scope", "@team/orders.read")],
                authorization: machineBasic
            )
        )
        let ownToken = try #require(own["access_token"]?.stringValue)
        let ownAnswer = try Flow.json(
            await Flow.post(issuer, "/oauth2/introspect", [("token", ownToken)], authorization: machineBasic)
        )
        #expect(ownAnswer["active"] == .bool(true))
        #expect(ownAnswer["auth_time"] == nil && ownAnswer["acr"] == nil)
    }
}
