import Foundation
import Logging
import TollgateCore

/// The issuer's state in SQL: one schema and one text per statement for SQLite (the embedded
/// default) and PostgreSQL (several replicas), the differences in `SQLDialect`. Records are JSON
/// bodies keyed by kind and key; what compare-and-set and revocation work on (spent, revoked,
/// grant, client) are real columns. Every method is one transaction or one statement; what a
/// transaction decides is a rule of `GrantRules` or of the record, never written here.
public final class SQLIssuerStore: IssuerStore {
    static let schemaVersion = 3

    let database: any SQLDatabase
    var dialect: SQLDialect { database.dialect }

    init(database: any SQLDatabase) {
        self.database = database
    }

    public func close() async throws {
        try await database.close()
    }

    enum StoreError: Error, CustomStringConvertible {
        case newerSchema(Int)

        var description: String {
            switch self {
            case .newerSchema(let version):
                "the database's issuer schema is version \(version), newer than this program's \(SQLIssuerStore.schemaVersion)"
            }
        }
    }

    // MARK: - Schema

    func migrate() async throws {
        let dialect = self.dialect
        try await database.transaction { tx in
            if let lock = dialect.migrationLock { try await tx.query(lock) }
            try await tx.query("CREATE TABLE IF NOT EXISTS \(dialect.schemaTable) (version INTEGER NOT NULL)")
            let current =
                try await tx.query("SELECT version FROM \(dialect.schemaTable)").first?.integer("version") ?? 0
            if current > Self.schemaVersion { throw StoreError.newerSchema(current) }
            let steps = [Self.version1(dialect), Self.version2(dialect), Self.version3(dialect)]
            for (index, statements) in steps.enumerated() where current < index + 1 {
                for statement in statements { try await tx.query(statement) }
            }
            if current < Self.schemaVersion {
                try await tx.query("DELETE FROM \(dialect.schemaTable)")
                try await tx.query("INSERT INTO \(dialect.schemaTable) (version) VALUES (\(Self.schemaVersion))")
            }
        }
    }

    /// Version 1, as each database first had it (PostgreSQL's tokens had a client column from
    /// the start, SQLite's gets it in version 3).
    static func version1(_ dialect: SQLDialect) -> [String] {
        let postgres = dialect.migrationLock != nil
        return [
            """
            CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, expires_at \(dialect.bigint),
                body TEXT NOT NULL, PRIMARY KEY (kind, key))
            """,
            "CREATE INDEX records_expiry ON records (expires_at)",
            """
            CREATE TABLE tokens (digest TEXT PRIMARY KEY, family_id TEXT,\(postgres ? " client_id TEXT NOT NULL," : "")
                revoked \(dialect.boolean) NOT NULL, expires_at \(dialect.bigint) NOT NULL, body TEXT NOT NULL)
            """,
            "CREATE INDEX tokens_family ON tokens (family_id)",
            """
            CREATE TABLE refresh_tokens (digest TEXT PRIMARY KEY, family_id TEXT NOT NULL,
                client_id TEXT NOT NULL, spent_at \(dialect.bigint), successor_digest TEXT, successor_answer TEXT,
                revoked \(dialect.boolean) NOT NULL, expires_at \(dialect.bigint) NOT NULL, body TEXT NOT NULL)
            """,
            "CREATE INDEX refresh_family ON refresh_tokens (family_id)",
        ]
            + (postgres
                ? [
                    "CREATE INDEX tokens_client ON tokens (client_id)",
                    "CREATE INDEX refresh_client ON refresh_tokens (client_id)",
                ] : [])
    }

    /// Version 2: revoked grants (kept until their last token expires), event counts (the
    /// brute-force limits), and no retry answer of version 1 left in clear.
    static func version2(_ dialect: SQLDialect) -> [String] {
        [
            """
            CREATE TABLE revoked_grants (grant_id TEXT PRIMARY KEY, revoked_at \(dialect.bigint) NOT NULL,
                expires_at \(dialect.bigint) NOT NULL)
            """,
            "CREATE INDEX revoked_grants_at ON revoked_grants (revoked_at)",
            """
            CREATE TABLE event_counts (key TEXT PRIMARY KEY, count \(dialect.bigint) NOT NULL,
                last \(dialect.bigint) NOT NULL, expires_at \(dialect.bigint) NOT NULL)
            """,
            "UPDATE refresh_tokens SET successor_answer = NULL",
        ]
    }

