import Crypto
import TollgateCore
import _CryptoExtras

/// A private key the issuer signs with, and its public JWK. RS256 (RSA 2048) by default; ES256
/// and EdDSA (Ed25519, RFC 8037) are selectable. The `kid` is the RFC 7638 thumbprint of the public key.
public struct SigningKey: Sendable {
    enum Material: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    public enum Algorithm: String, Sendable, CaseIterable {
        case rs256 = "RS256"
        case es256 = "ES256"
        case eddsa = "EdDSA"
    }

    let material: Material
    public let algorithm: Algorithm
    public let keyID: String
    /// The public JWK members, without `kid`, `alg` and `use`.
    let publicMembers: [String: JSONValue]

    /// A new key.
    public static func generate(_ algorithm: Algorithm) throws -> SigningKey {
        switch algorithm {
        case .rs256: try SigningKey(material: .rsa(_RSA.Signing.PrivateKey(keySize: .bits2048)))
        case .es256: try SigningKey(material: .p256(P256.Signing.PrivateKey()))
        case .eddsa: try SigningKey(material: .ed25519(Curve25519.Signing.PrivateKey()))
        }
    }

    /// A key read back from storage (PKCS#8 or PKCS#1 DER; for Ed25519 the 32-byte seed).
    public init(algorithm: Algorithm, der: [UInt8]) throws {
        switch algorithm {
        case .rs256: try self.init(material: .rsa(_RSA.Signing.PrivateKey(derRepresentation: der)))
        case .es256: try self.init(material: .p256(P256.Signing.PrivateKey(derRepresentation: der)))
        case .eddsa: try self.init(material: .ed25519(Curve25519.Signing.PrivateKey(rawRepresentation: der)))
        }
    }

    init(material: Material) throws {
        self.material = material
        switch material {
        case .rsa(let key):
            algorithm = .rs256
            let primitives = try key.publicKey.getKeyPrimitives()
            publicMembers = [
                "kty": .string("RSA"),
                "n": .string(Base64URL.encode(Array(primitives.modulus))),
                "e": .string(Base64URL.encode(Array(primitives.publicExponent))),
            ]
        case .p256(let key):
            algorithm = .es256
            let point = Array(key.publicKey.x963Representation)
            publicMembers = [
                "kty": .string("EC"),
                "crv": .string("P-256"),
                "x": .string(Base64URL.encode(point[1..<33])),
                "y": .string(Base64URL.encode(point[33...])),
            ]
        case .ed25519(let key):
            algorithm = .eddsa
            publicMembers = [
                "kty": .string("OKP"),
                "crv": .string("Ed25519"),
                "x": .string(Base64URL.encode(Array(key.publicKey.rawRepresentation))),
            ]
        }
        keyID = Self.thumbprint(publicMembers)
    }

    /// RFC 7638: SHA-256 of the required public members in lexicographic order without
    /// whitespace — exactly what `serialized()` writes — as base64url.
    public static func thumbprint(_ requiredMembers: [String: JSONValue]) -> String {
        let input = JSONValue.object(requiredMembers).serialized()
        return Base64URL.encode(Array(SHA256.hash(data: Array(input.utf8))))
    }

    public var privateKeyDER: [UInt8] {
        switch material {
        case .rsa(let key): Array(key.derRepresentation)
        case .p256(let key): Array(key.derRepresentation)
        case .ed25519(let key): Array(key.rawRepresentation)
        }
    }

    /// The public JWK as published in the JWKS.
    public var publicJWK: JSONValue {
        var members = publicMembers
        members["kid"] = .string(keyID)
        members["alg"] = .string(algorithm.rawValue)
        members["use"] = .string("sig")
        return .object(members)
    }

    /// A compact JWS of `claims` with this key (`typ` in the header when given).
    public func sign(claims: JSONValue, type: String? = nil) throws -> String {
        var header: [String: JSONValue] = ["alg": .string(algorithm.rawValue), "kid": .string(keyID)]
        if let type { header["typ"] = .string(type) }
        let input =
            Base64URL.encode(Array(JSONValue.object(header).serialized().utf8)) + "."
            + Base64URL.encode(Array(claims.serialized().utf8))
        let signature: [UInt8]
        switch material {
        case .rsa(let key):
            let digest = SHA256.hash(data: Array(input.utf8))
            signature = Array(try key.signature(for: digest, padding: .insecurePKCS1v1_5).rawRepresentation)
        case .p256(let key):
            signature = Array(try key.signature(for: SHA256.hash(data: Array(input.utf8))).rawRepresentation)
        case .ed25519(let key): signature = Array(try key.signature(for: Array(input.utf8)))
        }
        return input + "." + Base64URL.encode(signature)
    }
}
