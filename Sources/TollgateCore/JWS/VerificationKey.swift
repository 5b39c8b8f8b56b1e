import Crypto
import _CryptoExtras

/// A public (or, for HMAC, a configured secret) key that can check JWS signatures, with the JWK
/// metadata that limits what it may check.
public struct VerificationKey: Sendable {
    enum Material: Sendable {
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case p521(P521.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
        case hmac(SymmetricKey)

        var family: JWSAlgorithm.KeyFamily {
            switch self {
            case .rsa: .rsa
            case .p256: .ellipticCurve("P-256")
            case .p384: .ellipticCurve("P-384")
            case .p521: .ellipticCurve("P-521")
            case .ed25519: .edwards
            case .hmac: .symmetric
            }
        }
    }

    public let keyID: String?
    /// The JWK's own `alg`, if it names one: then it is the only algorithm this key verifies.
    public let algorithm: JWSAlgorithm?
    public let use: String?
    public let operations: [String]?
    let material: Material

    init(keyID: String?, algorithm: JWSAlgorithm?, use: String?, operations: [String]?, material: Material) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.use = use
        self.operations = operations
        self.material = material
    }

    /// An HMAC key from a configured secret (never from a fetched key set).
    public static func hmac(secret: [UInt8], keyID: String? = nil, algorithm: JWSAlgorithm? = nil) -> VerificationKey {
        VerificationKey(
            keyID: keyID,
            algorithm: algorithm,
            use: nil,
            operations: nil,
            material: .hmac(SymmetricKey(data: secret))
        )
    }

    var family: JWSAlgorithm.KeyFamily { material.family }

    /// Checks, in order, that this key may be used for `algorithm`: its type, then its own `alg`,
    /// then `use` and `key_ops`. Returns the failure for the first rule broken.
    func suitability(for algorithm: JWSAlgorithm) -> VerificationFailure? {
        if family != algorithm.keyFamily {
            return VerificationFailure(.keyTypeMismatch, "the key's type does not fit \(algorithm.rawValue)")
        }
        if let own = self.algorithm, !algorithm.isCompatible(withKeyAlgorithm: own) {
            return VerificationFailure(
                .keyAlgorithmMismatch,
                "the key is for \(own.rawValue), the token says \(algorithm.rawValue)"
            )
        }
        if let use, use != "sig" {
            return VerificationFailure(.keyUseMismatch, "the key's use is '\(use)', not 'sig'")
        }
        if let operations, !operations.contains("verify") {
            return VerificationFailure(.keyUseMismatch, "the key's key_ops do not include 'verify'")
        }
        return nil
    }

    /// The signature check itself. ECDSA signatures must be the JOSE fixed-width R‖S form.
    func isValidSignature(
        _ signature: [UInt8],
        for signingInput: UnsafeRawBufferPointer,
        algorithm: JWSAlgorithm
    )
        -> Result<Void, VerificationFailure>
    {
        let valid: Bool
        switch (material, algorithm) {
        case (.rsa(let key), .rs256):
            valid = key.isValidSignature(
                .init(rawRepresentation: signature),
                for: SHA256.hash(data: signingInput),
                padding: .insecurePKCS1v1_5
            )
        case (.rsa(let key), .rs384):
            valid = key.isValidSignature(
                .init(rawRepresentation: signature),
                for: SHA384.hash(data: signingInput),
                padding: .insecurePKCS1v1_5
            )
        case (.rsa(let key), .rs512):
            valid = key.isValidSignature(
                .init(rawRepresentation: signature),
                for: SHA512.hash(data: signingInput),
                padding: .insecurePKCS1v1_5
            )
        case (.rsa(let key), .ps256):
            valid = key.isValidSignature(
                .init(rawRepresentation: signature),
                for: SHA256.hash(data: signingInput),
                padding: .PSS
            )
        case (.rsa(let key), .ps384):
            valid = key.isValidSignature(
                .init(rawRepresentation: signature),
                for: SHA384.hash(data: signingInput),
                padding: .PSS
            )
        case (.rsa(let key), .ps512):
            valid = key.isValidSignature(
                .init(rawRepresentation: signature),
                for: SHA512.hash(data: signingInput),
                padding: .PSS
            )
        case (.p256(let key), .es256):
            guard signature.count == 64, let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else {
                return .failure(Self.ecdsaEncodingFailure(expected: 64, got: signature.count))
            }
            valid = key.isValidSignature(parsed, for: SHA256.hash(data: signingInput))
        case (.p384(let key), .es384):
            guard signature.count == 96, let parsed = try? P384.Signing.ECDSASignature(rawRepresentation: signature)
            else {
                return .failure(Self.ecdsaEncodingFailure(expected: 96, got: signature.count))
            }
            valid = key.isValidSignature(parsed, for: SHA384.hash(data: signingInput))
        case (.p521(let key), .es512):
            guard signature.count == 132, let parsed = try? P521.Signing.ECDSASignature(rawRepresentation: signature)
            else {
                return .failure(Self.ecdsaEncodingFailure(expected: 132, got: signature.count))
            }
            valid = key.isValidSignature(parsed, for: SHA512.hash(data: signingInput))
        case (.ed25519(let key), .eddsa), (.ed25519(let key), .ed25519):
            guard signature.count == 64 else {
                return .failure(VerificationFailure(.signatureEncoding, "an Ed25519 signature is 64 bytes"))
            }
            valid = key.isValidSignature(signature, for: signingInput)
        case (.hmac(let key), .hs256):
            valid = HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key)
        case (.hmac(let key), .hs384):
            valid = HMAC<SHA384>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key)
        case (.hmac(let key), .hs512):
            valid = HMAC<SHA512>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key)
        default:
            return .failure(VerificationFailure(.keyTypeMismatch, "the key's type does not fit \(algorithm.rawValue)"))
        }
        return valid ? .success(()) : .failure(VerificationFailure(.signatureInvalid, "the signature does not verify"))
    }

    private static func ecdsaEncodingFailure(expected: Int, got: Int) -> VerificationFailure {
        VerificationFailure(
            .signatureEncoding,
            "an ECDSA signature must be the \(expected)-byte R‖S form (RFC 7518 §3.4), got \(got) bytes"
        )
    }
}

extension VerificationKey {
    /// The key's public material and metadata as text, to tell two keys apart (never logged:
    /// for HMAC keys it is a digest of the secret, not the secret).
    var materialDescription: String {
        let bytes: [UInt8]
        switch material {
        case .rsa(let key): bytes = Array(key.derRepresentation)
        case .p256(let key): bytes = Array(key.x963Representation)
        case .p384(let key): bytes = Array(key.x963Representation)
        case .p521(let key): bytes = Array(key.x963Representation)
        case .ed25519(let key): bytes = Array(key.rawRepresentation)
        case .hmac(let key): bytes = key.withUnsafeBytes { Array(SHA256.hash(data: $0)) }
        }
        let metadata = [keyID ?? "", algorithm?.rawValue ?? "", use ?? "", operations?.joined(separator: ",") ?? ""]
        return metadata.joined(separator: "|") + "|" + Base64URL.encode(bytes)
    }
}
