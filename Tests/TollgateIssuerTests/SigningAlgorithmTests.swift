import Crypto
import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// Reference 003's algorithms: a key per algorithm in the ring, each rotated on its own, a
/// client's own ID token algorithm, HS* only with a secret kept plain and long enough.
@Suite struct SigningAlgorithmTests {
    typealias Clock = DeviceFlowTests.Clock
    typealias Flow = AuthorizationCodeFlowTests

    static func verifies(_ token: String, keySet: JSONWebKeySet, algorithm: JWSAlgorithm) -> Bool {
        guard case .success(let jws) = CompactJWS.parse(token, maximumSize: 16_384) else { return false }
        return (try? JWSVerifier(allowedAlgorithms: [algorithm]).verify(jws, keySet: keySet).get()) != nil
    }

    static func header(_ token: String) throws -> JSONValue {
        try JSONParser.parse(try #require(Base64URL.decode(String(token.split(separator: ".")[0]))))
    }

    @Test(arguments: SigningKey.Algorithm.allCases)
    func eachAlgorithmSignsWhatTheGatesVerifierAcceptsAndNoOtherAlgorithmDoes(
        _ algorithm: SigningKey.Algorithm
    )
        throws
    {
        let key = try SigningKey.generate(algorithm)
        let token = try key.sign(claims: .object(["sub": .string("ada")]), type: "JWT")
        let keySet = try JSONWebKeySet.parse(
            Array(JSONValue.object(["keys": .array([key.publicJWK])]).serialized().utf8)
        )
        let jws = try #require(JWSAlgorithm(rawValue: algorithm.rawValue))
        #expect(Self.verifies(token, keySet: keySet, algorithm: jws))
        #expect(try Self.header(token)["alg"] == .string(algorithm.rawValue))
        // A key serves its one algorithm (RFC 8725 §3.1): the JWK says which.
        for other in JWSAlgorithm.allCases where other != jws && !other.isSymmetric {
            #expect(!Self.verifies(token, keySet: keySet, algorithm: other), "\(other)")
        }
        // The key reads back from what storage keeps.
        let stored = try SigningKey(algorithm: algorithm, der: key.privateKeyDER)
        #expect(stored.keyID == key.keyID)
    }

    @Test func theRingHoldsAKeyPerAlgorithmAndRotatesEachOnItsOwn() async throws {
        let clock = Clock()
        let store = MemoryIssuerStore()
        let ring = try await KeyRing.load(from: store, algorithm: .rs256, others: [.ps384, .es512], now: clock.now)
        let first = ring.snapshot.activeByAlgorithm
        #expect(Set(first.keys) == [.rs256, .ps384, .es512])
        #expect(ring.snapshot.active.algorithm == .rs256)
        let timing = KeyRing.Timing(jwksMaxAge: 300, tokenLifetime: 3600)
        let next = try await KeyRing.rotate(store: store, algorithm: .es512, timing: timing, now: clock.now)
        clock.advance(timing.publishedBeforeSigning)
        try await ring.advance(store: store, timing: timing, now: clock.now)
        let after = ring.snapshot
        #expect(after.activeByAlgorithm[.es512]?.keyID == next.keyID)
        #expect(after.activeByAlgorithm[.rs256]?.keyID == first[.rs256]?.keyID, "the other algorithms' keys stay")
        #expect(after.activeByAlgorithm[.ps384]?.keyID == first[.ps384]?.keyID)
        #expect(
            after.published.contains { $0.keyID == first[.es512]?.keyID },
            "the old ES512 key is retired, published"
        )
        clock.advance(timing.retiredFor)
        try await ring.advance(store: store, timing: timing, now: clock.now)
        #expect(!ring.snapshot.published.contains { $0.keyID == first[.es512]?.keyID })
        #expect(ring.snapshot.published.count == 3)
    }

    static func issuer(
        clientAlgorithm: String?,
        secret: StoredSecret = .keeping(Flow.webSecret),
        storeSecrets: IssuerOptions.StorageForm = .plain,
        store: MemoryIssuerStore = MemoryIssuerStore()
    ) async throws -> OAuthIssuer {
        let clock = Clock()
        let issuer = try await Flow.makeIssuer(store: store, clock: clock) { options in
            options.storeClientSecret = storeSecrets
        }
        var client = try #require(try await store.client(id: "@team/web"))
        client.secret = secret
        client.idTokenSignedResponseAlg = clientAlgorithm
        try await store.saveClient(client)
        let keys = try await KeyRing.load(from: store, algorithm: .rs256, others: [.ps384], now: clock.now)
        return OAuthIssuer(options: issuer.options, store: store, keys: keys, now: { clock.now })
    }

