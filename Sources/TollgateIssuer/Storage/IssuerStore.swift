/// Everything the issuer keeps, behind one protocol: in memory (tests, the demo without a file)
/// or SQL (SQLite, the embedded default, or PostgreSQL, several replicas).
///
/// A store offers records read and written one statement at a time, and a transaction with a
/// few primitives (`IssuerTransaction`: find and put a record, insert a new one, spend a refresh
/// token as a compare-and-set, revoke by grant) — and nothing of the rules. The rules that need
/// a transaction (redeem a code, rotate a refresh token, save, decide and poll a device
/// authorization, record consent, revoke a client) are written once, in `StoreRules.swift`,
/// over those primitives and `GrantRules`.
public protocol IssuerStore: Sendable {
    /// Runs `body` as one transaction: all of it or none of it, and single-winner against any
    /// other transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: row locks taken by `find`).
    func transaction<T: Sendable>(_ body: @Sendable (any IssuerTransaction) async throws -> T) async throws -> T

    func client(id: String) async throws -> RegisteredClient?
    func saveClient(_ client: RegisteredClient) async throws
    func clients() async throws -> [RegisteredClient]

    func signingKeys() async throws -> [StoredSigningKey]
    func saveSigningKey(_ key: StoredSigningKey) async throws
    func deleteSigningKey(keyID: String) async throws

    func saveToken(_ token: TokenRecord) async throws
    /// The token under `digest`, revoked when its grant is.
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

    func saveCode(_ code: AuthorizationCodeRecord) async throws

    func saveRefreshToken(_ token: RefreshTokenRecord) async throws
    /// The refresh token under `digest`, revoked when its grant is.
    func refreshToken(digest: String) async throws -> RefreshTokenRecord?

    /// The grants revoked at or after `since` and not yet past their `until`: what every
    /// replica's gate refuses.
    func revokedGrants(since: Int, now: Int) async throws -> [RevokedGrant]

    /// Counts one event under `key` (sign-in attempts of an account or from an address, user
    /// code entries, registrations) and returns the count: the count restarts at 1 when the
    /// previous one expired. One statement, so concurrent counts and replicas share it.
    func countEvent(key: String, now: Int, expiresAt: Int) async throws -> EventCount
    /// The live count under `key`, if any.
    func eventCount(key: String, now: Int) async throws -> EventCount?
    func resetEvents(key: String) async throws
    /// Takes one event back under `key` (an attempt counted before it ran, which succeeded).
    func uncountEvent(key: String) async throws
}

/// The kinds of record a transaction finds and puts.
public enum RecordKind: String, Sendable {
    case client
    case code
    case device
    /// A user code, naming its device authorization's digest.
    case userCode = "user_code"
}

/// The primitives of one transaction. A record found is locked until the transaction ends.
public protocol IssuerTransaction: Sendable {
    func find<T: Decodable & Sendable>(_ type: T.Type, _ kind: RecordKind, _ key: String) async throws -> T?
    func put<T: Encodable & Sendable>(_ value: T, _ kind: RecordKind, _ key: String, expiresAt: Int?) async throws
    /// Stores `value` unless something is under `key` already; `false` then, and nothing stored.
    func insertNew<T: Encodable & Sendable>(
        _ value: T,
        _ kind: RecordKind,
        _ key: String,
        expiresAt: Int?
    )
        async throws -> Bool

    /// The consent of `username` for `clientID`, locked.
    func consent(username: String, clientID: String) async throws -> Set<String>?
    func putConsent(username: String, clientID: String, scopes: Set<String>) async throws

    /// The refresh token under `digest` with its spend, its retry answer and whether its grant
    /// is revoked, and whether its successor has been spent since.
    func refreshToken(digest: String) async throws -> (token: RefreshTokenRecord, successorUsed: Bool)?
    /// The compare-and-set of a rotation: marks the token spent for `successorDigest` (keeping
    /// `answer`) only when it is unspent, unrevoked, of a grant not revoked, unexpired at `now`
    /// and `clientID`'s; `true` when this call did.
    func spendRefreshToken(
        digest: String,
        clientID: String,
        now: Int,
        successorDigest: String,
        answer: String?
    ) async throws -> Bool
    func insertRefreshToken(_ token: RefreshTokenRecord) async throws

    /// Revokes a grant: every token and refresh token stamped with `grantID`, now and later
    /// (one saved afterwards is revoked too); remembered until `until`.
    func revokeGrant(_ grantID: String, until: Int, now: Int) async throws
    /// Revokes every token and refresh token of `clientID`, and every grant they belong to.
    func revokeTokens(ofClient clientID: String, now: Int) async throws
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
