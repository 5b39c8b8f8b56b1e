import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import TollgateCore

/// Several issuer replicas on one PostgreSQL database (postgres-nio's pooled client). A
/// transaction is `withTransaction` on a pooled connection; reads that write back take their row
/// with `FOR UPDATE`, and compare-and-set is an `UPDATE … WHERE … RETURNING`, so each rule stays
/// single-winner across processes.
final class PostgresDatabase: SQLDatabase {
    let dialect = SQLDialect.postgres
    let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    private init(client: PostgresClient, runner: Task<Void, Never>, logger: Logger) {
        self.client = client
        self.runner = runner
        self.logger = logger
    }

    /// Connects; the pool runs (as a ServiceLifecycle `Service`, in a service group of its own)
    /// until `close()`.
    static func open(_ settings: LocalIssuerSettings.Postgres, logger: Logger) async -> PostgresDatabase {
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
        let group = ServiceGroup(services: [client], logger: logger)
        let runner = Task { _ = try? await group.run() }
        // Let the pool's run loop start before the first lease.
        await Task.yield()
        return PostgresDatabase(client: client, runner: runner, logger: logger)
    }

    func transaction<T: Sendable>(_ body: @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(Executor(connection: connection, logger: logger))
            }
        } catch let error as PostgresTransactionError {
            // The caller's own error, when there is one, rather than the wrapper.
            throw error.closureError ?? error
        }
    }

    func read(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await Self.rows(try await client.query(Self.query(sql, binds), logger: logger).collect())
    }

    func close() async throws {
        runner.cancel()
        await runner.value
    }

    struct Executor: SQLExecutor {
        let connection: PostgresConnection
        let logger: Logger

        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            try PostgresDatabase.rows(
                try await connection.query(PostgresDatabase.query(sql, binds), logger: logger).collect()
            )
        }
    }

    /// `sql` with its `?` placeholders numbered (`$1`, `$2`, …) and `binds` as PostgreSQL's.
    static func query(_ sql: String, _ binds: [SQLValue]) -> PostgresQuery {
        var text = ""
        var number = 0
        var quoted = false
        for character in sql {
            if character == "'" { quoted.toggle() }
            if character == "?" && !quoted {
                number += 1
                text += "$\(number)"
            } else {
                text.append(character)
            }
        }
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .text(let string): bindings.append(string)
            case .integer(let integer): bindings.append(integer)
            case .bool(let flag): bindings.append(flag)
            case .null: bindings.appendNull()
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }

    static func rows(_ rows: [PostgresRow]) throws -> [SQLRow] {
        try rows.map { row in
            var values: [String: SQLValue] = [:]
            for cell in row {
                guard cell.bytes != nil else {
                    values[cell.columnName] = .null
                    continue
                }
                switch cell.dataType {
                case .bool: values[cell.columnName] = .bool(try cell.decode(Bool.self))
                case .int2, .int4, .int8: values[cell.columnName] = .integer(try cell.decode(Int.self))
                default: values[cell.columnName] = .text(try cell.decode(String.self))
                }
            }
            return SQLRow(values: values)
        }
    }
}