    @Test func aClientsIDTokensAreSignedWithItsOwnAlgorithmAndAccessTokensWithTheIssuers() async throws {
        let issuer = try await Self.issuer(clientAlgorithm: "PS384")
        let tokens = try await ClientSettingsTests.tokens(issuer)
        let idToken = try #require(tokens.answer["id_token"]?.stringValue)
        let access = try #require(tokens.answer["access_token"]?.stringValue)
        #expect(try Self.header(idToken)["alg"] == .string("PS384"))
        #expect(try Self.header(access)["alg"] == .string("RS256"))
        #expect(Self.verifies(idToken, keySet: issuer.keys.snapshot.keySet, algorithm: .ps384))
        let claims = try Flow.claims(ofJWT: idToken)
        let digest = Array(SHA384Digest.of(access))
        #expect(claims["at_hash"] == .string(Base64URL.encode(digest.prefix(24))), "at_hash with PS384's SHA-384")
        let document = try Flow.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        let listed = try #require(document["id_token_signing_alg_values_supported"]?.arrayValue).compactMap(
            \.stringValue
        )
        #expect(listed == ["RS256", "PS384", "HS256"], "HS384/512 only for clients declared with them")
    }

    @Test func anHS256IDTokenIsSignedWithTheClientsSecret() async throws {
        let issuer = try await Self.issuer(clientAlgorithm: "HS256")
        let tokens = try await ClientSettingsTests.tokens(issuer)
        let idToken = try #require(tokens.answer["id_token"]?.stringValue)
        #expect(try Self.header(idToken)["alg"] == .string("HS256") && Self.header(idToken)["kid"] == nil)
        let secret = JSONWebKeySet(keys: [VerificationKey.hmac(secret: Array(Flow.webSecret.utf8))])
        #expect(Self.verifies(idToken, keySet: secret, algorithm: .hs256))
        let other = JSONWebKeySet(keys: [VerificationKey.hmac(secret: Array("another-secret-of-32-bytes-or-more".utf8))]
        )
        #expect(!Self.verifies(idToken, keySet: other, algorithm: .hs256))
    }

    /// RP-initiated logout takes a hint of any algorithm the client's ID tokens have, an HS256
    /// one verified with that client's secret only when the client registered HS256.
    @Test(arguments: ["PS384", "HS256"])
    func endSessionAcceptsAHintOfTheClientsAlgorithm(_ algorithm: String) async throws {
        let issuer = try await Self.issuer(clientAlgorithm: algorithm)
        let (query, browser) = try await Flow.signInAndConsent(issuer)
        let tokens = try Flow.json(try await Flow.exchange(issuer, code: try #require(query["code"])))
        let hint = try #require(tokens["id_token"]?.stringValue)
        // Re-signed with another secret: not this issuer's.
        let parts = hint.split(separator: ".")
        let forged = parts[0] + "." + parts[1] + "." + Base64URL.encode(Array(repeating: 7, count: 32))
        let refused = await Flow.get(
            issuer,
            "/oauth2/end_session?" + FormURLEncoding.encode([("id_token_hint", String(forged))]),
            browser: browser
        )
        #expect(refused.head.status == .badRequest)
        let signedOut = await Flow.get(
            issuer,
            "/oauth2/end_session?" + FormURLEncoding.encode([("id_token_hint", hint)]),
            browser: browser
        )
        #expect(!String(decoding: signedOut.body, as: UTF8.self).contains("Sign out?"), "no confirmation asked")
        let again = await Flow.get(issuer, Flow.authorizePath(), browser: browser)
        #expect(again.head.status == .ok, "signed out: the sign-in form again")
    }

    @Test func anHS256HintOfADynamicallyRegisteredClientAsksFirst() async throws {
        let store = MemoryIssuerStore()
        let issuer = try await Self.issuer(clientAlgorithm: "HS256", store: store)
        var client = try #require(try await store.client(id: "@team/web"))
        client.registeredDynamically = true
        try await store.saveClient(client)
        let (query, browser) = try await Flow.signInAndConsent(issuer)
        let tokens = try Flow.json(try await Flow.exchange(issuer, code: try #require(query["code"])))
        let hint = try #require(tokens["id_token"]?.stringValue)
        let asked = await Flow.get(
            issuer,
            "/oauth2/end_session?" + FormURLEncoding.encode([("id_token_hint", hint)]),
            browser: browser
        )
        #expect(asked.head.status == .badRequest, "not taken as this issuer's hint")
        let again = await Flow.get(issuer, Flow.authorizePath(), browser: browser)
        #expect(again.head.status == .found, "still signed in: anyone's registered client could mint that hint")
    }

    @Test func aKeyAClientRegisteredOutsideTheConfigurationUsesDoesNotRetire() async throws {
        let store = MemoryIssuerStore()
        _ = try await KeyRing.load(from: store, algorithm: .rs256, others: [.ps384], now: 1_800_000_000)
        // The configuration names RS256 only; a registered client signs with PS384.
        let ring = try await KeyRing.load(from: store, algorithm: .rs256, now: 1_800_000_000)
        let timing = KeyRing.Timing(jwksMaxAge: 300, tokenLifetime: 3600)
        try await ring.advance(store: store, timing: timing, now: 1_800_000_001, alsoInUse: [.ps384])
        #expect(ring.snapshot.activeByAlgorithm[.ps384] != nil)
        try await ring.advance(store: store, timing: timing, now: 1_800_000_002)
        #expect(ring.snapshot.activeByAlgorithm[.ps384] == nil, "unused by anyone: it retires")
    }

    @Test func anHS256HintForAClientThatDoesNotUseHS256IsRefused() async throws {
        let issuer = try await Self.issuer(clientAlgorithm: nil)
        let header = Base64URL.encode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = Base64URL.encode(Array(#"{"iss":"https://idp.test","aud":"@team/web","sub":"ada"}"#.utf8))
        let key = SymmetricKey(data: Array(Flow.webSecret.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array((header + "." + payload).utf8), using: key)
        let token = header + "." + payload + "." + Base64URL.encode(Array(mac))
        let answer = await Flow.get(issuer, "/oauth2/end_session?" + FormURLEncoding.encode([("id_token_hint", token)]))
        #expect(answer.head.status == .badRequest, "signed with the client's secret, but it never asked for HS256")
    }

    @Test(arguments: [
        ("store_client_secret: hashed", "HS256", "stored hashed"),
        ("store_client_secret: plain", "HS512", "at least 64 bytes"),
        ("store_client_secret: plain", "HS999", "expected RS256"),
    ])
    func symmetricIDTokensNeedASecretKeptPlainAndLongEnough(store: String, algorithm: String, reason: String) throws {
        do {
            _ = try LocalIssuerConfigurationTests.parse(
                """
                  issuer: https://idp.example
                  \(store)
                  clients:
                    - client_id: app
                      type: web
                      client_secret_env: LONG
                      redirect_uris: [https://app.example/cb]
                      id_token_signed_response_alg: \(algorithm)

                """
            )
            Issue.record("accepted \(algorithm) with \(store)")
        } catch {
            #expect(error.field == "issuer.clients[0].id_token_signed_response_alg", "\(error)")
            #expect(error.line == 9 && "\(error)".contains(reason), "\(error)")
        }
        #expect(throws: ConfigurationError.self) {
            try LocalIssuerConfigurationTests.parse("  issuer: https://idp.example\n  signing_algorithm: HS256\n")
        }
    }

    @Test func registrationTakesAnIDTokenAlgorithmTheIssuerHolds() async throws {
        let store = MemoryIssuerStore()
        let keys = try await KeyRing.load(from: store, algorithm: .rs256, others: [.ps384], now: 1_800_000_000)
        var options = IssuerOptions(issuer: "https://idp.test")
        options.enableDynamicRegistration = true
        let open = OAuthIssuer(options: options, store: store, keys: keys)
        func register(_ algorithm: String) async throws -> IssuerResponse {
            var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: "/oauth2/register")
            request.headerFields[.contentType] = "application/json"
            let body = JSONValue.object([
                "redirect_uris": .array([.string("https://rp.example/cb")]),
                "id_token_signed_response_alg": .string(algorithm),
            ])
            return await open.handle(request, body: Array(body.serialized().utf8))
        }
        let ps384 = try await register("PS384")
        #expect(ps384.head.status == .created)
        #expect(try Flow.json(ps384)["id_token_signed_response_alg"] == .string("PS384"))
        for refused in ["ES384", "HS256", "none"] {
            let answer = try await register(refused)
            #expect(answer.head.status == .badRequest, "\(refused)")
            #expect(try Flow.json(answer)["error"] == .string("invalid_client_metadata"))
        }
    }
}

enum SHA384Digest {
    static func of(_ text: String) -> [UInt8] { Array(SHA384.hash(data: Array(text.utf8))) }
}