    /// Version 3: one schema for both databases (SQLite's tokens get their client column, from
    /// the record they already held).
    static func version3(_ dialect: SQLDialect) -> [String] {
        guard dialect.migrationLock == nil else { return [] }
        return [
            "ALTER TABLE tokens ADD COLUMN client_id TEXT",
            "UPDATE tokens SET client_id = json_extract(body, '$.clientID')",
            "CREATE INDEX tokens_client ON tokens (client_id)",
            "CREATE INDEX refresh_client ON refresh_tokens (client_id)",
        ]
    }

    // MARK: - Records

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    static let bodies = DecodedBodies()

    static func decode<T: Decodable & Sendable>(_ type: T.Type, _ text: String?) throws -> T? {
        guard let text else { return nil }
        return try bodies.decode(type, text)
    }

    static func put(_ tx: any SQLExecutor, _ kind: String, _ key: String, _ body: String, expiresAt: Int?) async throws
    {
        try await tx.query(
            """
            INSERT INTO records (kind, key, expires_at, body) VALUES (?, ?, ?, ?)
            ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at, body = excluded.body
            """,
            [.text(kind), .text(key), .integer(expiresAt), .text(body)]
        )
    }

    /// The body under (`kind`, `key`) inside a transaction, locked for the write back.
    func body(_ tx: any SQLExecutor, _ kind: String, _ key: String) async throws -> String? {
        try await tx.query(
            "SELECT body FROM records WHERE kind = ? AND key = ?" + dialect.forUpdate,
            [.text(kind), .text(key)]
        ).first?.string("body")
    }

    func put<T: Encodable & Sendable>(_ kind: String, _ key: String, _ value: T, expiresAt: Int? = nil) async throws {
        let body = try Self.encode(value)
        try await database.transaction { tx in try await Self.put(tx, kind, key, body, expiresAt: expiresAt) }
    }

    func get<T: Decodable & Sendable>(_ type: T.Type, _ kind: String, _ key: String) async throws -> T? {
        let rows = try await database.read(
            "SELECT body FROM records WHERE kind = ? AND key = ?",
            [.text(kind), .text(key)]
        )
        return try Self.decode(type, rows.first?.string("body"))
    }

    func all<T: Decodable & Sendable>(_ type: T.Type, _ kind: String) async throws -> [T] {
        let rows = try await database.read("SELECT body FROM records WHERE kind = ? ORDER BY key", [.text(kind)])
        return try rows.compactMap { try Self.decode(type, $0.string("body")) }
    }

    func delete(_ kind: String, _ key: String) async throws {
        try await database.transaction { tx in
            try await tx.query("DELETE FROM records WHERE kind = ? AND key = ?", [.text(kind), .text(key)])
        }
    }

    // MARK: - Clients and keys

    public func client(id: String) async throws -> RegisteredClient? {
        try await get(RegisteredClient.self, "client", id)
    }

    public func saveClient(_ client: RegisteredClient) async throws { try await put("client", client.id, client) }

    public func clients() async throws -> [RegisteredClient] { try await all(RegisteredClient.self, "client") }

    public func signingKeys() async throws -> [StoredSigningKey] { try await all(StoredSigningKey.self, "signing_key") }

    public func saveSigningKey(_ key: StoredSigningKey) async throws { try await put("signing_key", key.keyID, key) }

    public func deleteSigningKey(keyID: String) async throws { try await delete("signing_key", keyID) }

    // MARK: - Tokens

    public func saveToken(_ token: TokenRecord) async throws {
        let body = try Self.encode(token)
        try await database.transaction { tx in
            try await tx.query(
                """
                INSERT INTO tokens (digest, family_id, client_id, revoked, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (digest) DO UPDATE SET family_id = excluded.family_id, client_id = excluded.client_id,
                    revoked = excluded.revoked, expires_at = excluded.expires_at, body = excluded.body
                """,
                [
                    .text(token.digest), .text(token.familyID), .text(token.clientID), .bool(token.revoked),
                    .integer(token.expiresAt), .text(body),
                ]
            )
        }
    }

    /// A column that is true when its row's grant is revoked.
    static func grantRevoked(_ table: String) -> String {
        "EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = \(table).family_id)"
    }

