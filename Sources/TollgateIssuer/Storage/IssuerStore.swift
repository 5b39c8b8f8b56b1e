/// Everything the issuer keeps, behind one protocol: in memory (tests), SQLite (the embedded
/// default) or PostgreSQL (several replicas). Every method is one transaction.
public protocol IssuerStore: Sendable {
    func client(id: String) async throws -> RegisteredClient?
    func saveClient(_ client: RegisteredClient) async throws
    func clients() async throws -> [RegisteredClient]
    /// Marks the client revoked and revokes every token and refresh token issued to it, and
    /// every grant they belong to (`revokedGrants`, as revoked at `now`), in one transaction;
    /// `false` when there is no such client.
    func revokeClient(id: String, now: Int) async throws -> Bool

    func signingKeys() async throws -> [StoredSigningKey]
    func saveSigningKey(_ key: StoredSigningKey) async throws
    func deleteSigningKey(keyID: String) async throws

    func saveToken(_ token: TokenRecord) async throws
    func token(digest: String) async throws -> TokenRecord?
    /// Marks the token revoked; `false` when there is none under `digest`.
    @discardableResult
    func revokeToken(digest: String) async throws -> Bool
    /// Deletes what expired before `now` (the sweeper), and forgets the retry answers of
    /// refresh tokens spent before `answersSpentBefore`; returns how many records went.
    func deleteExpired(before now: Int, answersSpentBefore: Int) async throws -> Int
    /// Releases the store's connections; nothing may be called after it.
    func close() async throws

    func user(username: String) async throws -> IssuerUser?
    func saveUser(_ user: IssuerUser) async throws

    func saveSession(_ session: LoginSession) async throws
    func session(digest: String) async throws -> LoginSession?
    func deleteSession(digest: String) async throws

    func savePendingAuthorization(_ pending: PendingAuthorization) async throws
    func pendingAuthorization(id: String) async throws -> PendingAuthorization?
    func deletePendingAuthorization(id: String) async throws

    /// Remembered consent of `username` for `clientID`: the scopes granted so far.
    func consentedScopes(username: String, clientID: String) async throws -> Set<String>
    func saveConsent(username: String, clientID: String, scopes: Set<String>) async throws

    func saveCode(_ code: AuthorizationCodeRecord) async throws
    /// Redeems the code under `digest` in one transaction: `accept` (the client, redirect URI
    /// and PKCE checks) decides on the unredeemed record before anything changes, so a request
    /// that fails them does not spend the code. A second redemption is a replay: the code's
    /// grant is revoked (`revokeGrant`, until `grantUntil`) in the same transaction.
    func redeemCode(
        digest: String,
        now: Int,
        grantUntil: Int,
        accept: @Sendable (AuthorizationCodeRecord) -> Bool
    ) async throws -> CodeRedemption

    func saveRefreshToken(_ token: RefreshTokenRecord) async throws
    /// The refresh token under `digest`, revoked when its grant is.
    func refreshToken(digest: String) async throws -> RefreshTokenRecord?
    /// Exchanges the refresh token `digest` for `successor`, in one transaction, as a
    /// compare-and-set on the token being unspent: exactly one of any number of concurrent
    /// calls rotates. The winner keeps `answer` (sealed for the presented token's holder, see
    /// `RetryAnswer`) until `reuseInterval` seconds after the spend; a retry by `clientID`
    /// within that window gets it back. Any other reuse revokes the whole grant (remembered
    /// until `grantUntil`).
    func rotateRefreshToken(
        digest: String,
        clientID: String,
        successor: RefreshTokenRecord,
        answer: String?,
        now: Int,
        reuseInterval: Int,
        grantUntil: Int
    ) async throws -> RefreshRotation

    /// Revokes a grant: every token and refresh token stamped with `grantID`, now and later
    /// (a token of the grant saved after this call is revoked too), in one transaction. The
    /// grant is remembered until `until` (its last token's expiry) for `revokedGrants(since:)`.
    func revokeGrant(_ grantID: String, until: Int, now: Int) async throws
    /// The grants revoked at or after `since` and not yet past their `until`: what every
    /// replica's gate refuses.
    func revokedGrants(since: Int, now: Int) async throws -> [RevokedGrant]

