import Foundation
import Logging
import NIOCore
import PostgresNIO
import TollgateCore

/// The issuer's state in PostgreSQL (postgres-nio), for several issuer replicas on one
/// database. The schema matches the SQLite store's: records as JSON bodies keyed by kind and
/// key, with the columns compare-and-set works on (spent, revoked, family, client) as real
/// columns. Every method is one transaction; rotation is an `UPDATE … WHERE spent_at IS NULL
/// RETURNING`, and every read-modify-write takes the row with `SELECT … FOR UPDATE`, so
/// rotation, code redemption and device polls stay single-winner across processes.
public final class PostgresIssuerStore: IssuerStore {
    static let schemaVersion = 2
    /// The advisory lock key replicas take while migrating, so two starting at once do not race.
    static let migrationLock = 0x746f_6c6c_6761_7465

    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    private init(client: PostgresClient, runner: Task<Void, Never>, logger: Logger) {
        self.client = client
        self.runner = runner
        self.logger = logger
    }

    /// Connects (the pool runs until `close()`), then creates or migrates the schema.
    public static func open(
        _ settings: LocalIssuerSettings.Postgres,
        logger: Logger = Logger(label: "tollgate.issuer.postgres")
    ) async throws -> PostgresIssuerStore {
        var configuration = PostgresClient.Configuration(
            host: settings.host,
            port: settings.port,
            username: settings.username,
            password: settings.password?.value,
            database: settings.database,
            tls: settings.tls ? .require(.makeClientConfiguration()) : .disable
        )
        configuration.options.maximumConnections = 16
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let runner = Task { await client.run() }
        // Let the pool's run loop start before the first lease.
        await Task.yield()
        let store = PostgresIssuerStore(client: client, runner: runner, logger: logger)
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    public func close() async {
        runner.cancel()
        await runner.value
    }

    enum StoreError: Error, CustomStringConvertible {
        case newerSchema(Int)

        var description: String {
            switch self {
            case .newerSchema(let version):
                "the database's issuer schema is version \(version), newer than this program's \(PostgresIssuerStore.schemaVersion)"
            }
        }
    }

    func migrate() async throws {
        try await transaction { connection, logger in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS tollgate_schema_version (version INTEGER NOT NULL)",
                logger: logger
            )
            let rows = try await connection.query("SELECT version FROM tollgate_schema_version", logger: logger)
                .collect()
            let current = try rows.first?.decode(Int.self) ?? 0
            if current > Self.schemaVersion { throw StoreError.newerSchema(current) }
            if current < 1 {
                for statement: PostgresQuery in [
                    """
                    CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, expires_at BIGINT,
                        body TEXT NOT NULL, PRIMARY KEY (kind, key))
                    """,
                    "CREATE INDEX records_expiry ON records (expires_at)",
                    """
                    CREATE TABLE tokens (digest TEXT PRIMARY KEY, family_id TEXT, client_id TEXT NOT NULL,
                        revoked BOOLEAN NOT NULL, expires_at BIGINT NOT NULL, body TEXT NOT NULL)
                    """,
                    "CREATE INDEX tokens_family ON tokens (family_id)",
                    "CREATE INDEX tokens_client ON tokens (client_id)",
                    """
                    CREATE TABLE refresh_tokens (digest TEXT PRIMARY KEY, family_id TEXT NOT NULL,
                        client_id TEXT NOT NULL, spent_at BIGINT, successor_digest TEXT, successor_answer TEXT,
                        revoked BOOLEAN NOT NULL, expires_at BIGINT NOT NULL, body TEXT NOT NULL)
                    """,
                    "CREATE INDEX refresh_family ON refresh_tokens (family_id)",
                    "CREATE INDEX refresh_client ON refresh_tokens (client_id)",
                ] {
                    try await connection.query(statement, logger: logger)
                }
            }
            if current < 2 {
                for statement: PostgresQuery in [
                    """
                    CREATE TABLE revoked_grants (grant_id TEXT PRIMARY KEY, revoked_at BIGINT NOT NULL,
                        expires_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX revoked_grants_at ON revoked_grants (revoked_at)",
                    """
                    CREATE TABLE event_counts (key TEXT PRIMARY KEY, count BIGINT NOT NULL, last BIGINT NOT NULL,
                        expires_at BIGINT NOT NULL)
                    """,
                    // Version 1 kept the retry answer in clear.
                    "UPDATE refresh_tokens SET successor_answer = NULL",
                ] {
                    try await connection.query(statement, logger: logger)
                }
            }
            if current < Self.schemaVersion {
                try await connection.query("DELETE FROM tollgate_schema_version", logger: logger)
                try await connection.query(
                    "INSERT INTO tollgate_schema_version (version) VALUES (\(Self.schemaVersion))",
                    logger: logger
                )
            }
        }
    }

    // MARK: - Plumbing

    func transaction<T: Sendable>(
        _ body: @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(connection, logger)
            }
        } catch let error as PostgresTransactionError {
            // The caller's own error, when there is one, rather than the wrapper.
            throw error.closureError ?? error
        }
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    static let bodies = DecodedBodies()

    static func decode<T: Decodable & Sendable>(_ type: T.Type, _ text: String?) throws -> T? {
        guard let text else { return nil }
        return try bodies.decode(type, text)
    }

    static func body(
        _ kind: String,
        _ key: String,
        forUpdate: Bool = false,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> String? {
        let query: PostgresQuery =
            forUpdate
            ? "SELECT body FROM records WHERE kind = \(kind) AND key = \(key) FOR UPDATE"
            : "SELECT body FROM records WHERE kind = \(kind) AND key = \(key)"
        return try await connection.query(query, logger: logger).collect().first?.decode(String.self)
    }

    static func put(
        _ kind: String,
        _ key: String,
        body: String,
        expiresAt: Int?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO records (kind, key, expires_at, body) VALUES (\(kind), \(key), \(expiresAt), \(body))
            ON CONFLICT (kind, key) DO UPDATE SET expires_at = EXCLUDED.expires_at, body = EXCLUDED.body
            """,
            logger: logger
        )
    }

    func put<T: Encodable & Sendable>(_ kind: String, _ key: String, _ value: T, expiresAt: Int? = nil) async throws {
        let body = try Self.encode(value)
        try await transaction { connection, logger in
            try await Self.put(kind, key, body: body, expiresAt: expiresAt, on: connection, logger: logger)
        }
    }

    func get<T: Decodable & Sendable>(_ type: T.Type, _ kind: String, _ key: String) async throws -> T? {
        // One statement, no explicit transaction.
        let text = try await client.query(
            "SELECT body FROM records WHERE kind = \(kind) AND key = \(key)",
            logger: logger
        ).collect().first?.decode(String.self)
        return try Self.decode(type, text)
    }

    func delete(_ kind: String, _ key: String) async throws {
        try await transaction { connection, logger in
            try await connection.query("DELETE FROM records WHERE kind = \(kind) AND key = \(key)", logger: logger)
        }
    }

    // MARK: - Clients and keys

    public func client(id: String) async throws -> RegisteredClient? {
        try await get(RegisteredClient.self, "client", id)
    }

    public func saveClient(_ client: RegisteredClient) async throws { try await put("client", client.id, client) }

    public func clients() async throws -> [RegisteredClient] {
        let bodies = try await transaction { connection, logger in
            try await connection.query("SELECT body FROM records WHERE kind = 'client' ORDER BY key", logger: logger)
                .collect().map { try $0.decode(String.self) }
        }
        return try bodies.compactMap { try Self.decode(RegisteredClient.self, $0) }
    }

    public func revokeClient(id: String, now: Int) async throws -> Bool {
        try await transaction { connection, logger in
            guard
                var client = try Self.decode(
                    RegisteredClient.self,
                    try await Self.body("client", id, forUpdate: true, on: connection, logger: logger)
                )
            else { return false }
            client.revoked = true
            try await Self.put(
                "client",
                id,
                body: try Self.encode(client),
                expiresAt: nil,
                on: connection,
                logger: logger
            )
            try await connection.query(
                """
                INSERT INTO revoked_grants (grant_id, revoked_at, expires_at)
                SELECT grant_id, \(now), MAX(expires_at) FROM (
                    SELECT family_id AS grant_id, expires_at FROM tokens
                    WHERE client_id = \(id) AND family_id IS NOT NULL
                    UNION ALL SELECT family_id, expires_at FROM refresh_tokens WHERE client_id = \(id)
                ) AS grants GROUP BY grant_id
                ON CONFLICT (grant_id) DO UPDATE
                    SET expires_at = GREATEST(revoked_grants.expires_at, EXCLUDED.expires_at)
                """,
                logger: logger
            )
            try await connection.query("UPDATE tokens SET revoked = TRUE WHERE client_id = \(id)", logger: logger)
            try await connection.query(
                "UPDATE refresh_tokens SET revoked = TRUE, successor_answer = NULL WHERE client_id = \(id)",
                logger: logger
            )
            return true
        }
    }

    public func signingKeys() async throws -> [StoredSigningKey] {
        let bodies = try await transaction { connection, logger in
            try await connection.query("SELECT body FROM records WHERE kind = 'signing_key'", logger: logger)
                .collect().map { try $0.decode(String.self) }
        }
        return try bodies.compactMap { try Self.decode(StoredSigningKey.self, $0) }
    }

    public func saveSigningKey(_ key: StoredSigningKey) async throws { try await put("signing_key", key.keyID, key) }

    public func deleteSigningKey(keyID: String) async throws { try await delete("signing_key", keyID) }

    // MARK: - Tokens

    public func saveToken(_ token: TokenRecord) async throws {
        let body = try Self.encode(token)
        try await transaction { connection, logger in
            try await connection.query(
                """
                INSERT INTO tokens (digest, family_id, client_id, revoked, expires_at, body)
                VALUES (\(token.digest), \(token.familyID), \(token.clientID), \(token.revoked), \(token.expiresAt), \(body))
                ON CONFLICT (digest) DO UPDATE SET family_id = EXCLUDED.family_id, revoked = EXCLUDED.revoked,
                    expires_at = EXCLUDED.expires_at, body = EXCLUDED.body
                """,
                logger: logger
            )
        }
    }

    public func token(digest: String) async throws -> TokenRecord? {
        // One statement, no explicit transaction: the introspection path.
        let rows = try await client.query(
            """
            SELECT body, revoked OR EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = family_id)
            FROM tokens WHERE digest = \(digest)
            """,
            logger: logger
        ).collect()
        guard let row = rows.first else { return nil }
        let (body, revoked) = try row.decode((String, Bool).self)
        guard var record = try Self.decode(TokenRecord.self, body) else { return nil }
        record.revoked = revoked
        return record
    }

    public func revokeToken(digest: String) async throws -> Bool {
        try await transaction { connection, logger in
            let rows = try await connection.query(
                "UPDATE tokens SET revoked = TRUE WHERE digest = \(digest) RETURNING digest",
                logger: logger
            ).collect()
            return !rows.isEmpty
        }
    }

    public func deleteExpired(before now: Int, answersSpentBefore: Int) async throws -> Int {
        try await transaction { connection, logger in
            try await connection.query(
                """
                UPDATE refresh_tokens SET successor_answer = NULL
                WHERE successor_answer IS NOT NULL AND spent_at < \(answersSpentBefore)
                """,
                logger: logger
            )
            var count = 0
            for query: PostgresQuery in [
                "DELETE FROM revoked_grants WHERE expires_at < \(now) RETURNING 1",
                "DELETE FROM event_counts WHERE expires_at < \(now) RETURNING 1",
                "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at < \(now) RETURNING 1",
                "DELETE FROM tokens WHERE expires_at < \(now) RETURNING 1",
                "DELETE FROM refresh_tokens WHERE expires_at < \(now) RETURNING 1",
            ] {
                count += try await connection.query(query, logger: logger).collect().count
            }
            return count
        }
    }

    // MARK: - People

    public func user(username: String) async throws -> IssuerUser? { try await get(IssuerUser.self, "user", username) }

    public func saveUser(_ user: IssuerUser) async throws { try await put("user", user.username, user) }

    public func saveSession(_ session: LoginSession) async throws {
        try await put("session", session.digest, session, expiresAt: session.expiresAt)
    }

    public func session(digest: String) async throws -> LoginSession? {
        try await get(LoginSession.self, "session", digest)
    }

    public func deleteSession(digest: String) async throws { try await delete("session", digest) }

    public func savePendingAuthorization(_ pending: PendingAuthorization) async throws {
        try await put("pending", pending.id, pending, expiresAt: pending.expiresAt)
    }

    public func pendingAuthorization(id: String) async throws -> PendingAuthorization? {
        try await get(PendingAuthorization.self, "pending", id)
    }

    public func deletePendingAuthorization(id: String) async throws { try await delete("pending", id) }

    /// PostgreSQL text holds no NUL, so the pair is keyed by its JSON form.
    static func consentKey(_ username: String, _ clientID: String) throws -> String {
        try encode([username, clientID])
    }

    public func consentedScopes(username: String, clientID: String) async throws -> Set<String> {
        try await get(Set<String>.self, "consent", try Self.consentKey(username, clientID)) ?? []
    }

    public func saveConsent(username: String, clientID: String, scopes: Set<String>) async throws {
        let key = try Self.consentKey(username, clientID)
        try await transaction { connection, logger in
            try await connection.query(
                "INSERT INTO records (kind, key, body) VALUES ('consent', \(key), '[]') ON CONFLICT DO NOTHING",
                logger: logger
            )
            var merged =
                try Self.decode(
                    Set<String>.self,
                    try await Self.body("consent", key, forUpdate: true, on: connection, logger: logger)
                ) ?? []
            merged.formUnion(scopes)
            try await Self.put(
                "consent",
                key,
                body: try Self.encode(merged),
                expiresAt: nil,
                on: connection,
                logger: logger
            )
        }
    }

    // MARK: - Codes

    public func saveCode(_ code: AuthorizationCodeRecord) async throws {
        try await put("code", code.digest, code, expiresAt: code.expiresAt)
    }

    public func redeemCode(
        digest: String,
        now: Int,
        grantUntil: Int,
        accept: @Sendable (AuthorizationCodeRecord) -> Bool
    ) async throws -> CodeRedemption {
        try await transaction { connection, logger in
            guard
                let code = try Self.decode(
                    AuthorizationCodeRecord.self,
                    try await Self.body("code", digest, forUpdate: true, on: connection, logger: logger)
                )
            else { return .unknown }
            if code.redeemed {
                if let grant = code.familyID {
                    try await Self.revokeGrant(grant, until: grantUntil, now: now, on: connection, logger: logger)
                }
                return .replayed(code)
            }
            guard accept(code) else { return .refused(code) }
            var redeemed = code
            redeemed.redeemed = true
            try await Self.put(
                "code",
                digest,
                body: try Self.encode(redeemed),
                expiresAt: code.expiresAt,
                on: connection,
                logger: logger
            )
            return .redeemed(code)
        }
    }

    // MARK: - Refresh tokens

    public func saveRefreshToken(_ token: RefreshTokenRecord) async throws {
        let body = try Self.encode(token)
        try await transaction { connection, logger in
            try await Self.insertRefresh(token, body: body, on: connection, logger: logger)
        }
    }

    static func insertRefresh(
        _ token: RefreshTokenRecord,
        body: String,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO refresh_tokens (digest, family_id, client_id, spent_at, successor_digest, successor_answer,
                revoked, expires_at, body)
            VALUES (\(token.digest), \(token.familyID), \(token.clientID), NULL, NULL, NULL, \(token.revoked),
                \(token.expiresAt), \(body))
            """,
            logger: logger
        )
    }

    public func refreshToken(digest: String) async throws -> RefreshTokenRecord? {
        let rows = try await client.query(
            """
            SELECT body, spent_at, successor_digest,
                revoked OR EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = family_id)
            FROM refresh_tokens WHERE digest = \(digest)
            """,
            logger: logger
        ).collect()
        guard let row = rows.first else { return nil }
        let (body, spentAt, successor, revoked) = try row.decode((String, Int?, String?, Bool).self)
        guard var record = try Self.decode(RefreshTokenRecord.self, body) else { return nil }
        record.spentAt = spentAt
        record.successorDigest = successor
        record.revoked = revoked
        return record
    }

    public func rotateRefreshToken(
        digest: String,
        clientID: String,
        successor: RefreshTokenRecord,
        answer: String?,
        now: Int,
        reuseInterval: Int,
        grantUntil: Int
    ) async throws -> RefreshRotation {
        let successorBody = try Self.encode(successor)
        return try await transaction { connection, logger in
            // The compare-and-set: a concurrent rotation of the same row waits for this one's row
            // lock, then re-checks `spent_at IS NULL` against the committed row and moves nothing.
            let won = try await connection.query(
                """
                UPDATE refresh_tokens SET spent_at = \(now), successor_digest = \(successor.digest),
                    successor_answer = \(answer)
                WHERE digest = \(digest) AND client_id = \(clientID) AND spent_at IS NULL AND NOT revoked
                    AND expires_at > \(now)
                    AND NOT EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = family_id)
                RETURNING digest
                """,
                logger: logger
            ).collect()
            if !won.isEmpty {
                try await Self.insertRefresh(successor, body: successorBody, on: connection, logger: logger)
                return .rotated
            }
            let rows = try await connection.query(
                """
                SELECT r.family_id, r.client_id, r.spent_at,
                    r.revoked OR EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = r.family_id),
                    r.successor_answer, s.spent_at
                FROM refresh_tokens r LEFT JOIN refresh_tokens s ON s.digest = r.successor_digest
                WHERE r.digest = \(digest)
                """,
                logger: logger
            ).collect()
            guard let row = rows.first else { return .refused(familyRevoked: false) }
            let (family, owner, spentAt, revoked, given, successorSpent) = try row.decode(
                (String, String, Int?, Bool, String?, Int?).self
            )
            guard owner == clientID, let spentAt else { return .refused(familyRevoked: false) }
            if !revoked, now - spentAt <= reuseInterval, successorSpent == nil, let given {
                return .replayWithinGrace(given)
            }
            try await Self.revokeGrant(family, until: grantUntil, now: now, on: connection, logger: logger)
            return .refused(familyRevoked: true)
        }
    }

    public func revokeGrant(_ grantID: String, until: Int, now: Int) async throws {
        try await transaction { connection, logger in
            try await Self.revokeGrant(grantID, until: until, now: now, on: connection, logger: logger)
        }
    }

    static func revokeGrant(
        _ grantID: String,
        until: Int,
        now: Int,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO revoked_grants (grant_id, revoked_at, expires_at) VALUES (\(grantID), \(now), \(until))
            ON CONFLICT (grant_id) DO UPDATE
                SET expires_at = GREATEST(revoked_grants.expires_at, EXCLUDED.expires_at)
            """,
            logger: logger
        )
        try await connection.query(
            "UPDATE refresh_tokens SET revoked = TRUE, successor_answer = NULL WHERE family_id = \(grantID)",
            logger: logger
        )
        try await connection.query("UPDATE tokens SET revoked = TRUE WHERE family_id = \(grantID)", logger: logger)
    }

    public func revokedGrants(since: Int, now: Int) async throws -> [RevokedGrant] {
        let rows = try await client.query(
            """
            SELECT grant_id, revoked_at, expires_at FROM revoked_grants
            WHERE revoked_at >= \(since) AND expires_at >= \(now)
            """,
            logger: logger
        ).collect()
        return try rows.map { row in
            let (id, at, until) = try row.decode((String, Int, Int).self)
            return RevokedGrant(grantID: id, revokedAt: at, until: until)
        }
    }

    // MARK: - Event counts

    public func countEvent(key: String, now: Int, expiresAt: Int) async throws -> EventCount {
        try await transaction { connection, logger in
            let rows = try await connection.query(
                """
                INSERT INTO event_counts (key, count, last, expires_at) VALUES (\(key), 1, \(now), \(expiresAt))
                ON CONFLICT (key) DO UPDATE SET
                    count = CASE WHEN event_counts.expires_at <= EXCLUDED.last THEN 1
                        ELSE event_counts.count + 1 END,
                    last = EXCLUDED.last, expires_at = EXCLUDED.expires_at
                RETURNING count
                """,
                logger: logger
            ).collect()
            return EventCount(count: try rows.first?.decode(Int.self) ?? 1, last: now)
        }
    }

    public func eventCount(key: String, now: Int) async throws -> EventCount? {
        let rows = try await client.query(
            "SELECT count, last FROM event_counts WHERE key = \(key) AND expires_at > \(now)",
            logger: logger
        ).collect()
        guard let row = rows.first else { return nil }
        let (count, last) = try row.decode((Int, Int).self)
        return EventCount(count: count, last: last)
    }

    public func resetEvents(key: String) async throws {
        try await transaction { connection, logger in
            try await connection.query("DELETE FROM event_counts WHERE key = \(key)", logger: logger)
        }
    }

    // MARK: - Device authorizations (RFC 8628)

    public func saveDeviceAuthorization(_ record: DeviceAuthorizationRecord) async throws -> Bool {
        let body = try Self.encode(record)
        let digest = try Self.encode(record.digest)
        let userCode = record.userCode
        let expiresAt = record.expiresAt
        return try await transaction { connection, logger in
            let taken = try await connection.query(
                """
                INSERT INTO records (kind, key, expires_at, body) VALUES ('user_code', \(userCode), \(expiresAt), \(digest))
                ON CONFLICT (kind, key) DO NOTHING RETURNING key
                """,
                logger: logger
            ).collect()
            guard !taken.isEmpty else { return false }
            try await Self.put(
                "device",
                record.digest,
                body: body,
                expiresAt: expiresAt,
                on: connection,
                logger: logger
            )
            return true
        }
    }

    static func device(
        userCode: String,
        forUpdate: Bool,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> DeviceAuthorizationRecord? {
        guard
            let digest = try decode(String.self, try await body("user_code", userCode, on: connection, logger: logger))
        else { return nil }
        return try decode(
            DeviceAuthorizationRecord.self,
            try await body("device", digest, forUpdate: forUpdate, on: connection, logger: logger)
        )
    }

    public func deviceAuthorization(userCode: String) async throws -> DeviceAuthorizationRecord? {
        try await transaction { connection, logger in
            try await Self.device(userCode: userCode, forUpdate: false, on: connection, logger: logger)
        }
    }

    public func decideDeviceAuthorization(
        userCode: String,
        username: String?,
        authenticatedAt: Int,
        now: Int
    ) async throws -> Bool {
        try await transaction { connection, logger in
            guard
                var record = try await Self.device(userCode: userCode, forUpdate: true, on: connection, logger: logger),
                record.status == .pending, record.expiresAt > now
            else { return false }
            record.status = username == nil ? .denied : .approved
            record.username = username
            record.authenticatedAt = authenticatedAt
            try await Self.put(
                "device",
                record.digest,
                body: try Self.encode(record),
                expiresAt: record.expiresAt,
                on: connection,
                logger: logger
            )
            return true
        }
    }

    public func pollDeviceAuthorization(
        digest: String,
        clientID: String,
        now: Int
    ) async throws -> DeviceAuthorizationRecord? {
        try await transaction { connection, logger in
            guard
                let record = try Self.decode(
                    DeviceAuthorizationRecord.self,
                    try await Self.body("device", digest, forUpdate: true, on: connection, logger: logger)
                ), record.clientID == clientID
            else { return nil }
            try await Self.put(
                "device",
                digest,
                body: try Self.encode(record.polled(at: now)),
                expiresAt: record.expiresAt,
                on: connection,
                logger: logger
            )
            return record
        }
    }
}