    public func token(digest: String) async throws -> TokenRecord? {
        let rows = try await database.read(
            "SELECT body, revoked OR \(Self.grantRevoked("tokens")) AS revoked FROM tokens WHERE digest = ?",
            [.text(digest)]
        )
        guard let row = rows.first, var record = try Self.decode(TokenRecord.self, row.string("body")) else {
            return nil
        }
        record.revoked = row.bool("revoked")
        return record
    }

    public func revokeToken(digest: String) async throws -> Bool {
        try await database.transaction { tx in
            !(try await tx.query(
                "UPDATE tokens SET revoked = ? WHERE digest = ? RETURNING digest",
                [.bool(true), .text(digest)]
            ).isEmpty)
        }
    }

    public func deleteExpired(before now: Int, answersSpentBefore: Int) async throws -> Int {
        try await database.transaction { tx in
            try await tx.query(
                "UPDATE refresh_tokens SET successor_answer = NULL WHERE successor_answer IS NOT NULL AND spent_at < ?",
                [.integer(answersSpentBefore)]
            )
            var count = 0
            for statement in [
                "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at < ? RETURNING 1",
                "DELETE FROM tokens WHERE expires_at < ? RETURNING 1",
                "DELETE FROM refresh_tokens WHERE expires_at < ? RETURNING 1",
                "DELETE FROM revoked_grants WHERE expires_at < ? RETURNING 1",
                "DELETE FROM event_counts WHERE expires_at < ? RETURNING 1",
            ] {
                count += try await tx.query(statement, [.integer(now)]).count
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

    /// The key of a person's consent to a client: SQLite's rows keep the two joined by NUL, and
    /// PostgreSQL's text holds no NUL, so its rows keep them as a JSON array.
    func consentKey(_ username: String, _ clientID: String) throws -> String {
        dialect.migrationLock == nil ? username + "\u{0}" + clientID : try Self.encode([username, clientID])
    }

    public func consentedScopes(username: String, clientID: String) async throws -> Set<String> {
        try await get(Set<String>.self, "consent", try consentKey(username, clientID)) ?? []
    }

    // MARK: - Codes

    public func saveCode(_ code: AuthorizationCodeRecord) async throws {
        try await put("code", code.digest, code, expiresAt: code.expiresAt)
    }

    // MARK: - Refresh tokens

    public func saveRefreshToken(_ token: RefreshTokenRecord) async throws {
        let body = try Self.encode(token)
        try await database.transaction { tx in try await Self.insertRefresh(tx, token, body: body) }
    }

    static func insertRefresh(_ tx: any SQLExecutor, _ token: RefreshTokenRecord, body: String) async throws {
        try await tx.query(
            """
            INSERT INTO refresh_tokens (digest, family_id, client_id, spent_at, successor_digest, successor_answer,
                revoked, expires_at, body) VALUES (?, ?, ?, NULL, NULL, NULL, ?, ?, ?)
            ON CONFLICT (digest) DO UPDATE SET family_id = excluded.family_id, client_id = excluded.client_id,
                spent_at = NULL, successor_digest = NULL, successor_answer = NULL, revoked = excluded.revoked,
                expires_at = excluded.expires_at, body = excluded.body
            """,
            [
                .text(token.digest), .text(token.familyID), .text(token.clientID), .bool(token.revoked),
                .integer(token.expiresAt), .text(body),
            ]
        )
    }

    /// The refresh token of `row` (its body and its columns), its grant's revocation included.
    static func refreshRecord(_ row: SQLRow?) throws -> RefreshTokenRecord? {
        guard let row, var record = try decode(RefreshTokenRecord.self, row.string("body")) else { return nil }
        record.spentAt = row.integer("spent_at")
        record.successorDigest = row.string("successor_digest")
        record.successorAnswer = row.string("successor_answer")
        record.revoked = row.bool("revoked")
        return record
    }

    public func refreshToken(digest: String) async throws -> RefreshTokenRecord? {
        let rows = try await database.read(
            """
            SELECT body, spent_at, successor_digest, successor_answer,
                revoked OR \(Self.grantRevoked("refresh_tokens")) AS revoked
            FROM refresh_tokens WHERE digest = ?
            """,
            [.text(digest)]
        )
        return try Self.refreshRecord(rows.first)
    }

    // MARK: - Grants

    func revokeGrant(_ tx: any SQLExecutor, _ grantID: String, until: Int, now: Int) async throws {
        try await tx.query(
            """
            INSERT INTO revoked_grants (grant_id, revoked_at, expires_at) VALUES (?, ?, ?)
            ON CONFLICT (grant_id) DO UPDATE
                SET expires_at = \(dialect.greatest)(revoked_grants.expires_at, excluded.expires_at)
            """,
            [.text(grantID), .integer(now), .integer(until)]
        )
        try await tx.query(
            "UPDATE refresh_tokens SET revoked = ?, successor_answer = NULL WHERE family_id = ?",
            [.bool(true), .text(grantID)]
        )
        try await tx.query("UPDATE tokens SET revoked = ? WHERE family_id = ?", [.bool(true), .text(grantID)])
    }

    public func revokedGrants(since: Int, now: Int) async throws -> [RevokedGrant] {
        try await database.read(
            "SELECT grant_id, revoked_at, expires_at FROM revoked_grants WHERE revoked_at >= ? AND expires_at >= ?",
            [.integer(since), .integer(now)]
        ).compactMap { row in
            guard let id = row.string("grant_id"), let at = row.integer("revoked_at"),
                let until = row.integer("expires_at")
            else { return nil }
            return RevokedGrant(grantID: id, revokedAt: at, until: until)
        }
    }

    // MARK: - Event counts

    public func countEvent(key: String, now: Int, expiresAt: Int) async throws -> EventCount {
        try await database.transaction { tx in
            let rows = try await tx.query(
                """
                INSERT INTO event_counts (key, count, last, expires_at) VALUES (?, 1, ?, ?)
                ON CONFLICT (key) DO UPDATE SET
                    count = CASE WHEN event_counts.expires_at <= excluded.last THEN 1 ELSE event_counts.count + 1 END,
                    last = excluded.last, expires_at = excluded.expires_at
                RETURNING count
                """,
                [.text(key), .integer(now), .integer(expiresAt)]
            )
            return EventCount(count: rows.first?.integer("count") ?? 1, last: now)
        }
    }

    public func eventCount(key: String, now: Int) async throws -> EventCount? {
        let rows = try await database.read(
            "SELECT count, last FROM event_counts WHERE key = ? AND expires_at > ?",
            [.text(key), .integer(now)]
        )
        guard let row = rows.first, let count = row.integer("count"), let last = row.integer("last") else { return nil }
        return EventCount(count: count, last: last)
    }

    public func uncountEvent(key: String) async throws {
        try await database.transaction { tx in
            try await tx.query("UPDATE event_counts SET count = count - 1 WHERE key = ? AND count > 0", [.text(key)])
        }
    }

    public func resetEvents(key: String) async throws {
        try await database.transaction { tx in
            try await tx.query("DELETE FROM event_counts WHERE key = ?", [.text(key)])
        }
    }

    // MARK: - Transactions

    public func transaction<T: Sendable>(_ body: @Sendable (any IssuerTransaction) async throws -> T) async throws -> T
    {
        try await database.transaction { tx in try await body(SQLTransaction(store: self, tx: tx)) }
    }
}

/// `IssuerTransaction`'s primitives on one SQL transaction.
struct SQLTransaction: IssuerTransaction {
    let store: SQLIssuerStore
    let tx: any SQLExecutor

    func find<T: Decodable & Sendable>(_ type: T.Type, _ kind: RecordKind, _ key: String) async throws -> T? {
        try SQLIssuerStore.decode(type, try await store.body(tx, kind.rawValue, key))
    }

    func put<T: Encodable & Sendable>(_ value: T, _ kind: RecordKind, _ key: String, expiresAt: Int?) async throws {
        try await SQLIssuerStore.put(tx, kind.rawValue, key, try SQLIssuerStore.encode(value), expiresAt: expiresAt)
    }

    func insertNew<T: Encodable & Sendable>(
        _ value: T,
        _ kind: RecordKind,
        _ key: String,
        expiresAt: Int?
    )
        async throws -> Bool
    {
        !(try await tx.query(
            """
            INSERT INTO records (kind, key, expires_at, body) VALUES (?, ?, ?, ?)
            ON CONFLICT (kind, key) DO NOTHING RETURNING key
            """,
            [.text(kind.rawValue), .text(key), .integer(expiresAt), .text(try SQLIssuerStore.encode(value))]
        ).isEmpty)
    }

    func consent(username: String, clientID: String) async throws -> Set<String>? {
        try SQLIssuerStore.decode(
            Set<String>.self,
            try await store.body(tx, "consent", try store.consentKey(username, clientID))
        )
    }

    func putConsent(username: String, clientID: String, scopes: Set<String>) async throws {
        try await SQLIssuerStore.put(
            tx,
            "consent",
            try store.consentKey(username, clientID),
            try SQLIssuerStore.encode(scopes),
            expiresAt: nil
        )
    }

    func refreshToken(digest: String) async throws -> (token: RefreshTokenRecord, successorUsed: Bool)? {
        let rows = try await tx.query(
            """
            SELECT r.body, r.spent_at, r.successor_digest, r.successor_answer,
                r.revoked OR \(SQLIssuerStore.grantRevoked("r")) AS revoked, s.spent_at AS successor_spent
            FROM refresh_tokens r LEFT JOIN refresh_tokens s ON s.digest = r.successor_digest
            WHERE r.digest = ?
            """,
            [.text(digest)]
        )
        guard let token = try SQLIssuerStore.refreshRecord(rows.first) else { return nil }
        return (token, rows.first?.integer("successor_spent") != nil)
    }

    func spendRefreshToken(
        digest: String,
        clientID: String,
        now: Int,
        successorDigest: String,
        answer: String?
    ) async throws -> Bool {
        // On PostgreSQL a concurrent spend of the row waits for this one's row lock, then
        // re-checks the condition against the committed row and moves nothing.
        !(try await tx.query(
            """
            UPDATE refresh_tokens SET spent_at = ?, successor_digest = ?, successor_answer = ?
            WHERE digest = ? AND client_id = ? AND spent_at IS NULL AND revoked = ? AND expires_at > ?
                AND NOT \(SQLIssuerStore.grantRevoked("refresh_tokens"))
            RETURNING digest
            """,
            [
                .integer(now), .text(successorDigest), .text(answer), .text(digest), .text(clientID), .bool(false),
                .integer(now),
            ]
        ).isEmpty)
    }

    func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        try await SQLIssuerStore.insertRefresh(tx, token, body: try SQLIssuerStore.encode(token))
    }

    func revokeGrant(_ grantID: String, until: Int, now: Int) async throws {
        try await store.revokeGrant(tx, grantID, until: until, now: now)
    }

    func revokeTokens(ofClient clientID: String, now: Int) async throws {
        try await tx.query(
            """
            INSERT INTO revoked_grants (grant_id, revoked_at, expires_at)
            SELECT grant_id, ?, MAX(expires_at) FROM (
                SELECT family_id AS grant_id, expires_at FROM tokens WHERE client_id = ? AND family_id IS NOT NULL
                UNION ALL SELECT family_id, expires_at FROM refresh_tokens WHERE client_id = ?
            ) AS grants WHERE true GROUP BY grant_id
            ON CONFLICT (grant_id) DO UPDATE
                SET expires_at = \(store.dialect.greatest)(revoked_grants.expires_at, excluded.expires_at)
            """,
            [.integer(now), .text(clientID), .text(clientID)]
        )
        try await tx.query("UPDATE tokens SET revoked = ? WHERE client_id = ?", [.bool(true), .text(clientID)])
        try await tx.query(
            "UPDATE refresh_tokens SET revoked = ?, successor_answer = NULL WHERE client_id = ?",
            [.bool(true), .text(clientID)]
        )
    }
}

/// The issuer's state in one SQLite file: the embedded default. Created and migrated on open,
/// survives restarts.
public enum SQLiteIssuerStore {
    public static func open(
        path: String,
        logger: Logger = Logger(label: "tollgate.issuer.sqlite")
    ) async throws -> SQLIssuerStore {
        let store = SQLIssuerStore(database: try await SQLiteDatabase.open(path: path, logger: logger))
        do {
            try await store.migrate()
        } catch {
            try? await store.close()
            throw error
        }
        return store
    }
}

/// The issuer's state in PostgreSQL, for several replicas on one database; replicas starting
/// together migrate once (an advisory lock).
public enum PostgresIssuerStore {
    public static func open(
        _ settings: LocalIssuerSettings.Postgres,
        logger: Logger = Logger(label: "tollgate.issuer.postgres")
    ) async throws -> SQLIssuerStore {
        let store = SQLIssuerStore(database: await PostgresDatabase.open(settings, logger: logger))
        do {
            try await store.migrate()
        } catch {
            try? await store.close()
            throw error
        }
        return store
    }
}
