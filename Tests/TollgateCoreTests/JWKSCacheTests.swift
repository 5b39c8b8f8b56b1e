import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TollgateTestSupport

@testable import TollgateCore

/// The key cache against a real HTTP server on 127.0.0.1.
@Suite(.serialized) struct JWKSCacheTests {
    /// One client for the whole run, as in production (it lives as long as the process).
    /// Its read timeout is long: the test server answers from a task, which waits for a free
    /// thread while the whole suite starts on two cores.
    static let sharedClient = OutboundHTTP.makeClient(readTimeout: .seconds(30))
    var client: HTTPClient { Self.sharedClient }
    let clock = ManualClock()

    func withServer(
        _ handler: @escaping TestHTTPServer.Handler,
        _ body: (TestHTTPServer) async throws -> Void
    ) async throws {
        try await TestHTTPServer.serving(handler, body)
    }

    func cache(_ url: String, policy: KeySetRefreshPolicy = KeySetRefreshPolicy()) -> JWKSCache {
        JWKSCache(issuerName: "main", source: .jwksURI(url), policy: policy, client: client, now: clock.function)
    }

    func verifier(_ cache: JWKSCache) -> TokenVerifier {
        TokenVerifier(issuers: [IssuerVerifier(policy: TestTokens.policy(), keys: cache)], now: clock.function)
    }

    @Test func maxAgeIsHonouredWithinTheConfiguredBounds() async throws {
        let maxAge = NIOLockedValueBox("max-age=120")
        try await withServer({ _ in
            .json(TestKeys.shared.jwksJSON, headers: [("Cache-Control", maxAge.withLockedValue { $0 })])
        }) { server in
            var policy = KeySetRefreshPolicy()
            policy.minimumRefresh = 60
            policy.maximumRefresh = 3600
            let keys = cache(server.url("/jwks"), policy: policy)
            await keys.refresh()
            #expect(keys.nextRefreshAt == clock.now + 120)
            maxAge.withLockedValue { $0 = "public, max-age=5" }
            await keys.refresh()
            #expect(keys.nextRefreshAt == clock.now + 60, "clamped up to min_refresh")
            maxAge.withLockedValue { $0 = "max-age=999999" }
            await keys.refresh()
            #expect(keys.nextRefreshAt == clock.now + 3600, "clamped down to max_refresh")
        }
    }

    @Test func backgroundRefreshFetchesWhenTheDeadlineComes() async throws {
        try await withServer({ _ in .json(TestKeys.shared.jwksJSON, headers: [("Cache-Control", "max-age=0")]) }) {
            server in
            var policy = KeySetRefreshPolicy()
            policy.minimumRefresh = 0.05
            let keys = JWKSCache(
                issuerName: "main",
                source: .jwksURI(server.url("/jwks")),
                policy: policy,
                client: client
            )
            let task = Task { await keys.run() }
            for _ in 0..<200 where server.requestCount < 3 { try await Task.sleep(for: .milliseconds(20)) }
            task.cancel()
            await task.value
            #expect(server.requestCount >= 3)
            #expect(keys.isReady)
        }
    }

    @Test func aRotatedKeyIsPickedUpOnUnknownKid() async throws {
        let rotated = NIOLockedValueBox(false)
        let newKey = P256Keys()
        try await withServer({ _ in
            rotated.withLockedValue { $0 } ? .json(newKey.jwks) : .json(TestKeys.shared.jwksJSON)
        }) { server in
            let keys = cache(server.url("/jwks"))
            let verifier = verifier(keys)
            await keys.refresh()
            rotated.withLockedValue { $0 = true }
            clock.advance(by: 31)
            let token = newKey.token(now: clock.now)
            let result = await verifier.verify(token)
            #expect((try? result.get())?.subject == "user-42")
            #expect(server.requestCount == 2)
        }
    }

    @Test func concurrentUnknownKidsCauseOneFetchPerCooldown() async throws {
        try await withServer({ _ in
            try? await Task.sleep(for: .milliseconds(100))
            return .json(TestKeys.shared.jwksJSON)
        }) { server in
            let keys = cache(server.url("/jwks"))
            let verifier = verifier(keys)
            await keys.refresh()
            clock.advance(by: 31)
            let token = TestTokens.rs256(now: clock.now, kid: "never-published")
            let codes = await withTaskGroup(of: VerificationFailure.Code?.self) { group in
                for _ in 0..<100 { group.addTask { await verifier.verify(token).failureCode } }
                return await group.reduce(into: [VerificationFailure.Code?]()) { $0.append($1) }
            }
            #expect(codes.allSatisfy { $0 == .unknownKey })
            #expect(server.requestCount == 2, "the initial load and one shared refetch")
            for _ in 0..<20 { _ = await verifier.verify(token) }
            #expect(server.requestCount == 2, "still cooling down")
            clock.advance(by: 31)
            _ = await verifier.verify(token)
            #expect(server.requestCount == 3, "one more after the cool-down")
        }
    }

