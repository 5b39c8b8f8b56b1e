import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import Synchronization
import TollgateCore

/// The issuer's state in one SQLite file (sqlite-nio, which bundles SQLite): the embedded
/// default. WAL journal, created and migrated on open, survives restarts. Every method is one
/// `BEGIN IMMEDIATE` transaction, so rotation and code redemption stay single-winner even
/// with several processes on the file.
///
/// Records are kept as JSON bodies keyed by kind and key; the columns compare-and-set works on
/// (spent, revoked, family) are real columns.
public final class SQLiteIssuerStore: IssuerStore {
    static let schemaVersion = 2

    private let connection: SQLiteConnection
    private let gate = SerialGate()

    private init(connection: SQLiteConnection) {
        self.connection = connection
    }

    /// Opens (creating and migrating when needed) the database at `path`.
    public static func open(
        path: String,
        logger: Logger = Logger(label: "tollgate.issuer.sqlite")
    ) async throws
        -> SQLiteIssuerStore
    {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        let store = SQLiteIssuerStore(connection: connection)
        try await store.migrate()
        return store
    }

    public func close() async throws {
        try await gate.run { try await connection.close() }
    }

    func migrate() async throws {
        _ = try await connection.query("PRAGMA journal_mode=WAL")
        _ = try await connection.query("PRAGMA busy_timeout=5000")
        // In WAL mode NORMAL is durable across a crash of the process and keeps the database
        // consistent on power loss, which may lose the last commits (tokens issued in the last
        // moments, whose clients then sign in again); FULL would fsync every issued token.
        _ = try await connection.query("PRAGMA synchronous=NORMAL")
        _ = try await connection.query("PRAGMA foreign_keys=ON")
        try await transaction { connection in
            _ = try await connection.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            let rows = try await connection.query("SELECT version FROM schema_version")
            let current = rows.first?.column("version")?.integer ?? 0
            if current > Self.schemaVersion {
                throw StoreError.newerSchema(current)
            }
            if current < 1 {
                for statement in [
                    """
                    CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, expires_at INTEGER,
                        body TEXT NOT NULL, PRIMARY KEY (kind, key))
                    """,
                    "CREATE INDEX records_expiry ON records (expires_at)",
                    """
                    CREATE TABLE tokens (digest TEXT PRIMARY KEY, family_id TEXT, revoked INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL, body TEXT NOT NULL)
                    """,
                    "CREATE INDEX tokens_family ON tokens (family_id)",
                    """
                    CREATE TABLE refresh_tokens (digest TEXT PRIMARY KEY, family_id TEXT NOT NULL,
                        client_id TEXT NOT NULL, spent_at INTEGER, successor_digest TEXT, successor_answer TEXT,
                        revoked INTEGER NOT NULL, expires_at INTEGER NOT NULL, body TEXT NOT NULL)
                    """,
                    "CREATE INDEX refresh_family ON refresh_tokens (family_id)",
                ] {
                    _ = try await connection.query(statement)
                }
            }
            if current < 2 {
                for statement in Self.version2 { _ = try await connection.query(statement) }
            }
            if current < Self.schemaVersion {
                _ = try await connection.query("DELETE FROM schema_version")
                _ = try await connection.query(
                    "INSERT INTO schema_version (version) VALUES (?)",
                    [.integer(Self.schemaVersion)]
                )
            }
        }
    }

    /// Version 2: revoked grants (kept until their last token expires), event counts (the
    /// brute-force limits), and no retry answer of version 1 left in clear.
    static let version2 = [
        "CREATE TABLE revoked_grants (grant_id TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)",
        "CREATE INDEX revoked_grants_at ON revoked_grants (revoked_at)",
        """
        CREATE TABLE event_counts (key TEXT PRIMARY KEY, count INTEGER NOT NULL, last INTEGER NOT NULL,
            expires_at INTEGER NOT NULL)
        """,
        "UPDATE refresh_tokens SET successor_answer = NULL",
    ]

    enum StoreError: Error {
        case newerSchema(Int)
    }

    // MARK: - Plumbing

