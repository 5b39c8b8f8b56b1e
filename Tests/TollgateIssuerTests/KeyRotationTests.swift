import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// Staged rotation: a new key is published before it signs (for longer than the JWKS max-age),
/// the old one stays published until the last token it signed has expired, and every token
/// keeps verifying against the published set throughout.
@Suite struct KeyRotationTests {
    typealias Clock = DeviceFlowTests.Clock
    typealias Flow = AuthorizationCodeFlowTests

    static func makeIssuer(clock: Clock, store: MemoryIssuerStore) async throws -> OAuthIssuer {
        var options = IssuerOptions(issuer: "https://idp.test")
        options.apis = [APIDefinition(audience: "@team/orders", scopes: ["@team/orders.read"])]
        options.jwksMaxAge = 300
        options.accessTokenTTL = 3600
        try await store.saveClient(
            RegisteredClient(
                id: "@team/svc",
                kind: .machine,
                secret: .hashing("svc-secret"),
                scopes: ["@team/orders.read"]
            )
        )
        let keys = try await KeyRing.load(from: store, algorithm: .rs256, now: clock.now)
        return OAuthIssuer(options: options, store: store, keys: keys, now: { clock.now })
    }

    static func token(_ issuer: OAuthIssuer) async throws -> String {
        let answer = await Flow.post(
            issuer,
            "/oauth2/token",
            [("grant_type", "client_credentials"), ("client_id", "@team/svc"), ("client_secret", "svc-secret")]
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
        return try #require(object["access_token"] as? String)
    }

    static func keyID(of token: String) throws -> String {
        let header = try #require(Base64URL.decode(String(token.split(separator: ".")[0])))
        return try #require(try JSONParser.parse(header)["kid"]?.stringValue)
    }

    static func publishedKeyIDs(_ issuer: OAuthIssuer) async throws -> [String] {
        let jwks = await Flow.get(issuer, "/oauth2/jwks")
        #expect(jwks.head.headerFields[.cacheControl] == "public, max-age=300")
        let document = try JSONParser.parse(jwks.body)
        return (document["keys"]?.arrayValue ?? []).compactMap { $0["kid"]?.stringValue }
    }

    /// Verifies `token`'s signature the way Tollgate's verifier does, against the JWKS the issuer
    /// publishes now.
    static func verifies(_ token: String, issuer: OAuthIssuer, now: Int) async throws -> Bool {
        let jwks = await Flow.get(issuer, "/oauth2/jwks")
        return verifies(token, keySet: try JSONWebKeySet.parse(jwks.body))
    }

    static func verifies(_ token: String, keySet: JSONWebKeySet) -> Bool {
        guard case .success(let jws) = CompactJWS.parse(token, maximumSize: 16_384) else { return false }
        let verifier = JWSVerifier(allowedAlgorithms: Set(JWSAlgorithm.allCases.filter { !$0.isSymmetric }))
        return (try? verifier.verify(jws, keySet: keySet).get()) != nil
    }

    @Test func aRotationPublishesFirstSignsLaterAndRetiresTheOldKeyAfterItsTokens() async throws {
        let clock = Clock()
        let store = MemoryIssuerStore()
        let issuer = try await Self.makeIssuer(clock: clock, store: store)
        let oldKey = issuer.keys.snapshot.active.keyID
        let oldToken = try await Self.token(issuer)
        #expect(try Self.keyID(of: oldToken) == oldKey)

        let next = try await KeyRing.rotate(store: store, algorithm: .rs256, timing: issuer.keyTiming, now: clock.now)
        #expect(next.keyID != oldKey)
        try await issuer.advanceKeys()
        // Published at once, but the old key still signs.
        #expect(Set(try await Self.publishedKeyIDs(issuer)) == [oldKey, next.keyID])
        #expect(try Self.keyID(of: try await Self.token(issuer)) == oldKey)

        // Still not signing at the JWKS max-age: a cache that fetched just before the rotation
        // may not have it yet.
        clock.advance(300)
        try await issuer.advanceKeys()
        #expect(try Self.keyID(of: try await Self.token(issuer)) == oldKey)

        // After max-age plus one refresh interval, the new key signs; the old one stays published.
        clock.advance(issuer.keyTiming.refreshInterval)
        try await issuer.advanceKeys()
        let newToken = try await Self.token(issuer)
        #expect(try Self.keyID(of: newToken) == next.keyID)
        #expect(Set(try await Self.publishedKeyIDs(issuer)) == [oldKey, next.keyID])
        #expect(try await Self.verifies(oldToken, issuer: issuer, now: clock.now))
        #expect(try await Self.verifies(newToken, issuer: issuer, now: clock.now))

        // Until the last token the old key signed (on any replica) has expired, plus leeway.
        clock.advance(issuer.keyTiming.retiredFor - 1)
        try await issuer.advanceKeys()
        #expect(try await Self.publishedKeyIDs(issuer).contains(oldKey))
        clock.advance(1)
        try await issuer.advanceKeys()
        #expect(try await Self.publishedKeyIDs(issuer) == [next.keyID])
        #expect(try await store.signingKeys().map(\.keyID) == [next.keyID])
        #expect(try await Self.verifies(newToken, issuer: issuer, now: clock.now))
    }

    @Test func aReplicaPicksUpAKeyAnotherStoredAndBothAgree() async throws {
        let clock = Clock()
        let store = MemoryIssuerStore()
        let first = try await Self.makeIssuer(clock: clock, store: store)
        let keys = try await KeyRing.load(from: store, algorithm: .rs256, now: clock.now)
        let second = OAuthIssuer(options: first.options, store: store, keys: keys, now: { clock.now })
        #expect(first.keys.snapshot.active.keyID == second.keys.snapshot.active.keyID)
        let next = try await KeyRing.rotate(store: store, algorithm: .rs256, timing: first.keyTiming, now: clock.now)
        try await second.advanceKeys()
        #expect(try await Self.publishedKeyIDs(second).contains(next.keyID))
        clock.advance(first.keyTiming.publishedBeforeSigning)
        try await first.advanceKeys()
        try await second.advanceKeys()
        #expect(first.keys.snapshot.active.keyID == next.keyID)
        #expect(second.keys.snapshot.active.keyID == next.keyID)
        #expect(try Self.keyID(of: try await Self.token(second)) == next.keyID)
        #expect(try await store.signingKeys().filter { $0.stage == .active }.count == 1)
    }

    /// `signing_algorithm` changed from RS256 to ES256: the ES256 key is staged, published
    /// first, and the RS256 key signs until the ES256 key may.
    @Test func aChangedSigningAlgorithmIsStagedLikeARotation() async throws {
        let clock = Clock()
        let store = MemoryIssuerStore()
        let before = try await Self.makeIssuer(clock: clock, store: store)
        let oldKey = before.keys.snapshot.active.keyID
        let keys = try await KeyRing.load(from: store, algorithm: .es256, timing: before.keyTiming, now: clock.now)
        let after = OAuthIssuer(options: before.options, store: store, keys: keys, now: { clock.now })
        #expect(after.keys.snapshot.active.keyID == oldKey, "the RS256 key signs on")
        let staged = try #require(try await store.signingKeys().first { $0.algorithm == "ES256" })
        #expect(staged.stage == .next)
        #expect(try await Self.publishedKeyIDs(after).contains(staged.keyID), "published at once")
        clock.advance(before.keyTiming.publishedBeforeSigning)
        try await after.advanceKeys()
        #expect(after.keys.snapshot.active.keyID == staged.keyID)
        #expect(try Self.keyID(of: try await Self.token(after)) == staged.keyID)
        let old = try #require(try await store.signingKeys().first { $0.keyID == oldKey })
        #expect(old.stage == .retired, "RS256 is no longer in use: its key retires, published until its tokens expire")
        // A restart in between neither stages a second key nor loses the first.
        let again = try await KeyRing.load(from: store, algorithm: .es256, timing: before.keyTiming, now: clock.now)
        #expect(again.snapshot.active.keyID == staged.keyID)
        #expect(try await store.signingKeys().filter { $0.algorithm == "ES256" }.count == 1)
    }

    /// While a changed `signing_algorithm` is staged, the previous issuer algorithm's key signs,
    /// not a newer key only a client's ID tokens use.
    @Test func theStandInDuringAnAlgorithmChangeIsThePreviousIssuerKey() async throws {
        let clock = Clock()
        let store = MemoryIssuerStore()
        let before = try await KeyRing.load(from: store, algorithm: .rs256, now: clock.now)
        clock.advance(10)
        let timing = KeyRing.Timing(jwksMaxAge: 300, tokenLifetime: 3600)
        // A client's PS384 key is made after the RS256 one; the issuer moves to ES256.
        let after = try await KeyRing.load(
            from: store,
            algorithm: .es256,
            others: [.ps384],
            timing: timing,
            now: clock.now
        )
        #expect(after.snapshot.activeByAlgorithm[.ps384] != nil)
        #expect(after.snapshot.active.keyID == before.snapshot.active.keyID, "RS256 stands in, not PS384")
    }

    @Test(arguments: SigningKey.Algorithm.allCases)
    func everyAlgorithmSignsWhatTheVerifierAccepts(_ algorithm: SigningKey.Algorithm) async throws {
        let key = try SigningKey.generate(algorithm)
        let token = try key.sign(claims: .object(["sub": .string("x")]), type: "at+jwt")
        let keySet = try JSONWebKeySet.parse(
            Array(JSONValue.object(["keys": .array([key.publicJWK])]).serialized().utf8)
        )
        #expect(keySet.keys.first?.keyID == key.keyID)
        #expect(Self.verifies(token, keySet: keySet))
        // Reading the key back from its stored form gives the same key.
        #expect(try SigningKey(algorithm: algorithm, der: key.privateKeyDER).keyID == key.keyID)
    }
}
