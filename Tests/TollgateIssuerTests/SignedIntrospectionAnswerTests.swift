import Foundation
import HTTPTypes
import Testing
import TollgateCore

@testable import TollgateIssuer

/// RFC 9701 on the issuer's side: a caller that asks for `application/token-introspection+jwt`
/// gets the introspection answer as a JWT signed with the issuer's key, for that caller.
@Suite struct SignedIntrospectionAnswerTests {
    typealias Flow = AuthorizationCodeFlowTests

    @Test func theAnswerIsSignedForTheCallerWhenItAsks() async throws {
        let issuer = try await Flow.makeIssuer()
        let (query, _) = try await Flow.signInAndConsent(issuer)
        let tokens = try Flow.json(try await Flow.exchange(issuer, code: try #require(query["code"])))
        let access = try #require(tokens["access_token"]?.stringValue)
        var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: "/oauth2/introspect")
        request.headerFields[.contentType] = "application/x-www-form-urlencoded"
        request.headerFields[.authorization] = Flow.webBasic
        request.headerFields[.accept] = "application/token-introspection+jwt"
        for (token, active) in [(access, true), ("not-a-token", false)] {
            let response = await issuer.handle(request, body: Array(FormURLEncoding.encode([("token", token)]).utf8))
            #expect(response.head.status == .ok)
            #expect(response.head.headerFields[.contentType] == "application/token-introspection+jwt")
            let jws = try CompactJWS.parse(String(decoding: response.body, as: UTF8.self), maximumSize: 16_384).get()
            #expect(jws.type == "token-introspection+jwt")
            let keys = try JSONWebKeySet.parse(await Flow.get(issuer, "/oauth2/jwks").body)
            #expect(throws: Never.self) {
                try JWSVerifier(allowedAlgorithms: [.rs256]).verify(jws, keySet: keys).get()
            }
            let claims = try JSONParser.parse(jws.payload)
            #expect(claims["iss"] == .string("https://idp.test"))
            #expect(claims["aud"] == .string("@team/web"))
            #expect(claims["iat"]?.numberValue != nil)
            #expect(claims["token_introspection"]?["active"] == .bool(active))
        }
    }
}
