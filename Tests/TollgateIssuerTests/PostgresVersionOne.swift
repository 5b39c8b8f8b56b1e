import PostgresNIO
import SQLiteNIO
import TollgateCore
import TollgateIssuer

/// A PostgreSQL database as the previous release wrote it: its schema (version 1) and the rows
/// of `SQLiteVersionOne`, with the consent keyed as that release keyed it (a JSON array) and a
/// spent refresh token's answer in clear.
enum PostgresVersionOne {
    static let schema = [
        "CREATE TABLE tollgate_schema_version (version INTEGER NOT NULL)",
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
        "INSERT INTO tollgate_schema_version (version) VALUES (1)",
    ]

    /// The bodies of `SQLiteVersionOne.rows`, in order: client, signing key, code, token, refresh.
    static var bodies: [String] {
        SQLiteVersionOne.rows.compactMap { _, binds -> String? in
            guard let first = binds.first, case .text(let body) = first else { return nil }
            return "$$" + body + "$$"
        }
    }

    static var rows: [String] {
        let body = bodies
        return [
            "INSERT INTO records (kind, key, expires_at, body) VALUES ('client', '@team/svc', NULL, \(body[0]))",
            "INSERT INTO records (kind, key, expires_at, body) VALUES ('signing_key', 'kid-1', NULL, \(body[1]))",
            "INSERT INTO records (kind, key, expires_at, body) VALUES ('code', 'c-1', 4000000000, \(body[2]))",
            """
            INSERT INTO tokens (digest, family_id, client_id, revoked, expires_at, body)
            VALUES ('a-1', 'fam-1', '@team/web', FALSE, 4000000000, \(body[3]))
            """,
            """
            INSERT INTO refresh_tokens (digest, family_id, client_id, spent_at, successor_digest, successor_answer,
                revoked, expires_at, body)
            VALUES ('r-spent', 'fam-1', '@team/web', 90, 'r-next', '{"access_token":"live","refresh_token":"live"}',
                FALSE, 4000000000, \(body[4]))
            """,
            #"INSERT INTO records (kind, key, expires_at, body) VALUES ('consent', '["ada","@team\/web"]', NULL, '["openid"]')"#,
        ]
    }

    static func write(_ settings: LocalIssuerSettings.Postgres) async throws {
        try await PostgresTestDatabase.admin(settings) { connection, logger in
            for statement in schema + rows {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }
}
