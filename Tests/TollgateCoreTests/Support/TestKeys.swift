import Crypto
import Foundation
import _CryptoExtras

@testable import TollgateCore

/// Private keys for tests, with their public JWKs, and a minter for hand-shaped tokens.
enum TestSigner {
    case rsa(_RSA.Signing.PrivateKey)
    case p256(P256.Signing.PrivateKey)
    case ed25519(Curve25519.Signing.PrivateKey)
    case hmac([UInt8])

    func sign(_ input: [UInt8], algorithm: String) throws -> [UInt8] {
        switch (self, algorithm) {
        case (.rsa(let key), "RS256"):
            return Array(
                try key.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation
            )
        case (.rsa(let key), "PS256"):
            return Array(try key.signature(for: SHA256.hash(data: input), padding: .PSS).rawRepresentation)
        case (.p256(let key), _):
            return Array(try key.signature(for: SHA256.hash(data: input)).rawRepresentation)
        case (.ed25519(let key), _):
            return Array(try key.signature(for: input))
        case (.hmac(let secret), _):
            return Array(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: secret)))
        default:
            fatalError("no test signer for \(algorithm)")
        }
    }
}

struct TestKeys: Sendable {
    static let shared = TestKeys()

    let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    let otherRSA = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    let p256 = P256.Signing.PrivateKey()
    let ed25519 = Curve25519.Signing.PrivateKey()

    static func rsaJWK(_ key: _RSA.Signing.PublicKey, kid: String, extra: [String: String] = [:]) -> [String: String] {
        let primitives = try! key.getKeyPrimitives()
        var jwk = [
            "kty": "RSA", "kid": kid,
            "n": Base64URL.encode(Array(primitives.modulus)),
            "e": Base64URL.encode(Array(primitives.publicExponent)),
        ]
        jwk.merge(extra) { $1 }
        return jwk
    }

    static func p256JWK(_ key: P256.Signing.PublicKey, kid: String) -> [String: String] {
        let point = Array(key.x963Representation)
        return [
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": Base64URL.encode(point[1..<33]), "y": Base64URL.encode(point[33...]),
        ]
    }

    static func ed25519JWK(_ key: Curve25519.Signing.PublicKey, kid: String) -> [String: String] {
        ["kty": "OKP", "crv": "Ed25519", "kid": kid, "x": Base64URL.encode(Array(key.rawRepresentation))]
    }

    /// The key set the tests' issuer publishes: RSA `rsa-1`, a PS256-only RSA key, an EC key, an
    /// Ed25519 key and an encryption key.
    var jwksJSON: String {
        let keys: [[String: String]] = [
            Self.rsaJWK(rsa.publicKey, kid: "rsa-1", extra: ["use": "sig"]),
            Self.rsaJWK(rsa.publicKey, kid: "rsa-ps", extra: ["alg": "PS256"]),
            Self.rsaJWK(rsa.publicKey, kid: "rsa-enc", extra: ["use": "enc"]),
            Self.p256JWK(p256.publicKey, kid: "ec-1"),
            Self.ed25519JWK(ed25519.publicKey, kid: "ed-1"),
        ]
        let data = try! JSONSerialization.data(withJSONObject: ["keys": keys], options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    var keySet: JSONWebKeySet { try! JSONWebKeySet.parse(Array(jwksJSON.utf8)) }
}

enum TestTokens {
    static let issuer = "https://idp.example.com/team"
    static let audience = "@team/api"

    static func claims(now: Double, _ changes: [String: Any?] = [:]) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": issuer, "aud": [audience], "sub": "user-42", "exp": Int(now) + 600, "iat": Int(now) - 5,
            "scope": "@team/orders.read openid",
        ]
        for (key, value) in changes {
            if let value { claims[key] = value } else { claims[key] = nil }
        }
        return claims
    }

    static func encode(_ object: [String: Any]) -> String {
        Base64URL.encode(Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
    }

    /// A compact JWS signed by `signer` over exactly the given header and claims.
    static func mint(header: [String: Any], claims: [String: Any], signer: TestSigner) -> String {
        let input = encode(header) + "." + encode(claims)
        let signature = try! signer.sign(Array(input.utf8), algorithm: header["alg"] as? String ?? "RS256")
        return input + "." + Base64URL.encode(signature)
    }

    static func rs256(now: Double, kid: String = "rsa-1", _ changes: [String: Any?] = [:]) -> String {
        mint(
            header: ["alg": "RS256", "kid": kid, "typ": "at+jwt"],
            claims: claims(now: now, changes),
            signer: .rsa(TestKeys.shared.rsa)
        )
    }

    static func policy(algorithms: Set<JWSAlgorithm> = [.rs256, .ps256, .es256, .eddsa, .ed25519]) -> IssuerPolicy {
        IssuerPolicy(name: "main", issuer: issuer, audiences: [audience], algorithms: algorithms)
    }

    static func verifier(
        keySet: JSONWebKeySet = TestKeys.shared.keySet,
        policy: IssuerPolicy = TestTokens.policy(),
        now: @escaping @Sendable () -> Double
    ) -> TokenVerifier {
        let keys = JWKSCache(issuerName: policy.name, source: .fixed(JSONWebKeySetBox(keySet)), client: nil, now: now)
        return TokenVerifier(issuers: [IssuerVerifier(policy: policy, keys: keys)], now: now)
    }
}

struct P256Signing: Sendable {
    let privateKey = P256.Signing.PrivateKey()
}
