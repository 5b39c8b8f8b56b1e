/// The JWS `alg` values Tollgate verifies (RFC 7518 §3, RFC 8037, RFC 9864). `none` is not one.
public enum JWSAlgorithm: String, Sendable, CaseIterable, Hashable {
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
    case ed25519 = "Ed25519"
    case hs256 = "HS256"
    case hs384 = "HS384"
    case hs512 = "HS512"

    /// The kind of key an algorithm needs; a key of any other kind is refused before any math.
    public enum KeyFamily: Sendable, Equatable {
        case rsa
        case ellipticCurve(String)
        case edwards
        case symmetric
    }

    public var keyFamily: KeyFamily {
        switch self {
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512: .rsa
        case .es256: .ellipticCurve("P-256")
        case .es384: .ellipticCurve("P-384")
        case .es512: .ellipticCurve("P-521")
        case .eddsa, .ed25519: .edwards
        case .hs256, .hs384, .hs512: .symmetric
        }
    }

    public var isSymmetric: Bool { keyFamily == .symmetric }

    /// Whether a JWK that names `keyAlgorithm` may verify a token whose header names `self`.
    /// Only the two spellings of Ed25519 (the polymorphic `EdDSA` and RFC 9864's `Ed25519`) are
    /// interchangeable, because for an Ed25519 key they are the same computation.
    func isCompatible(withKeyAlgorithm keyAlgorithm: JWSAlgorithm) -> Bool {
        if keyAlgorithm == self { return true }
        return keyFamily == .edwards && keyAlgorithm.keyFamily == .edwards
    }
}
