/// Everything the issuer keeps, behind one protocol: in memory (tests), SQLite (the embedded
/// default) or PostgreSQL (several replicas). Every method is one transaction.
public protocol IssuerStore: Sendable {
    func client(id: String) async throws -> RegisteredClient?
    func saveClient(_ client: RegisteredClient) async throws
    func clients() async throws -> [RegisteredClient]
    /// Marks the client revoked and revokes every token and refresh token issued to it, in one
    /// transaction; `false` when there is no such client.
    func revokeClient(id: String) async throws -> Bool

    func signingKeys() async throws -> [StoredSigningKey]
    func saveSigningKey(_ key: StoredSigningKey) async throws
    func deleteSigningKey(keyID: String) async throws

    func saveToken(_ token: TokenRecord) async throws
    func token(digest: String) async throws -> TokenRecord?
    /// Marks the token revoked; `false` when there is none under `digest`.
    @discardableResult
    func revokeToken(digest: String) async throws -> Bool
    /// Deletes what expired before `now` (the sweeper); returns how many records went.
    func deleteExpired(before now: Int) async throws -> Int

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
    /// Marks the code redeemed and returns it as it was before (so `redeemed == true` means a
    /// replay); one transaction, so two redemptions never both see it unredeemed.
    func redeemCode(digest: String) async throws -> AuthorizationCodeRecord?
    /// Records what the code's redemption issued.
    func recordIssued(byCode digest: String, tokens: [String], familyID: String?) async throws

    func saveRefreshToken(_ token: RefreshTokenRecord) async throws
    func refreshToken(digest: String) async throws -> RefreshTokenRecord?
    /// Exchanges the refresh token `digest` for `successor`, in one transaction, as a
    /// compare-and-set on the token being unspent: exactly one of any number of concurrent
    /// calls rotates. A retry by `clientID` within `grace` seconds of the spend gets the
    /// answer already given; any other reuse revokes the whole family (and its access tokens).
    func rotateRefreshToken(
        digest: String,
        clientID: String,
        successor: RefreshTokenRecord,
        answer: String,
        now: Int,
        grace: Int
    ) async throws -> RefreshRotation
    /// Revokes every refresh token of `familyID` and the access tokens issued with them.
    func revokeFamily(_ familyID: String) async throws

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
    func pollDeviceAuthorization(digest: String, clientID: String, now: Int) async throws -> DeviceAuthorizationRecord?
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
