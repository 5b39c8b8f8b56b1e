/// Everything needed to check tokens of one trusted issuer.
public struct IssuerVerifier: Sendable {
    public let policy: IssuerPolicy
    /// Keys for JWTs, configured HMAC secrets included; `nil` for an issuer whose tokens are only
    /// introspected.
    public let keys: JWKSCache?
    /// RFC 7662 introspection for opaque tokens.
    public let introspection: IntrospectionClient?
    let jwsVerifier: JWSVerifier

    public init(policy: IssuerPolicy, keys: JWKSCache?, introspection: IntrospectionClient? = nil) {
        self.policy = policy
        self.keys = keys
        self.introspection = introspection
        self.jwsVerifier = JWSVerifier(allowedAlgorithms: policy.algorithms)
    }

    /// The key set to verify with; `nil` when nothing usable is loaded.
    func keySet() -> JSONWebKeySet? {
        keys?.currentKeys()
    }
}
