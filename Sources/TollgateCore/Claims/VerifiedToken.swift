/// A token whose signature (or introspection) and claims have been checked for one issuer.
///
/// This is what caches hold: claims, never a verdict for a route. Every request re-checks
/// `expiresAt` and its own route's scopes and conditions.
public struct VerifiedToken: Sendable, Equatable {
    public let issuerName: String
    public let claims: JSONValue
    public let subject: String?
    public let scopes: [String]
    /// `exp` in seconds since 1970; introspection results without `exp` use their cache deadline.
    public let expiresAt: Double
    /// Tolerated clock skew for `expiresAt`.
    public let leeway: Double
    /// The claim set as base64url JSON: the token's own payload segment for a JWT.
    public let encodedClaims: String

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
        self.scopes = scopes
        self.expiresAt = expiresAt
        self.leeway = leeway
        self.encodedClaims = encodedClaims
    }

    /// The token keeping only the claims `projection` names.
    public func projected(_ projection: ClaimProjection) -> VerifiedToken {
        VerifiedToken(
            issuerName: issuerName,
            claims: projection.project(claims),
            subject: subject,
            scopes: scopes,
            expiresAt: expiresAt,
            leeway: leeway,
            encodedClaims: projection.keepsEncodedClaims ? encodedClaims : ""
        )
    }

    public func isExpired(at now: Double) -> Bool {
        expiresAt + leeway <= now
    }
}
