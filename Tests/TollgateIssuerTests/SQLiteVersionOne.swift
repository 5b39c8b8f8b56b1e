import Foundation
import SQLiteNIO

/// A database as the previous release wrote it: its schema (version 1) statement by statement,
/// and rows with the JSON bodies its records encoded to, a spent refresh token's answer in
/// clear among them.
enum SQLiteVersionOne {
    static let schema = [
        "PRAGMA journal_mode=WAL",
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
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
        "DELETE FROM schema_version",
        "INSERT INTO schema_version (version) VALUES (1)",
    ]

    static let rows: [(String, [SQLiteData])] = [
        (
            "INSERT INTO records (kind, key, expires_at, body) VALUES ('client', '@team/svc', NULL, ?)",
            [
                .text(
                    #"{"id":"@team/svc","kind":"machine","secret":{"form":"sha256","value":[1,2,3]},"redirectURIs":[],"#
                        + #""postLogoutRedirectURIs":[],"scopes":["api.read"],"grantTypes":["client_credentials"],"#
                        + #""skipConsent":false,"revoked":false}"#
                )
            ]
        ),
        (
            "INSERT INTO records (kind, key, expires_at, body) VALUES ('signing_key', 'kid-1', NULL, ?)",
            [.text(#"{"keyID":"kid-1","algorithm":"ES256","privateKeyDER":[1,2],"stage":"active","createdAt":1}"#)]
        ),
        (
            "INSERT INTO records (kind, key, expires_at, body) VALUES ('code', 'c-1', 4000000000, ?)",
            [
                .text(
                    #"{"digest":"c-1","clientID":"@team/web","redirectURI":"https:\/\/a\/cb","username":"ada","#
                        + #""scopes":["openid"],"authenticatedAt":1,"expiresAt":4000000000,"redeemed":false,"#
                        + #""issuedTokenDigests":[]}"#
                )
            ]
        ),
        (
            "INSERT INTO tokens (digest, family_id, revoked, expires_at, body) VALUES ('a-1', 'fam-1', 0, 4000000000, ?)",
            [
                .text(
                    #"{"digest":"a-1","kind":"access","clientID":"@team/web","subject":"ada","scope":["openid"],"#
                        + #""issuedAt":1,"expiresAt":4000000000,"revoked":false,"familyID":"fam-1","username":"ada"}"#
                )
            ]
        ),
        (
            """
            INSERT INTO refresh_tokens (digest, family_id, client_id, spent_at, successor_digest, successor_answer,
                revoked, expires_at, body)
            VALUES ('r-spent', 'fam-1', '@team/web', 90, 'r-next', '{"access_token":"live","refresh_token":"live"}',
                0, 4000000000, ?)
            """,
            [
                .text(
                    #"{"digest":"r-spent","familyID":"fam-1","generation":0,"clientID":"@team/web","username":"ada","#
                        + #""scopes":["openid","offline_access"],"authenticatedAt":1,"expiresAt":4000000000,"#
                        + #""revoked":false}"#
                )
            ]
        ),
    ]

    static func write(path: String) async throws {
        let connection = try await SQLiteConnection.open(storage: .file(path: path))
        for statement in schema { _ = try await connection.query(statement) }
        for (statement, binds) in rows { _ = try await connection.query(statement, binds) }
        try await connection.close()
    }

    /// How many rows `query` returns, read past the store.
    static func count(path: String, _ query: String) async throws -> Int {
        let connection = try await SQLiteConnection.open(storage: .file(path: path))
        let rows = try await connection.query(query)
        try await connection.close()
        return rows.count
    }
}