    /// One transaction at a time on the connection; `BEGIN IMMEDIATE` takes the write lock
    /// against other processes.
    func transaction<T: Sendable>(_ body: @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        try await gate.run {
            _ = try await connection.query("BEGIN IMMEDIATE")
            do {
                let result = try await body(connection)
                _ = try await connection.query("COMMIT")
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    /// One statement on its own (atomic in SQLite, no explicit transaction): the read paths.
    func read<T: Sendable>(_ body: @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        try await gate.run { try await body(connection) }
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    static let bodies = DecodedBodies()

    static func decode<T: Decodable & Sendable>(_ type: T.Type, _ row: SQLiteRow?) throws -> T? {
        guard let text = row?.column("body")?.string else { return nil }
        return try bodies.decode(type, text)
    }

    func put<T: Encodable & Sendable>(_ kind: String, _ key: String, _ value: T, expiresAt: Int? = nil) async throws {
        let body = try Self.encode(value)
        try await transaction { connection in
            _ = try await connection.query(
                "INSERT OR REPLACE INTO records (kind, key, expires_at, body) VALUES (?, ?, ?, ?)",
                [.text(kind), .text(key), expiresAt.map { .integer($0) } ?? .null, .text(body)]
            )
        }
    }

    func get<T: Decodable & Sendable>(_ type: T.Type, _ kind: String, _ key: String) async throws -> T? {
        let rows = try await read { connection in
            try await connection.query(
                "SELECT body FROM records WHERE kind = ? AND key = ?",
                [.text(kind), .text(key)]
            )
        }
        return try Self.decode(type, rows.first)
    }

    func delete(_ kind: String, _ key: String) async throws {
        try await transaction { connection in
            _ = try await connection.query("DELETE FROM records WHERE kind = ? AND key = ?", [.text(kind), .text(key)])
        }
    }

    // MARK: - IssuerStore

    public func client(id: String) async throws -> RegisteredClient? {
        try await get(RegisteredClient.self, "client", id)
    }

    public func saveClient(_ client: RegisteredClient) async throws { try await put("client", client.id, client) }

    public func clients() async throws -> [RegisteredClient] {
        let rows = try await read { connection in
            try await connection.query("SELECT body FROM records WHERE kind = 'client' ORDER BY key")
        }
        return try rows.compactMap { try Self.decode(RegisteredClient.self, $0) }
    }

    public func revokeClient(id: String, now: Int) async throws -> Bool {
        try await transaction { connection in
            let rows = try await connection.query(
                "SELECT body FROM records WHERE kind = 'client' AND key = ?",
                [.text(id)]
            )
            guard var client = try Self.decode(RegisteredClient.self, rows.first) else { return false }
            client.revoked = true
            _ = try await connection.query(
                "UPDATE records SET body = ? WHERE kind = 'client' AND key = ?",
                [.text(try Self.encode(client)), .text(id)]
            )
            _ = try await connection.query(
                """
                INSERT INTO revoked_grants (grant_id, revoked_at, expires_at)
                SELECT grant_id, ?, MAX(expires_at) FROM (
                    SELECT family_id AS grant_id, expires_at FROM tokens
                    WHERE json_extract(body, '$.clientID') = ? AND family_id IS NOT NULL
                    UNION ALL SELECT family_id, expires_at FROM refresh_tokens WHERE client_id = ?
                ) WHERE true GROUP BY grant_id
                ON CONFLICT (grant_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)
                """,
                [.integer(now), .text(id), .text(id)]
            )
            _ = try await connection.query(
                "UPDATE tokens SET revoked = 1 WHERE json_extract(body, '$.clientID') = ?",
                [.text(id)]
            )
            _ = try await connection.query(
                "UPDATE refresh_tokens SET revoked = 1, successor_answer = NULL WHERE client_id = ?",
                [.text(id)]
            )
            return true
        }
    }

    public func signingKeys() async throws -> [StoredSigningKey] {
        let rows = try await read { connection in
            try await connection.query("SELECT body FROM records WHERE kind = 'signing_key'")
        }
        return try rows.compactMap { try Self.decode(StoredSigningKey.self, $0) }
    }

    public func saveSigningKey(_ key: StoredSigningKey) async throws { try await put("signing_key", key.keyID, key) }

    public func deleteSigningKey(keyID: String) async throws { try await delete("signing_key", keyID) }

    public func saveToken(_ token: TokenRecord) async throws {
        let body = try Self.encode(token)
        try await transaction { connection in
            _ = try await connection.query(
                "INSERT OR REPLACE INTO tokens (digest, family_id, revoked, expires_at, body) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(token.digest), token.familyID.map { .text($0) } ?? .null, .integer(token.revoked ? 1 : 0),
                    .integer(token.expiresAt), .text(body),
                ]
            )
        }
    }

    public func token(digest: String) async throws -> TokenRecord? {
        let rows = try await read { connection in
            try await connection.query(
                """
                SELECT body, revoked OR EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = family_id)
                    AS revoked
                FROM tokens WHERE digest = ?
                """,
                [.text(digest)]
            )
        }
        guard var record = try Self.decode(TokenRecord.self, rows.first) else { return nil }
        record.revoked = (rows.first?.column("revoked")?.integer ?? 0) != 0
        return record
    }

    public func revokeToken(digest: String) async throws -> Bool {
        try await transaction { connection in
            let rows = try await connection.query(
                "UPDATE tokens SET revoked = 1 WHERE digest = ? RETURNING digest",
                [.text(digest)]
            )
            return !rows.isEmpty
        }
    }

    public func deleteExpired(before now: Int, answersSpentBefore: Int) async throws -> Int {
        try await transaction { connection in
            _ = try await connection.query(
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
                count += try await connection.query(statement, [.integer(now)]).count
            }
            return count
        }
    }

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

    public func consentedScopes(username: String, clientID: String) async throws -> Set<String> {
        try await get(Set<String>.self, "consent", username + "\u{0}" + clientID) ?? []
    }

    public func saveConsent(username: String, clientID: String, scopes: Set<String>) async throws {
        let key = username + "\u{0}" + clientID
        try await transaction { connection in
            let rows = try await connection.query(
                "SELECT body FROM records WHERE kind = 'consent' AND key = ?",
                [.text(key)]
            )
            var merged = try Self.decode(Set<String>.self, rows.first) ?? []
            merged.formUnion(scopes)
            _ = try await connection.query(
                "INSERT OR REPLACE INTO records (kind, key, expires_at, body) VALUES ('consent', ?, NULL, ?)",
                [.text(key), .text(try Self.encode(merged))]
            )
        }
    }

    public func saveCode(_ code: AuthorizationCodeRecord) async throws {
        try await put("code", code.digest, code, expiresAt: code.expiresAt)
    }

    public func redeemCode(
        digest: String,
        now: Int,
        grantUntil: Int,
        accept: @Sendable (AuthorizationCodeRecord) -> Bool
    ) async throws -> CodeRedemption {
        try await transaction { connection in
            let rows = try await connection.query(
                "SELECT body FROM records WHERE kind = 'code' AND key = ?",
                [.text(digest)]
            )
            guard let code = try Self.decode(AuthorizationCodeRecord.self, rows.first) else { return .unknown }
            if code.redeemed {
                if let grant = code.familyID {
                    try await Self.revokeGrant(grant, until: grantUntil, now: now, on: connection)
                }
                return .replayed(code)
            }
            guard accept(code) else { return .refused(code) }
            var redeemed = code
            redeemed.redeemed = true
            _ = try await connection.query(
                "UPDATE records SET body = ? WHERE kind = 'code' AND key = ?",
                [.text(try Self.encode(redeemed)), .text(digest)]
            )
            return .redeemed(code)
        }
    }

    public func saveRefreshToken(_ token: RefreshTokenRecord) async throws {
        let body = try Self.encode(token)
        try await transaction { connection in
            try await Self.insertRefresh(token, body: body, on: connection)
        }
    }

    static func insertRefresh(_ token: RefreshTokenRecord, body: String, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            """
            INSERT OR REPLACE INTO refresh_tokens (digest, family_id, client_id, spent_at, successor_digest,
                successor_answer, revoked, expires_at, body) VALUES (?, ?, ?, NULL, NULL, NULL, ?, ?, ?)
            """,
            [
                .text(token.digest), .text(token.familyID), .text(token.clientID), .integer(token.revoked ? 1 : 0),
                .integer(token.expiresAt), .text(body),
            ]
        )
    }

    public func refreshToken(digest: String) async throws -> RefreshTokenRecord? {
        let rows = try await read { connection in
            try await connection.query(
                """
                SELECT body, spent_at, successor_digest,
                    revoked OR EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = family_id) AS revoked
                FROM refresh_tokens WHERE digest = ?
                """,
                [.text(digest)]
            )
        }
        guard var record = try Self.decode(RefreshTokenRecord.self, rows.first) else { return nil }
        record.spentAt = rows.first?.column("spent_at")?.integer
        record.successorDigest = rows.first?.column("successor_digest")?.string
        record.revoked = (rows.first?.column("revoked")?.integer ?? 0) != 0
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
        return try await transaction { connection in
            // The compare-and-set: only an unspent, unrevoked, unexpired token of this client moves.
            let won = try await connection.query(
                """
                UPDATE refresh_tokens SET spent_at = ?, successor_digest = ?, successor_answer = ?
                WHERE digest = ? AND client_id = ? AND spent_at IS NULL AND revoked = 0 AND expires_at > ?
                    AND NOT EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = family_id)
                RETURNING digest
                """,
                [
                    .integer(now), .text(successor.digest), answer.map { .text($0) } ?? .null, .text(digest),
                    .text(clientID), .integer(now),
                ]
            )
            if !won.isEmpty {
                try await Self.insertRefresh(successor, body: successorBody, on: connection)
                return .rotated
            }
            let rows = try await connection.query(
                """
                SELECT r.family_id, r.client_id, r.spent_at, r.successor_answer, s.spent_at AS successor_spent,
                    r.revoked OR EXISTS (SELECT 1 FROM revoked_grants g WHERE g.grant_id = r.family_id) AS revoked
                FROM refresh_tokens r LEFT JOIN refresh_tokens s ON s.digest = r.successor_digest
                WHERE r.digest = ?
                """,
                [.text(digest)]
            )
            guard let row = rows.first, row.column("client_id")?.string == clientID,
                let family = row.column("family_id")?.string
            else { return .refused(familyRevoked: false) }
            guard let spentAt = row.column("spent_at")?.integer else {
                return .refused(familyRevoked: false)
            }
            let revoked = (row.column("revoked")?.integer ?? 0) != 0
            let successorUnused = row.column("successor_spent")?.integer == nil
            if !revoked, now - spentAt <= reuseInterval, successorUnused,
                let given = row.column("successor_answer")?.string
            {
                return .replayWithinGrace(given)
            }
            try await Self.revokeGrant(family, until: grantUntil, now: now, on: connection)
            return .refused(familyRevoked: true)
        }
    }

    public func revokeGrant(_ grantID: String, until: Int, now: Int) async throws {
        try await transaction { connection in
            try await Self.revokeGrant(grantID, until: until, now: now, on: connection)
        }
    }

    static func revokeGrant(_ grantID: String, until: Int, now: Int, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            """
            INSERT INTO revoked_grants (grant_id, revoked_at, expires_at) VALUES (?, ?, ?)
            ON CONFLICT (grant_id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)
            """,
            [.text(grantID), .integer(now), .integer(until)]
        )
        _ = try await connection.query(
            "UPDATE refresh_tokens SET revoked = 1, successor_answer = NULL WHERE family_id = ?",
            [.text(grantID)]
        )
        _ = try await connection.query("UPDATE tokens SET revoked = 1 WHERE family_id = ?", [.text(grantID)])
    }

    public func revokedGrants(since: Int, now: Int) async throws -> [RevokedGrant] {
        let rows = try await read { connection in
            try await connection.query(
                "SELECT grant_id, revoked_at, expires_at FROM revoked_grants WHERE revoked_at >= ? AND expires_at >= ?",
                [.integer(since), .integer(now)]
            )
        }
        return rows.compactMap { row in
            guard let id = row.column("grant_id")?.string, let at = row.column("revoked_at")?.integer,
                let until = row.column("expires_at")?.integer
            else { return nil }
            return RevokedGrant(grantID: id, revokedAt: at, until: until)
        }
    }

    // MARK: - Event counts

    public func countEvent(key: String, now: Int, expiresAt: Int) async throws -> EventCount {
        try await transaction { connection in
            let rows = try await connection.query(
                """
                INSERT INTO event_counts (key, count, last, expires_at) VALUES (?, 1, ?, ?)
                ON CONFLICT (key) DO UPDATE SET
                    count = CASE WHEN event_counts.expires_at <= excluded.last THEN 1 ELSE event_counts.count + 1 END,
                    last = excluded.last, expires_at = excluded.expires_at
                RETURNING count
                """,
                [.text(key), .integer(now), .integer(expiresAt)]
            )
            return EventCount(count: rows.first?.column("count")?.integer ?? 1, last: now)
        }
    }

    public func eventCount(key: String, now: Int) async throws -> EventCount? {
        let rows = try await read { connection in
            try await connection.query(
                "SELECT count, last FROM event_counts WHERE key = ? AND expires_at > ?",
                [.text(key), .integer(now)]
            )
        }
        guard let row = rows.first, let count = row.column("count")?.integer, let last = row.column("last")?.integer
        else { return nil }
        return EventCount(count: count, last: last)
    }

    public func resetEvents(key: String) async throws {
        try await transaction { connection in
            _ = try await connection.query("DELETE FROM event_counts WHERE key = ?", [.text(key)])
        }
    }

    // MARK: - Device authorizations (RFC 8628)

    public func saveDeviceAuthorization(_ record: DeviceAuthorizationRecord) async throws -> Bool {
        let body = try Self.encode(record)
        let digest = try Self.encode(record.digest)
        return try await transaction { connection in
            let taken = try await connection.query(
                "INSERT OR IGNORE INTO records (kind, key, expires_at, body) VALUES ('user_code', ?, ?, ?) RETURNING key",
                [.text(record.userCode), .integer(record.expiresAt), .text(digest)]
            )
            guard !taken.isEmpty else { return false }
            _ = try await connection.query(
                "INSERT INTO records (kind, key, expires_at, body) VALUES ('device', ?, ?, ?)",
                [.text(record.digest), .integer(record.expiresAt), .text(body)]
            )
            return true
        }
    }

    static func device(userCode: String, on connection: SQLiteConnection) async throws -> DeviceAuthorizationRecord? {
        let rows = try await connection.query(
            "SELECT body FROM records WHERE kind = 'user_code' AND key = ?",
            [.text(userCode)]
        )
        guard let digest = try decode(String.self, rows.first) else { return nil }
        let devices = try await connection.query(
            "SELECT body FROM records WHERE kind = 'device' AND key = ?",
            [.text(digest)]
        )
        return try decode(DeviceAuthorizationRecord.self, devices.first)
    }

    static func update(device record: DeviceAuthorizationRecord, on connection: SQLiteConnection) async throws {
        _ = try await connection.query(
            "UPDATE records SET body = ? WHERE kind = 'device' AND key = ?",
            [.text(try encode(record)), .text(record.digest)]
        )
    }

    public func deviceAuthorization(userCode: String) async throws -> DeviceAuthorizationRecord? {
        try await transaction { connection in try await Self.device(userCode: userCode, on: connection) }
    }

    public func decideDeviceAuthorization(
        userCode: String,
        username: String?,
        authenticatedAt: Int,
        now: Int
    ) async throws -> Bool {
        try await transaction { connection in
            guard var record = try await Self.device(userCode: userCode, on: connection),
                record.status == .pending, record.expiresAt > now
            else { return false }
            record.status = username == nil ? .denied : .approved
            record.username = username
            record.authenticatedAt = authenticatedAt
            try await Self.update(device: record, on: connection)
            return true
        }
    }

    public func pollDeviceAuthorization(
        digest: String,
        clientID: String,
        now: Int
    ) async throws -> DeviceAuthorizationRecord? {
        try await transaction { connection in
            let rows = try await connection.query(
                "SELECT body FROM records WHERE kind = 'device' AND key = ?",
                [.text(digest)]
            )
            guard let record = try Self.decode(DeviceAuthorizationRecord.self, rows.first), record.clientID == clientID
            else { return nil }
            try await Self.update(device: record.polled(at: now), on: connection)
            return record
        }
    }
}