    @Test func staleKeysKeepVerifyingWhileTheServerFailsUntilMaxStale() async throws {
        let failing = NIOLockedValueBox(false)
        try await withServer({ _ in
            failing.withLockedValue { $0 } ? .json("{}", status: 500) : .json(TestKeys.shared.jwksJSON)
        }) { server in
            var policy = KeySetRefreshPolicy()
            policy.maximumStale = 3600
            let keys = cache(server.url("/jwks"), policy: policy)
            let verifier = verifier(keys)
            await keys.refresh()
            failing.withLockedValue { $0 = true }
            clock.advance(by: 600)
            await keys.refresh()
            #expect(keys.lastError?.contains("500") == true)
            verifier.cache.removeAll()
            #expect((try? await verifier.verify(TestTokens.rs256(now: clock.now)).get()) != nil)
            clock.advance(by: 3001)
            verifier.cache.removeAll()
            #expect(await verifier.verify(TestTokens.rs256(now: clock.now)).failureCode == .keysUnavailable)
        }
    }

    @Test func readinessIsFalseUntilTheFirstLoad() async throws {
        let available = NIOLockedValueBox(false)
        try await withServer({ _ in
            available.withLockedValue { $0 } ? .json(TestKeys.shared.jwksJSON) : .json("nope", status: 503)
        }) { server in
            let keys = cache(server.url("/jwks"))
            let verifier = verifier(keys)
            #expect(!verifier.isReady)
            await keys.refresh()
            #expect(!verifier.isReady)
            #expect(await verifier.verify(TestTokens.rs256(now: clock.now)).failureCode == .keysUnavailable)
            available.withLockedValue { $0 = true }
            clock.advance(by: 31)
            await keys.refresh()
            #expect(verifier.isReady)
        }
    }

    @Test func oneBadKeyDoesNotDropTheOthers() async throws {
        let document = """
            {"keys":[
              {"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"},
              {"kty":"EC","crv":"secp256k1","kid":"k1","x":"AA","y":"AA"},
              {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
              {"kty":"RSA","kid":"weird-alg","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"},
              \(TestKeys.shared.jwksJSON.dropFirst("{\"keys\":[".count).dropLast(2))
            ]}
            """
        try await withServer({ _ in .json(document) }) { server in
            let keys = cache(server.url("/jwks"))
            await keys.refresh()
            let loaded = try #require(keys.currentKeys())
            #expect(loaded.skipped.map(\.keyID) == ["short", "k1", "sym", "weird-alg"])
            #expect(loaded.keys.count == 5)
            #expect((try? await verifier(keys).verify(TestTokens.rs256(now: clock.now)).get()) != nil)
        }
    }

    @Test func discoveryFindsTheJWKSAndChecksTheIssuer() async throws {
        let port = NIOLockedValueBox(0)
        try await withServer({ request in
            if request.uri == "/team/.well-known/openid-configuration" {
                let base = "http://127.0.0.1:\(port.withLockedValue { $0 })"
                return .json(#"{"issuer":"\#(base)/team","jwks_uri":"\#(base)/team/jwks"}"#)
            }
            return .json(TestKeys.shared.jwksJSON)
        }) { server in
            port.withLockedValue { $0 = server.port }
            let good = JWKSCache(
                issuerName: "main",
                source: .discovery(issuer: server.url("/team")),
                client: client,
                now: clock.function
            )
            await good.refresh()
            #expect(good.isReady)
            let mismatched = JWKSCache(
                issuerName: "other",
                source: .discovery(issuer: server.url("/team/")),
                client: client,
                now: clock.function
            )
            await mismatched.refresh()
            #expect(!mismatched.isReady)
            #expect(mismatched.lastError?.contains("different issuer") == true)
        }
    }

    @Test func plainHTTPIsRefusedForNonLoopbackHosts() {
        #expect(OutboundHTTP.checkScheme(of: "http://idp.example.com/jwks", allowInsecureHTTP: false) != nil)
        #expect(OutboundHTTP.checkScheme(of: "http://127.0.0.1:8080/jwks", allowInsecureHTTP: false) == nil)
        #expect(OutboundHTTP.checkScheme(of: "http://[::1]:8080/jwks", allowInsecureHTTP: false) == nil)
        #expect(OutboundHTTP.checkScheme(of: "http://localhost/jwks", allowInsecureHTTP: false) == nil)
        #expect(OutboundHTTP.checkScheme(of: "http://127.0.0.1.evil.com/jwks", allowInsecureHTTP: false) != nil)
        #expect(OutboundHTTP.checkScheme(of: "http://idp.example.com/jwks", allowInsecureHTTP: true) == nil)
        #expect(OutboundHTTP.checkScheme(of: "https://idp.example.com/jwks", allowInsecureHTTP: false) == nil)
        #expect(OutboundHTTP.checkScheme(of: "file:///etc/passwd", allowInsecureHTTP: true) != nil)
    }
}

/// A fresh EC key published under a new `kid`, as after a rotation.
struct P256Keys {
    let key = P256Signing()

    var jwks: String {
        let jwk = TestKeys.p256JWK(key.privateKey.publicKey, kid: "rotated-1")
        let data = try! JSONSerialization.data(withJSONObject: ["keys": [jwk]])
        return String(decoding: data, as: UTF8.self)
    }

    func token(now: Double) -> String {
        TestTokens.mint(
            header: ["alg": "ES256", "kid": "rotated-1"],
            claims: TestTokens.claims(now: now),
            signer: .p256(key.privateKey)
        )
    }
}
