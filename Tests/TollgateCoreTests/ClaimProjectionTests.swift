import AsyncHTTPClient
import Foundation
import Testing

@testable import TollgateCore

/// A verified JWT keeps only the claims its configuration reads, so the cache holds a few hundred
/// bytes per token; whatever the configuration reads is there, cached or not.
@Suite struct ClaimProjectionTests {
    static let now = 1_800_000_000.0

    static func configuration(payloadHeader: Bool) throws -> TollgateConfiguration {
        try ConfigurationTests.parse(
            """
            issuers:
              - name: internal
                issuer: https://idp.example.com/team
                audiences: ["@team/api"]
                algorithms: [HS256]
                hmac_secret_file: secrets/hmac
            routes:
              - match: { prefix: /orders }
                require:
                  claims:
                    - { claim: tenant.region, equals: eu }
            forward:
              claims:
                X-Auth-Subject: sub
                X-Auth-Actor: actor.national_id
            \(payloadHeader ? "  payload_header: X-Auth-Claims" : "")
            """
        )
    }

    static var claims: [String: Any] {
        [
            "iss": TestTokens.issuer, "aud": [TestTokens.audience], "sub": "user-42", "exp": Int(now) + 600,
            "scope": "@team/orders.read", "actor": ["national_id": "123", "name": "Alice"],
            "tenant": ["region": "eu"], "email": "alice@example.com", "amr": ["pwd", "otp"],
        ]
    }

    static func verifyTwice(_ configuration: TollgateConfiguration) async throws -> [VerifiedToken] {
        let client = OutboundHTTP.makeClient()
        let verifier = TokenVerifier(configuration: configuration, client: client, now: { now })
        let token = TestTokens.mint(
            header: ["alg": "HS256"],
            claims: claims,
            signer: .hmac(Array("test-only-hmac-secret-0123456789abcdef".utf8))
        )
        var verified: [VerifiedToken] = []
        for _ in 0..<3 { verified.append(try await verifier.verify(token).get()) }
        #expect(verifier.cache.hits == 1, "the third sighting is served from the cache")
        try await client.shutdown()
        return verified
    }

    @Test func aVerifiedTokenKeepsItsHeaderValuesAndTheTestedClaimsAndNothingElse() async throws {
        let configuration = try Self.configuration(payloadHeader: false)
        for token in try await Self.verifyTwice(configuration) {
            guard case .object(let members) = token.claims else {
                Issue.record("claims are not an object")
                return
            }
            #expect(Set(members.keys) == ["tenant"], "only what a condition tests")
            #expect(token.encodedClaims.isEmpty)
            #expect(token.scopes == ["@team/orders.read"])
            #expect(token.subject == "user-42")
            let route = try #require(configuration.routes.routes.first)
            #expect(route.conditions.allSatisfy { $0.isSatisfied(by: token.claims) })
            let headers = try configuration.forward.headers(for: token).get()
            #expect(headers.map(\.name) == ["X-Auth-Subject", "X-Auth-Actor"])
            #expect(headers.map(\.value) == ["user-42", "123"])
        }
    }

    @Test func anUnsafeClaimValueIsStillRefusedFromTheComputedHeaders() {
        var configuration = TollgateConfiguration()
        configuration.forward = ClaimHeaderMapping(entries: [.init(header: "X-A", claim: "a")])
        let token = VerifiedToken(
            issuerName: "main",
            claims: .object(["a": .string("x\r\nX-Injected: 1")]),
            subject: nil,
            scopes: [],
            expiresAt: 0,
            leeway: 0,
            encodedClaims: ""
        ).projected(ClaimProjection(configuration))
        #expect(throws: ClaimHeaderMapping.Failure.self) { try configuration.forward.headers(for: token).get() }
        // Another mapping than the one computed for reads the claims (here: none kept).
        let other = ClaimHeaderMapping(entries: [.init(header: "X-B", claim: "a")])
        #expect((try? other.headers(for: token).get())?.isEmpty == true)
    }

    @Test func thePayloadIsKeptWhenItIsForwardedWhole() async throws {
        let configuration = try Self.configuration(payloadHeader: true)
        for token in try await Self.verifyTwice(configuration) {
            let decoded = try #require(Base64URL.decode(token.encodedClaims))
            let object = try #require(JSONSerialization.jsonObject(with: Data(decoded)) as? [String: Any])
            #expect(object["email"] as? String == "alice@example.com", "the payload header carries every claim")
        }
    }

    @Test func everyDottedPrefixOfATestedPathIsKept() throws {
        let configuration = try Self.configuration(payloadHeader: false)
        // `cnf` always: a token's binding is checked on every route.
        #expect(ClaimProjection(configuration).names == ["cnf", "tenant", "tenant.region"])
        #expect(ClaimProjection(configuration).keepsEncodedClaims == false)
    }
}