    /// Counts one event under `key` (failed sign-ins of an account or from an address, wrong
    /// user codes, registrations) and returns the count: the count restarts at 1 when the
    /// previous one expired. One transaction, so replicas share the count.
    func countEvent(key: String, now: Int, expiresAt: Int) async throws -> EventCount
    /// The live count under `key`, if any.
    func eventCount(key: String, now: Int) async throws -> EventCount?
    func resetEvents(key: String) async throws
    /// Takes one event back under `key` (an attempt counted before it ran, which succeeded).
    func uncountEvent(key: String) async throws

    /// Stores a new device authorization; `false` (and nothing stored) when its user code is
    /// already taken, so a collision can never point a live code at another device.
    func saveDeviceAuthorization(_ record: DeviceAuthorizationRecord) async throws -> Bool
    /// The device authorization whose (normalised) user code is `userCode`.
    func deviceAuthorization(userCode: String) async throws -> DeviceAuthorizationRecord?
    /// Settles a pending device authorization: approved by `username`, or denied when it is
    /// `nil`. `false` when it is no longer pending (decided, expired or unknown).
    func decideDeviceAuthorization(
        userCode: String,
        username: String?,
        authenticatedAt: Int,
        now: Int
    ) async throws -> Bool
    /// One poll by `clientID`, in one transaction: returns the record as it was before and stores
    /// `record.polled(at: now)`, so of concurrent polls of an approved code exactly one sees it
    /// approved. `nil` when there is none under `digest` for this client.
    /// `accept` decides first: a poll it refuses (a resource never authorised) changes nothing.
    func pollDeviceAuthorization(
        digest: String,
        clientID: String,
        now: Int,
        accept: @Sendable (DeviceAuthorizationRecord) -> Bool
    ) async throws -> DeviceAuthorizationRecord?
}

/// A signing key at rest: the private key's PKCS#8 DER, and where it is in its rotation.
public struct StoredSigningKey: Sendable, Equatable, Codable {
    public enum Stage: String, Sendable, Codable {
        /// Published, not yet signing.
        case next
        case active
        /// Published until the last token it signed has expired.
        case retired
    }

    /// The RFC 7638 thumbprint.
    public var keyID: String
    public var algorithm: String
    public var privateKeyDER: [UInt8]
    public var stage: Stage
    /// Unix seconds.
    public var createdAt: Int
    /// When it may start signing (`next`), or when it may be dropped (`retired`).
    public var stageUntil: Int?

    public init(
        keyID: String,
        algorithm: String,
        privateKeyDER: [UInt8],
        stage: Stage,
        createdAt: Int,
        stageUntil: Int? = nil
    ) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.privateKeyDER = privateKeyDER
        self.stage = stage
        self.createdAt = createdAt
        self.stageUntil = stageUntil
    }
}

/// What a code redemption found.
public enum CodeRedemption: Sendable, Equatable {
    /// No code under the digest.
    case unknown
    /// The checks refused the request; the code is untouched.
    case refused(AuthorizationCodeRecord)
    /// This call spent the code.
    case redeemed(AuthorizationCodeRecord)
    /// It was spent before: its grant is now revoked.
    case replayed(AuthorizationCodeRecord)
}

/// A revoked grant, remembered until its last token expires.
public struct RevokedGrant: Sendable, Equatable, Hashable {
    public var grantID: String
    public var revokedAt: Int
    public var until: Int

    public init(grantID: String, revokedAt: Int, until: Int) {
        self.grantID = grantID
        self.revokedAt = revokedAt
        self.until = until
    }
}

/// A count of events under one key, and when the last one happened.
public struct EventCount: Sendable, Equatable {
    public var count: Int
    public var last: Int

    public init(count: Int, last: Int) {
        self.count = count
        self.last = last
    }
}
