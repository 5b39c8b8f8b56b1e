/// A person who can sign in: the built-in authenticator's users.
public struct IssuerUser: Sendable, Equatable {
    public var username: String
    /// `scrypt$N$r$p$salt$hash` (`PasswordHash`); never the password.
    public var passwordHash: String
    /// Profile claims (`name`, `email`, …) released by scope.
    public var claims: [String: String]

    public init(username: String, passwordHash: String, claims: [String: String] = [:]) {
        self.username = username
        self.passwordHash = passwordHash
        self.claims = claims
    }
}

/// A signed-in browser: the session cookie names it.
public struct LoginSession: Sendable, Equatable {
    /// base64url SHA-256 of the cookie value.
    public var digest: String
    public var username: String
    /// Unix seconds.
    public var authenticatedAt: Int
    public var expiresAt: Int
}

/// An authorization request waiting for the person (login, then consent).
public struct PendingAuthorization: Sendable, Equatable {
    public var id: String
    /// The form's anti-forgery token.
    public var csrfToken: String
    public var clientID: String
    public var redirectURI: String
    public var scopes: [String]
    public var state: String?
    public var nonce: String?
    public var codeChallenge: String?
    public var resource: String?
    public var maxAge: Int?
    public var prompt: Set<String>
    public var loginHint: String?
    /// Set once the person signed in for this request.
    public var username: String?
    public var authenticatedAt: Int?
    public var expiresAt: Int
}

/// An issued authorization code, stored by digest, single use.
public struct AuthorizationCodeRecord: Sendable, Equatable {
    public var digest: String
    public var clientID: String
    public var redirectURI: String
    public var username: String
    public var scopes: [String]
    public var nonce: String?
    public var codeChallenge: String?
    public var resource: String?
    public var authenticatedAt: Int
    public var expiresAt: Int
    /// Set on redemption; a second redemption is a replay.
    public var redeemed: Bool
    /// What the redemption issued, to revoke on replay (token digests, and the refresh family).
    public var issuedTokenDigests: [String]
    public var familyID: String?
}

/// A refresh token's place in its family (one authorization). Rotation moves a family forward
/// one generation in one transaction; see `IssuerStore.rotateRefreshToken`.
public struct RefreshTokenRecord: Sendable, Equatable {
    public var digest: String
    public var familyID: String
    public var generation: Int
    public var clientID: String
    public var username: String
    public var scopes: [String]
    public var resource: String?
    public var authenticatedAt: Int
    public var expiresAt: Int
    /// When it was exchanged for its successor.
    public var spentAt: Int?
    /// The answer its exchange produced, kept only for the grace window so a client that lost
    /// it can get it again.
    public var successorAnswer: String?
    /// The digest of the token it was exchanged for.
    public var successorDigest: String?
    public var revoked: Bool
}

/// What a rotation attempt found.
public enum RefreshRotation: Sendable, Equatable {
    /// This call won: the successor is stored.
    case rotated
    /// The same client retried a token spent within the grace window, whose successor is still
    /// unused: the answer already given.
    case replayWithinGrace(String)
    /// Spent earlier, revoked, expired, unknown or another client's: the family is revoked
    /// (when there is one) and the grant refused.
    case refused(familyRevoked: Bool)
}
