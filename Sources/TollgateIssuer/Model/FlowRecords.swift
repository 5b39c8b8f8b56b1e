import TollgateCore

/// A person who can sign in: the built-in authenticator's users.
public struct IssuerUser: Sendable, Equatable, Codable {
    public var username: String
    /// `scrypt$N$r$p$salt$hash` (`PasswordHash`); never the password.
    public var passwordHash: String
    /// Claims (`name`, `email_verified`, `groups`, …) with their JSON types, released by scope.
    public var claims: [String: JSONValue]

    public init(username: String, passwordHash: String, claims: [String: JSONValue] = [:]) {
        self.username = username
        self.passwordHash = passwordHash
        self.claims = claims
    }
}

/// A signed-in browser: the session cookie names it.
public struct LoginSession: Sendable, Equatable, Codable {
    /// base64url SHA-256 of the cookie value.
    public var digest: String
    public var username: String
    /// Unix seconds.
    public var authenticatedAt: Int
    public var expiresAt: Int

    public init(
        digest: String,
        username: String,
        authenticatedAt: Int,
        expiresAt: Int
    ) {
        self.digest = digest
        self.username = username
        self.authenticatedAt = authenticatedAt
        self.expiresAt = expiresAt
    }
}

/// An authorization request waiting for the person (login, then consent).
public struct PendingAuthorization: Sendable, Equatable, Codable {
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
    /// Set when this is the confirmation of a device's user code rather than a redirect flow.
    public var deviceUserCode: String?
    public var expiresAt: Int
    /// The SHA-256 of the browser's pre-session cookie: the forms of this request are accepted
    /// only from the browser that loaded them (login CSRF).
    public var browser: String?
    /// `query` (`nil`) or `form_post`: how the answer goes back to the client.
    public var responseMode: String?
    /// RFC 9449 §10: `dpop_jkt` at the authorization endpoint; the code goes only to a proof
    /// by that key.
    public var dpopJKT: String?

    public init(
        id: String,
        csrfToken: String,
        clientID: String,
        redirectURI: String,
        scopes: [String],
        state: String? = nil,
        nonce: String? = nil,
        codeChallenge: String? = nil,
        resource: String? = nil,
        maxAge: Int? = nil,
        prompt: Set<String>,
        loginHint: String? = nil,
        username: String? = nil,
        authenticatedAt: Int? = nil,
        deviceUserCode: String? = nil,
        expiresAt: Int,
        browser: String? = nil,
        responseMode: String? = nil
    ) {
        self.browser = browser
        self.responseMode = responseMode
        self.id = id
        self.csrfToken = csrfToken
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.scopes = scopes
        self.state = state
        self.nonce = nonce
        self.codeChallenge = codeChallenge
        self.resource = resource
        self.maxAge = maxAge
        self.prompt = prompt
        self.loginHint = loginHint
        self.username = username
        self.authenticatedAt = authenticatedAt
        self.deviceUserCode = deviceUserCode
        self.expiresAt = expiresAt
    }
}

/// An issued authorization code, stored by digest, single use.
public struct AuthorizationCodeRecord: Sendable, Equatable, Codable {
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
    /// The grant: created with the code, stamped on every token its redemption issues, so a
    /// replay revokes them all (`nil` only for codes stored before grants existed).
    public var familyID: String?
    /// The code itself, kept only with `store_tokens: plain`.
    public var value: String?

    /// The key a proof must be made with to redeem it (`dpop_jkt`).
    public var dpopJKT: String?
    public init(
        digest: String,
        clientID: String,
        redirectURI: String,
        username: String,
        scopes: [String],
        nonce: String? = nil,
        codeChallenge: String? = nil,
        resource: String? = nil,
        authenticatedAt: Int,
        expiresAt: Int,
        redeemed: Bool,
        familyID: String? = nil
    ) {
        self.digest = digest
        self.clientID = clientID
        self.redirectURI = redirectURI
        self.username = username
        self.scopes = scopes
        self.nonce = nonce
        self.codeChallenge = codeChallenge
        self.resource = resource
        self.authenticatedAt = authenticatedAt
        self.expiresAt = expiresAt
        self.redeemed = redeemed
        self.familyID = familyID
    }
}

