/// Where an issuer's verification keys come from: a fetched or configured key set (`JWKSCache`),
/// or an issuer running in the same process, which hands its published keys over directly.
public protocol VerificationKeySource: AnyObject, Sendable {
    /// The key set to verify with; `nil` while nothing usable is loaded. Called per request:
    /// it must be cheap and must not block.
    func currentKeys() -> JSONWebKeySet?
    /// A token named a `kid` not in the set: fetch again if that is allowed now. Returns whether
    /// the set may have changed.
    func refreshForUnknownKey() async -> Bool
    /// Whether a first key set is there (readiness).
    var isReady: Bool { get }
}

/// Where the state of an opaque token comes from: RFC 7662 introspection over HTTP
/// (`IntrospectionClient`), or an issuer in the same process, which looks in its own store.
public protocol IntrospectionSource: AnyObject, Sendable {
    /// An answer known without waiting (a cache), if any.
    func cachedOutcome(for digest: TokenDigest) -> Result<VerifiedToken, VerificationFailure>?
    /// The token's claims when it is active; never a pass when the answer could not be had.
    func introspect(_ token: String, digest: TokenDigest) async -> Result<VerifiedToken, VerificationFailure>
}

/// Which grants an issuer has revoked, for JWT access tokens that carry their grant
/// (`grant_id`): an issuer in the same process knows, so its gate refuses such a token at once
/// instead of at its `exp`. Called per request for tokens with a grant: cheap, never blocking.
public protocol GrantRevocationSource: AnyObject, Sendable {
    func isRevoked(grantID: String) -> Bool
}

extension JWKSCache: VerificationKeySource {}
extension IntrospectionClient: IntrospectionSource {}

/// Everything needed to check tokens of one trusted issuer.
public struct IssuerVerifier: Sendable {
    public let policy: IssuerPolicy
    /// Keys for JWTs, configured HMAC secrets included; `nil` for an issuer whose tokens are only
    /// introspected.
    public let keys: (any VerificationKeySource)?
    /// The state of opaque tokens.
    public let introspection: (any IntrospectionSource)?
    /// The revoked grants, when the issuer runs in this process.
    public let revocations: (any GrantRevocationSource)?
    let jwsVerifier: JWSVerifier

    public init(
        policy: IssuerPolicy,
        keys: (any VerificationKeySource)?,
        introspection: (any IntrospectionSource)? = nil,
        revocations: (any GrantRevocationSource)? = nil
    ) {
        self.policy = policy
        self.keys = keys
        self.introspection = introspection
        self.revocations = revocations
        self.jwsVerifier = JWSVerifier(allowedAlgorithms: policy.algorithms)
    }

    /// The key cache, when the keys come from a key set (refresh schedule, fetch counts).
    public var jwks: JWKSCache? { keys as? JWKSCache }

    /// The HTTP introspection client, when opaque tokens are introspected over HTTP.
    public var introspectionClient: IntrospectionClient? { introspection as? IntrospectionClient }

    /// The key set to verify with; `nil` when nothing usable is loaded.
    func keySet() -> JSONWebKeySet? {
        keys?.currentKeys()
    }
}
