import Crypto
import TollgateCore
import _CryptoExtras

/// A private key the issuer signs with, and its public JWK: every asymmetric algorithm of RFC
/// 7518 and EdDSA (RFC 8037). RS256 (RSA 2048) by default. A key serves exactly one algorithm
/// (RFC 8725 §3.1), which its JWK names in `alg`; the `kid` is the RFC 7638 thumbprint of the
/// public key.
public struct SigningKey: Sendable {
    enum Material: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case p521(P521.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    public enum Algorithm: String, Sendable, CaseIterable, Comparable {
        case rs256 = "RS256"
        case rs384 = "RS384"
        case rs512 = "RS512"
        case ps256 = "PS256"
        case ps384 = "PS384"
        case ps512 = "PS512"
        case es256 = "ES256"
        case es384 = "ES384"
        case es512 = "ES512"
        case eddsa = "EdDSA"

        public static func < (lhs: Algorithm, rhs: Algorithm) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }

        /// The SHA-2 size (256, 384 or 512) of its signature; 512 for Ed25519, as `at_hash` takes it.
        var hashSize: Int {
            switch self {
            case .rs256, .ps256, .es256: 256
            case .rs384, .ps384, .es384: 384
            case .rs512, .ps512, .es512, .eddsa: 512
            }
        }
    }

    let material: Material
    public let algorithm: Algorithm
    public let keyID: String
    /// The public JWK members, without `kid`, `alg` and `use`.
    let publicMembers: [String: JSONValue]

    /// A new key.
    public static func generate(_ algorithm: Algorithm) throws -> SigningKey {
        switch algorithm {
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512:
            try SigningKey(material: .rsa(_RSA.Signing.PrivateKey(keySize: .bits2048)), algorithm: algorithm)
        case .es256: try SigningKey(material: .p256(P256.Signing.PrivateKey()), algorithm: algorithm)
        case .es384: try SigningKey(material: .p384(P384.Signing.PrivateKey()), algorithm: algorithm)
        case .es512: try SigningKey(material: .p521(P521.Signing.PrivateKey()), algorithm: algorithm)
        case .eddsa: try SigningKey(material: .ed25519(Curve25519.Signing.PrivateKey()), algorithm: algorithm)
        }
    }

    /// A key read back from storage (PKCS#8 or PKCS#1 DER; for Ed25519 the 32-byte seed).
    public init(algorithm: Algorithm, der: [UInt8]) throws {
        switch algorithm {
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512:
            try self.init(material: .rsa(_RSA.Signing.PrivateKey(derRepresentation: der)), algorithm: algorithm)
        case .es256:
            try self.init(material: .p256(P256.Signing.PrivateKey(derRepresentation: der)), algorithm: algorithm)
        case .es384:
            try self.init(material: .p384(P384.Signing.PrivateKey(derRepresentation: der)), algorithm: algorithm)
        case .es512:
            try self.init(material: .p521(P521.Signing.PrivateKey(derRepresentation: der)), algorithm: algorithm)
        case .eddsa:
            try self.init(
                material: .ed25519(Curve25519.Signing.PrivateKey(rawRepresentation: der)),
                algorithm: algorithm
            )
        }
    }

    init(material: Material, algorithm: Algorithm) throws {
        self.material = material
        self.algorithm = algorithm
        func curve(_ name: String, _ point: [UInt8]) -> [String: JSONValue] {
            let size = (point.count - 1) / 2
            return [
                "kty": .string("EC"),
                "crv": .string(name),
                "x": .string(Base64URL.encode(point[1..<(1 + size)])),
                "y": .string(Base64URL.encode(point[(1 + size)...])),
            ]
        }
        switch material {
        case .rsa(let key):
            let primitives = try key.publicKey.getKeyPrimitives()
            publicMembers = [
                "kty": .string("RSA"),
                "n": .string(Base64URL.encode(Array(primitives.modulus))),
                "e": .string(Base64URL.encode(Array(primitives.publicExponent))),
            ]
        case .p256(let key): publicMembers = curve("P-256", Array(key.publicKey.x963Representation))
        case .p384(let key): publicMembers = curve("P-384", Array(key.publicKey.x963Representation))
        case .p521(let key): publicMembers = curve("P-521", Array(key.publicKey.x963Representation))
        case .ed25519(let key):
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
        case .p384(let key): Array(key.derRepresentation)
        case .p521(let key): Array(key.derRepresentation)
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
        let bytes = Array(input.utf8)
        let signature: [UInt8]
        switch (material, algorithm) {
        case (.rsa(let key), .rs256): signature = try Self.rsa(key, SHA256.hash(data: bytes), .insecurePKCS1v1_5)
        case (.rsa(let key), .rs384): signature = try Self.rsa(key, SHA384.hash(data: bytes), .insecurePKCS1v1_5)
        case (.rsa(let key), .rs512): signature = try Self.rsa(key, SHA512.hash(data: bytes), .insecurePKCS1v1_5)
        // RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash (swift-crypto's PSS).
        case (.rsa(let key), .ps256): signature = try Self.rsa(key, SHA256.hash(data: bytes), .PSS)
        case (.rsa(let key), .ps384): signature = try Self.rsa(key, SHA384.hash(data: bytes), .PSS)
        case (.rsa(let key), .ps512): signature = try Self.rsa(key, SHA512.hash(data: bytes), .PSS)
        case (.p256(let key), _): signature = Array(try key.signature(for: SHA256.hash(data: bytes)).rawRepresentation)
        case (.p384(let key), _): signature = Array(try key.signature(for: SHA384.hash(data: bytes)).rawRepresentation)
        case (.p521(let key), _): signature = Array(try key.signature(for: SHA512.hash(data: bytes)).rawRepresentation)
        case (.ed25519(let key), _): signature = Array(try key.signature(for: bytes))
        case (.rsa, _): throw SigningKeyError.mismatch
        }
        return input + "." + Base64URL.encode(signature)
    }

    private static func rsa(
        _ key: _RSA.Signing.PrivateKey,
        _ digest: some Digest,
        _ padding: _RSA.Signing.Padding
    ) throws -> [UInt8] {
        Array(try key.signature(for: digest, padding: padding).rawRepresentation)
    }
}

enum SigningKeyError: Error {
    /// A stored key whose material does not fit its algorithm.
    case mismatch
}
