import Foundation
import Logging
import PostgresNIO
import TollgateCore
import TollgateIssuer

/// A fresh database on the test PostgreSQL server that `scripts/postgres.sh` starts (its URL
/// and password file in `TOLLGATE_TEST_POSTGRES_URL` / `_PASSWORD_FILE`). The test script sets
/// `TOLLGATE_TEST_REQUIRE_POSTGRES=1`, so there a missing server is a failure, not a skip.
enum PostgresTestDatabase {
    static let environment = ProcessInfo.processInfo.environment

    static var isConfigured: Bool { environment["TOLLGATE_TEST_POSTGRES_URL"] != nil }

    static var isRequired: Bool { environment["TOLLGATE_TEST_REQUIRE_POSTGRES"] == "1" }

    static var server: LocalIssuerSettings.Postgres? {
        guard let url = environment["TOLLGATE_TEST_POSTGRES_URL"],
            var settings = LocalIssuerSettings.Postgres.parse(url)?.settings
        else { return nil }
        if let file = environment["TOLLGATE_TEST_POSTGRES_PASSWORD_FILE"],
            let text = try? String(contentsOfFile: file, encoding: .utf8)
        {
            settings.password = Secret(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return settings
    }

    /// Creates an empty database and returns the settings that reach it.
    static func create() async throws -> LocalIssuerSettings.Postgres {
        guard var settings = server else { throw Missing() }
        let name = "tollgate_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await admin(settings) { connection, logger in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        settings.database = name
        return settings
    }

    static func drop(_ database: LocalIssuerSettings.Postgres) async throws {
        guard let settings = server else { return }
        try await admin(settings) { connection, logger in
            try await connection.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database.database) WITH (FORCE)"),
                logger: logger
            )
        }
    }

    struct Missing: Error, CustomStringConvertible {
        var description: String { "no test PostgreSQL server (run the tests through scripts/test.sh)" }
    }

    static func admin(
        _ settings: LocalIssuerSettings.Postgres,
        _ body: (PostgresConnection, Logger) async throws -> Void
    ) async throws {
        let logger = Logger(label: "tollgate.test.postgres")
        let connection = try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: settings.host,
                port: settings.port,
                username: settings.username,
                password: settings.password?.value,
                database: settings.database,
                tls: .disable
            ),
            id: 1,
            logger: logger
        )
        do {
            try await body(connection, logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
