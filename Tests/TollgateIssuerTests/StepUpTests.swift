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
}
