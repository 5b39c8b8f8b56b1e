import Crypto
import Foundation
import Testing
import _CryptoExtras

@testable import TollgateCore

/// Every row is a token an attacker (or a broken issuer) could present; each must fail, and for
/// its own reason.
@Suite struct HostileTokenTests {
    static let now: Double = 1_800_000_000

    struct Row: CustomTestStringConvertible, Sendable {
        let name: String
        let expected: VerificationFailure.Code
        let token: @Sendable () -> String
        var testDescription: String { name }
    }

    static let keys = TestKeys.shared

    static func header(_ alg: String, kid: String? = "rsa-1", _ extra: [String: Any] = [:]) -> [String: Any] {
        var header: [String: Any] = ["alg": alg, "typ": "at+jwt"]
        if let kid { header["kid"] = kid }
        header.merge(extra) { $1 }
        return header
    }

    static func unsigned(_ alg: String) -> String {
        TestTokens.encode(["alg": alg]) + "." + TestTokens.encode(TestTokens.claims(now: now)) + "."
    }

    static let rows: [Row] = [
        Row(name: "alg none", expected: .unsecuredToken) { unsigned("none") },
        Row(name: "alg NONE", expected: .unsecuredToken) { unsigned("NONE") },
        Row(name: "HS256 keyed with the RSA public key (alg confusion)", expected: .algorithmNotAllowed) {
            let pem = Array(keys.rsa.publicKey.pemRepresentation.utf8)
            return TestTokens.mint(header: header("HS256"), claims: TestTokens.claims(now: now), signer: .hmac(pem))
        },
        Row(name: "stripped signature", expected: .malformedToken) {
            let token = TestTokens.rs256(now: now)
            return String(token[...token.lastIndex(of: ".")!])
        },
        Row(name: "another key under the same kid", expected: .signatureInvalid) {
            TestTokens.mint(header: header("RS256"), claims: TestTokens.claims(now: now), signer: .rsa(keys.otherRSA))
        },
        Row(name: "unknown kid", expected: .unknownKey) {
            TestTokens.rs256(now: now, kid: "not-published")
        },
        Row(name: "RSA kid with ES256", expected: .keyTypeMismatch) {
            TestTokens.mint(header: header("ES256"), claims: TestTokens.claims(now: now), signer: .p256(keys.p256))
        },
        Row(name: "JWK alg PS256 used with RS256", expected: .keyAlgorithmMismatch) {
            TestTokens.rs256(now: now, kid: "rsa-ps")
        },
        Row(name: "use: enc key", expected: .keyUseMismatch) {
            TestTokens.rs256(now: now, kid: "rsa-enc")
        },
        Row(name: "DER-encoded ECDSA signature", expected: .signatureEncoding) {
            let input =
                TestTokens.encode(header("ES256", kid: "ec-1")) + "." + TestTokens.encode(TestTokens.claims(now: now))
            let der = try! keys.p256.signature(for: SHA256.hash(data: Array(input.utf8))).derRepresentation
            return input + "." + Base64URL.encode(Array(der))
        },
        Row(name: "expired past the leeway", expected: .expired) {
            TestTokens.rs256(now: now, ["exp": Int(now) - 31])
        },
        Row(name: "nbf in the future", expected: .notYetValid) {
            TestTokens.rs256(now: now, ["nbf": Int(now) + 60])
        },
        Row(name: "missing exp", expected: .missingExpiration) {
            TestTokens.rs256(now: now, ["exp": nil])
        },
        Row(name: "string exp", expected: .invalidExpiration) {
            TestTokens.rs256(now: now, ["exp": "\(Int(now) + 600)"])
        },
        Row(name: "wrong iss", expected: .untrustedIssuer) {
            TestTokens.rs256(now: now, ["iss": "https://evil.example.com/team"])
        },
        Row(name: "trailing-slash iss", expected: .untrustedIssuer) {
            TestTokens.rs256(now: now, ["iss": TestTokens.issuer + "/"])
        },
        Row(name: "wrong aud", expected: .audienceMismatch) {
            TestTokens.rs256(now: now, ["aud": "@team/elsewhere"])
        },
        Row(name: "unknown crit", expected: .unsupportedCriticalHeader) {
            TestTokens.mint(
                header: header("RS256", ["crit": ["x-tenant"], "x-tenant": "a"]),
                claims: TestTokens.claims(now: now),
                signer: .rsa(keys.rsa)
            )
        },
        Row(name: "jku pointing to another key set", expected: .signatureInvalid) {
            TestTokens.mint(
                header: header("RS256", ["jku": "https://evil.example.com/jwks.json"]),
                claims: TestTokens.claims(now: now),
                signer: .rsa(keys.otherRSA)
            )
        },
        Row(name: "embedded jwk", expected: .signatureInvalid) {
            TestTokens.mint(
                header: header("RS256", ["jwk": TestKeys.rsaJWK(keys.otherRSA.publicKey, kid: "rsa-1")]),
                claims: TestTokens.claims(now: now),
                signer: .rsa(keys.otherRSA)
            )
        },
        Row(name: "five-part JWE", expected: .encryptedToken) {
            TestTokens.encode(["alg": "RSA-OAEP", "enc": "A256GCM", "kid": "rsa-1"]) + ".ZW5j.aXY.Y2lwaGVy.dGFn"
        },
        Row(name: "non-JSON payload", expected: .malformedClaims) {
            let input = TestTokens.encode(header("RS256")) + "." + Base64URL.encode(Array("hello".utf8))
            let signature = try! TestSigner.rsa(keys.rsa).sign(Array(input.utf8), algorithm: "RS256")
            return input + "." + Base64URL.encode(signature)
        },
        Row(name: "100 KB token", expected: .tokenTooLarge) {
            TestTokens.rs256(now: now, ["padding": String(repeating: "A", count: 100_000)])
        },
        Row(name: "duplicate alg member in the header", expected: .malformedToken) {
            let head = Base64URL.encode(Array(#"{"alg":"RS256","kid":"rsa-1","alg":"none"}"#.utf8))
            return head + "." + TestTokens.encode(TestTokens.claims(now: now)) + ".c2ln"
        },
    ]

    @Test(arguments: rows)
    func hostileTokenIsRefusedForItsOwnReason(_ row: Row) async {
        let verifier = TestTokens.verifier(now: { Self.now })
        let result = await verifier.verify(row.token())
        guard case .failure(let failure) = result else {
            Issue.record("\(row.name) was accepted")
            return
        }
        #expect(failure.code == row.expected, "\(row.name): \(failure)")
    }

    @Test func theSameTokensVerifyWhenHonest() async {
        let verifier = TestTokens.verifier(now: { Self.now })
        let result = await verifier.verify(TestTokens.rs256(now: Self.now))
        #expect(throws: Never.self) { try result.get() }
        let ec = TestTokens.mint(
            header: Self.header("ES256", kid: "ec-1"),
            claims: TestTokens.claims(now: Self.now),
            signer: .p256(Self.keys.p256)
        )
        #expect((try? await verifier.verify(ec).get())?.subject == "user-42")
        let ed = TestTokens.mint(
            header: Self.header("EdDSA", kid: "ed-1"),
            claims: TestTokens.claims(now: Self.now),
            signer: .ed25519(Self.keys.ed25519)
        )
        #expect((try? await verifier.verify(ed).get())?.subject == "user-42")
        let ps = TestTokens.mint(
            header: Self.header("PS256", kid: "rsa-ps"),
            claims: TestTokens.claims(now: Self.now),
            signer: .rsa(Self.keys.rsa)
        )
        #expect((try? await verifier.verify(ps).get())?.subject == "user-42")
    }

    @Test func hmacConfusionIsAKeyTypeMismatchEvenWhenHS256IsAllowed() async {
        let policy = TestTokens.policy(algorithms: [.rs256, .hs256])
        let keys = JWKSCache(
            issuerName: "main",
            source: .fixed(JSONWebKeySetBox(TestKeys.shared.keySet)),
            additionalKeys: [.hmac(secret: Array("a-configured-secret-of-32-bytes-or-more".utf8), keyID: "hmac")],
            client: nil,
            now: { Self.now }
        )
        let issuer = IssuerVerifier(policy: policy, keys: keys)
        let verifier = TokenVerifier(issuers: [issuer], now: { Self.now })
        let pem = Array(Self.keys.rsa.publicKey.pemRepresentation.utf8)
        let token = TestTokens.mint(
            header: Self.header("HS256"),
            claims: TestTokens.claims(now: Self.now),
            signer: .hmac(pem)
        )
        let result = await verifier.verify(token)
        #expect(result.failureCode == .keyTypeMismatch)
    }
}

extension Result where Failure == VerificationFailure {
    var failureCode: VerificationFailure.Code? {
        if case .failure(let failure) = self { return failure.code }
        return nil
    }
}
