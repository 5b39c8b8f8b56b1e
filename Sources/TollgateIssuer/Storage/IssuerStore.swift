/// Everything the issuer keeps, behind one protocol: in memory (tests), SQLite (the embedded
/// default) or PostgreSQL (several replicas). Every method is one transaction.
public protocol IssuerStore: Sendable {
    func client(id: String) async throws -> RegisteredClient?
    func saveClient(_ client: RegisteredClient) async throws
    func clients() async throws -> [RegisteredClient]

    func signingKeys() async throws -> [StoredSigningKey]
    func saveSigningKey(_ key: StoredSigningKey) async throws

    func saveToken(_ token: TokenRecord) async throws
    func token(digest: String) async throws -> TokenRecord?
    /// Marks the token revoked; `false` when there is none under `digest`.
    @discardableResult
    func revokeToken(digest: String) async throws -> Bool
    /// Deletes what expired before `now` (the sweeper); returns how many records went.
    func deleteExpired(before now: Int) async throws -> Int
}

/// A signing key at rest: the private key's PKCS#8 DER, and where it is in its rotation.
public struct StoredSigningKey: Sendable, Equatable {
    public enum Stage: String, Sendable {
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
