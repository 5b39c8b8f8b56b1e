/// A token whose signature (or introspection) and claims have been checked for one issuer.
///
/// This is what caches hold: claims, never a verdict for a route. Every request re-checks
/// `expiresAt` and its own route's scopes and conditions.
public struct VerifiedToken: Sendable, Equatable {
    public let issuerName: String
    public let claims: JSONValue
    public let subject: String?
    /// The granted scopes, compactly (`scopes` lists them).
    public let scopeSet: ScopeSet
    /// `exp` in seconds since 1970; introspection results without `exp` use their cache deadline.
    public let expiresAt: Double
    /// Tolerated clock skew for `expiresAt`.
    public let leeway: Double
    /// The claim set as base64url JSON: the token's own payload segment for a JWT.
    public let encodedClaims: String
    /// The forwarded claims' header values, when computed at verification (`ClaimProjection`);
    /// `claims` then need not hold those claims.
    public let claimHeaders: ClaimHeaderValues?
    /// The grant the token came from (`grant_id`, set by Tollgate's issuer), for the revoked
    /// grants check of an issuer in the same process.
    public let grantID: String?
    /// `jti:` and the token's `jti`: the name its own revocation is known by, for the same check.
    public let tokenRevocationKey: String?

    public init(
        issuerName: String,
        claims: JSONValue,
        subject: String?,
        scopes: [String],
        expiresAt: Double,
        leeway: Double,
        encodedClaims: String
    ) {
        self.issuerName = issuerName
        self.claims = claims
        self.subject = subject
        self.scopeSet = ScopeSet(scopes)
        self.expiresAt = expiresAt
        self.leeway = leeway
        self.encodedClaims = encodedClaims
        self.claimHeaders = nil
        self.grantID = claims["grant_id"]?.stringValue
        self.tokenRevocationKey = claims["grant_id"] == nil ? nil : claims["jti"]?.stringValue.map { "jti:" + $0 }
    }

    private init(
        _ token: VerifiedToken,
        claims: JSONValue,
        encodedClaims: String,
        claimHeaders: ClaimHeaderValues?
    ) {
        issuerName = token.issuerName
        self.claims = claims
        subject = token.subject
        scopeSet = token.scopeSet
        expiresAt = token.expiresAt
        leeway = token.leeway
        self.encodedClaims = encodedClaims
        self.claimHeaders = claimHeaders
        grantID = token.grantID
        tokenRevocationKey = token.tokenRevocationKey
    }

    public var scopes: [String] { Array(scopeSet) }

    /// The token keeping only the claims `projection` names, with the claim headers computed.
    public func projected(_ projection: ClaimProjection) -> VerifiedToken {
        VerifiedToken(
            self,
            claims: projection.project(claims),
            encodedClaims: projection.keepsEncodedClaims ? encodedClaims : "",
            claimHeaders: projection.forward.map { ClaimHeaderValues($0, claims: claims) }
        )
    }

    public func isExpired(at now: Double) -> Bool {
        expiresAt + leeway <= now
    }
}
