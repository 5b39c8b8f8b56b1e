import Logging
import SQLiteNIO
import TollgateCore

/// The embedded default: one SQLite file (sqlite-nio bundles SQLite), one connection, WAL. Every
/// transaction is `BEGIN IMMEDIATE`, which takes the write lock against other processes on the
/// same file, so compare-and-set stays single-winner across them.
final class SQLiteDatabase: SQLDatabase {
    let dialect = SQLDialect.sqlite
    private let connection: SQLiteConnection
    private let gate = SerialGate()

    private init(connection: SQLiteConnection) {
        self.connection = connection
    }

    static func open(path: String, logger: Logger) async throws -> SQLiteDatabase {
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        _ = try await connection.query("PRAGMA journal_mode=WAL")
        _ = try await connection.query("PRAGMA busy_timeout=5000")
        // In WAL mode NORMAL is durable across a crash of the process and keeps the database
        // consistent on power loss, which may lose the last commits (tokens issued in the last
        // moments, whose clients then sign in again); FULL would fsync every issued token.
        _ = try await connection.query("PRAGMA synchronous=NORMAL")
        _ = try await connection.query("PRAGMA foreign_keys=ON")
        return SQLiteDatabase(connection: connection)
    }

    func transaction<T: Sendable>(_ body: @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        try await gate.run {
            _ = try await connection.query("BEGIN IMMEDIATE")
            do {
                let result = try await body(Executor(connection: connection))
                _ = try await connection.query("COMMIT")
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    func read(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try await gate.run { try await Executor(connection: connection).query(sql, binds) }
    }

    func close() async throws {
        try await gate.run { try await connection.close() }
    }

    struct Executor: SQLExecutor {
        let connection: SQLiteConnection

        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
            let data: [SQLiteData] = binds.map { value in
                switch value {
                case .text(let text): .text(text)
                case .integer(let number): .integer(number)
                case .bool(let flag): .integer(flag ? 1 : 0)
                case .null: .null
                }
            }
            return try await connection.query(sql, data).map { row in
                var values: [String: SQLValue] = [:]
                for column in row.columns {
                    switch column.data {
                    case .text(let text): values[column.name] = .text(text)
                    case .integer(let number): values[column.name] = .integer(number)
                    case .float(let number): values[column.name] = .integer(Int(number))
                    case .blob, .null: values[column.name] = .null
                    }
                }
                return SQLRow(values: values)
            }
        }
    }
}
