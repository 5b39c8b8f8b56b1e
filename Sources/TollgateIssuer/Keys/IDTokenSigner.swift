import Crypto
import TollgateCore

/// What signs a client's ID tokens: a key of the ring of the algorithm the client registered
/// (`id_token_signed_response_alg`, RFC 7591 / OpenID Connect Registration §2), or for HS256,
/// HS384 and HS512 the client's own secret as the HMAC key (OpenID Connect Core §10.1), which
/// exists only when the secret is stored plain.
enum IDTokenSigner {
    case key(SigningKey)
    case secret([UInt8], bits: Int)

    /// The symmetric algorithms and the bits of their hash, which is also the least key size
    /// (RFC 7518 §3.2).
    static let symmetric: [String: Int] = ["HS256": 256, "HS384": 384, "HS512": 512]

    var algorithm: String {
        switch self {
        case .key(let key): key.algorithm.rawValue
        case .secret(_, let bits): "HS\(bits)"
        }
    }

    /// The SHA-2 size of `at_hash` and `c_hash`.
    var hashSize: Int {
        switch self {
        case .key(let key): key.algorithm.hashSize
        case .secret(_, let bits): bits
        }
    }

    func sign(claims: JSONValue, type: String) throws -> String {
        switch self {
        case .key(let key):
            return try key.sign(claims: claims, type: type)
        case .secret(let secret, let bits):
            let header: JSONValue = .object(["alg": .string(algorithm), "typ": .string(type)])
            let input =
                Base64URL.encode(Array(header.serialized().utf8)) + "."
                + Base64URL.encode(Array(claims.serialized().utf8))
            let key = SymmetricKey(data: secret)
            let mac: [UInt8]
            switch bits {
            case 384: mac = Array(HMAC<SHA384>.authenticationCode(for: Array(input.utf8), using: key))
            case 512: mac = Array(HMAC<SHA512>.authenticationCode(for: Array(input.utf8), using: key))
            default: mac = Array(HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: key))
            }
            return input + "." + Base64URL.encode(mac)
        }
    }

    /// Why `client` cannot have `algorithm`'s ID tokens, or nil when it can: an HS algorithm
    /// needs a confidential client whose secret is kept plain and is at least as long as the
    /// hash.
    static func refusal(algorithm: String, secret: StoredSecret?) -> String? {
        guard let bits = symmetric[algorithm] else { return nil }
        guard let secret else { return "a public client has no secret to sign \(algorithm) ID tokens with" }
        guard secret.form == .plain else {
            return "\(algorithm) ID tokens are signed with the client's secret, which is stored hashed; "
                + "set store_client_secret: plain or choose an asymmetric algorithm"
        }
        guard secret.value.count * 8 >= bits else {
            return "\(algorithm) needs a client secret of at least \(bits / 8) bytes (RFC 7518 §3.2)"
        }
        return nil
    }
}

extension OAuthIssuer {
    /// The signer of `client`'s ID tokens: its registered algorithm's, else the issuer's key.
    func idTokenSigner(for client: RegisteredClient) throws -> IDTokenSigner {
        let snapshot = keys.snapshot
        guard let name = client.idTokenSignedResponseAlg else { return .key(snapshot.active) }
        if let bits = IDTokenSigner.symmetric[name] {
            guard IDTokenSigner.refusal(algorithm: name, secret: client.secret) == nil, let secret = client.secret
            else { throw IssuerError(.serverError, "the client's ID token algorithm cannot be used with its secret") }
            return .secret(secret.value, bits: bits)
        }
        guard let algorithm = SigningKey.Algorithm(rawValue: name), let key = snapshot.activeByAlgorithm[algorithm]
        else {
            throw IssuerError(.serverError, "no active \(name) key for the client's ID tokens")
        }
        return .key(key)
    }
}
