/// A value bound to a statement or read from a row, in either database.
public enum SQLValue: Sendable, Equatable {
    case text(String)
    case integer(Int)
    case bool(Bool)
    case null

    static func text(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
    static func integer(_ value: Int?) -> SQLValue { value.map { .integer($0) } ?? .null }
}

/// A row, by column name.
public struct SQLRow: Sendable {
    var values: [String: SQLValue]

    func string(_ column: String) -> String? {
        if case .text(let value) = values[column] { return value }
        return nil
    }

    func integer(_ column: String) -> Int? {
        switch values[column] {
        case .integer(let value): value
        case .bool(let value): value ? 1 : 0
        case .text(let value): Int(value)
        default: nil
        }
    }

    /// SQLite keeps booleans as integers, PostgreSQL as booleans.
    func bool(_ column: String) -> Bool {
        switch values[column] {
        case .bool(let value): value
        case .integer(let value): value != 0
        default: false
        }
    }
}

/// Runs statements inside one transaction.
protocol SQLExecutor: Sendable {
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
}

extension SQLExecutor {
    @discardableResult
    func query(_ sql: String) async throws -> [SQLRow] { try await query(sql, []) }
}

/// One database behind the issuer's SQL store: SQLite (one connection, `BEGIN IMMEDIATE`) or
/// PostgreSQL (a pool, `withTransaction`). Statements are written once, with `?` placeholders;
/// the database turns them into its own.
protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// `body` in one transaction: committed when it returns, rolled back when it throws.
    func transaction<T: Sendable>(_ body: @Sendable (any SQLExecutor) async throws -> T) async throws -> T
    /// One statement on its own (atomic in both databases): the read paths.
    func read(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
    func close() async throws
}

/// What the two databases spell differently; everything else is one SQL text.
struct SQLDialect: Sendable {
    /// The type of Unix-second columns.
    var bigint: String
    /// The type of flag columns.
    var boolean: String
    /// Appended to a `SELECT` that a transaction reads to write back: PostgreSQL locks the row
    /// (`FOR UPDATE`); SQLite's `BEGIN IMMEDIATE` already holds the only write lock.
    var forUpdate: String
    /// The larger of two values.
    var greatest: String
    var schemaTable: String
    /// Taken inside the migration's transaction, so replicas starting together migrate once.
    var migrationLock: String?

    static let sqlite = SQLDialect(
        bigint: "INTEGER",
        boolean: "INTEGER",
        forUpdate: "",
        greatest: "MAX",
        schemaTable: "schema_version",
        migrationLock: nil
    )

    static let postgres = SQLDialect(
        bigint: "BIGINT",
        boolean: "BOOLEAN",
        forUpdate: " FOR UPDATE",
        greatest: "GREATEST",
        schemaTable: "tollgate_schema_version",
        migrationLock: "SELECT pg_advisory_xact_lock(\(0x746f_6c6c_6761_7465))"
    )
}
