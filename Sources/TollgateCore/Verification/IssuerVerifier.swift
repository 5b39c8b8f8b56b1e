/// Everything needed to check tokens of one trusted issuer.
public struct IssuerVerifier: Sendable {
    public let policy: IssuerPolicy
    /// Public keys for JWTs; `nil` for an issuer whose tokens are only introspected.
    public let keys: JWKSCache?
    /// HMAC keys from configured secrets (only used when an HS* algorithm is allowed).
    public let hmacKeys: [VerificationKey]
    /// RFC 7662 introspection for opaque tokens.
    public let introspection: IntrospectionClient?
    let jwsVerifier: JWSVerifier

    public init(
        policy: IssuerPolicy,
        keys: JWKSCache?,
        hmacKeys: [VerificationKey] = [],
        introspection: IntrospectionClient? = nil
    ) {
        self.policy = policy
        self.keys = keys
        self.hmacKeys = hmacKeys
        self.introspection = introspection
        self.jwsVerifier = JWSVerifier(allowedAlgorithms: policy.algorithms)
    }

    /// The key set to verify with, HMAC secrets included; `nil` when nothing usable is loaded.
    func keySet() -> JSONWebKeySet? {
        if let keys {
            return keys.currentKeys()?.adding(hmacKeys)
        }
        return hmacKeys.isEmpty ? nil : JSONWebKeySet(keys: hmacKeys)
    }
}