/// A refresh token's place in its family (one grant). Rotation moves a family forward one
/// generation in one transaction; see `IssuerStore.rotateRefreshToken`.
public struct RefreshTokenRecord: Sendable, Equatable, Codable {
    public var digest: String
    /// The grant it belongs to.
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
    /// The answer its exchange produced, sealed under a key derived from this token
    /// (`RetryAnswer`) and kept only for `refresh_token_reuse_interval`, so a client that lost
    /// it can get it again; never kept with strict rotation.
    public var successorAnswer: String?
    /// The digest of the token it was exchanged for.
    public var successorDigest: String?
    public var revoked: Bool
    /// The refresh token itself, kept only with `store_tokens: plain`.
    public var value: String?

    /// A public client's refresh token is bound to the key of the proof it was issued with
    /// (RFC 9449 §5): refreshed only with a proof by that key.
    public var dpopJKT: String?
    /// And to the client certificate it was issued over (RFC 8705 §4): refreshed only over it.
    public var certificateThumbprint: String?
    public init(
        digest: String,
        familyID: String,
        generation: Int,
        clientID: String,
        username: String,
        scopes: [String],
        resource: String? = nil,
        authenticatedAt: Int,
        expiresAt: Int,
        spentAt: Int? = nil,
        successorAnswer: String? = nil,
        successorDigest: String? = nil,
        revoked: Bool
    ) {
        self.digest = digest
        self.familyID = familyID
        self.generation = generation
        self.clientID = clientID
        self.username = username
        self.scopes = scopes
        self.resource = resource
        self.authenticatedAt = authenticatedAt
        self.expiresAt = expiresAt
        self.spentAt = spentAt
        self.successorAnswer = successorAnswer
        self.successorDigest = successorDigest
        self.revoked = revoked
    }
}

/// What a rotation attempt found.
public enum RefreshRotation: Sendable, Equatable {
    /// This call won: the successor is stored.
    case rotated
    /// The same client retried a token spent within the reuse interval, whose successor is
    /// still unused: the answer already given, sealed.
    case replayWithinGrace(String)
    /// Spent earlier, revoked, expired, unknown or another client's: the family is revoked
    /// (when there is one) and the grant refused.
    case refused(familyRevoked: Bool)
}

/// An RFC 8628 device authorization: the device polls with the device code (stored by digest)
/// while the person enters the user code on the verification page.
public struct DeviceAuthorizationRecord: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        case pending
        case approved
        case denied
        /// Approved and exchanged for tokens: the device code is spent.
        case redeemed
    }

    public var digest: String
    /// Normalised: upper-case letters only, no separator.
    public var userCode: String
    public var clientID: String
    public var scopes: [String]
    public var resource: String?
    /// Seconds the device must wait between polls; grows by 5 on each `slow_down`.
    public var interval: Int
    public var lastPolledAt: Int?
    public var status: Status
    public var username: String?
    public var authenticatedAt: Int?
    public var expiresAt: Int
    /// The grant its tokens will carry (`nil` only for records stored before grants existed).
    public var grantID: String?
    /// The device code itself, kept only with `store_tokens: plain`.
    public var value: String?

    public init(
        digest: String,
        userCode: String,
        clientID: String,
        scopes: [String],
        resource: String? = nil,
        interval: Int,
        lastPolledAt: Int? = nil,
        status: Status = .pending,
        username: String? = nil,
        authenticatedAt: Int? = nil,
        expiresAt: Int,
        grantID: String? = nil
    ) {
        self.grantID = grantID
        self.digest = digest
        self.userCode = userCode
        self.clientID = clientID
        self.scopes = scopes
        self.resource = resource
        self.interval = interval
        self.lastPolledAt = lastPolledAt
        self.status = status
        self.username = username
        self.authenticatedAt = authenticatedAt
        self.expiresAt = expiresAt
    }

    /// The person's decision at `now` (approved by `username`, or denied when it is `nil`), or
    /// `nil` when it is no longer pending (decided, expired): the rule every store applies in
    /// the transaction that reads the record.
    public func decided(by username: String?, authenticatedAt: Int, now: Int) -> DeviceAuthorizationRecord? {
        guard status == .pending, expiresAt > now else { return nil }
        var next = self
        next.status = username == nil ? .denied : .approved
        next.username = username
        next.authenticatedAt = authenticatedAt
        return next
    }

    /// What a poll does to the record at `now`: records the poll, lengthens the interval when it
    /// came too soon, and spends an approved authorization. The same rule in every store.
    public func polled(at now: Int) -> DeviceAuthorizationRecord {
        var next = self
        if status == .pending, let last = lastPolledAt, now - last < interval { next.interval += 5 }
        if status == .approved { next.status = .redeemed }
        next.lastPolledAt = now
        return next
    }
}
