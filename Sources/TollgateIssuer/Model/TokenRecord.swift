/// An issued access or refresh token as the store keeps it, under the SHA-256 of the token.
public struct TokenRecord: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case access
        case refresh
    }

    /// base64url SHA-256 of the token.
    public var digest: String
    public var kind: Kind
    public var clientID: String
    /// The user, or the client itself for `client_credentials`.
    public var subject: String
    public var scope: [String]
    public var audience: String?
    /// Unix seconds.
    public var issuedAt: Int
    public var expiresAt: Int
    public var revoked: Bool
    /// The JWT's `jti`, when the access token is a JWT.
    public var tokenID: String?
    /// Refresh tokens: the family (one authorization) and the position in it.
    public var familyID: String?
    /// The person it was issued for (`nil` for a client's own token), for userinfo.
    public var username: String?
    /// The token itself, kept only with `store_tokens: plain`.
    public var value: String?

    /// The key a DPoP-bound access token is bound to (RFC 9449 `cnf.jkt`): introspection says so,
    /// and userinfo takes the token only with a proof by that key.
    public var dpopJKT: String?
    /// The client certificate a certificate-bound access token is bound to (RFC 8705
    /// `cnf["x5t#S256"]`).
    public var certificateThumbprint: String?
    /// When the person signed in (`auth_time`), for introspection answers a gate's step-up
    /// rules read (RFC 9470).
    public var authenticatedAt: Int?
    public init(
        digest: String,
        kind: Kind,
        clientID: String,
        subject: String,
        scope: [String],
        audience: String?,
        issuedAt: Int,
        expiresAt: Int,
        revoked: Bool = false,
        tokenID: String? = nil,
        familyID: String? = nil,
        username: String? = nil
    ) {
        self.username = username
        self.digest = digest
        self.kind = kind
        self.clientID = clientID
        self.subject = subject
        self.scope = scope
        self.audience = audience
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.revoked = revoked
        self.tokenID = tokenID
        self.familyID = familyID
    }

    public func isActive(at now: Int) -> Bool { !revoked && now < expiresAt }
}
