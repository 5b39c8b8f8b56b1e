import Foundation

/// The test PostgreSQL server `scripts/postgres.sh` starts (`TOLLGATE_TEST_POSTGRES_URL`,
/// `TOLLGATE_TEST_POSTGRES_PASSWORD_FILE`), for tests that run the real binary on it.
public enum TestPostgres {
    static let environment = ProcessInfo.processInfo.environment

    public static var isConfigured: Bool { environment["TOLLGATE_TEST_POSTGRES_URL"] != nil }

    public static var passwordFile: String? { environment["TOLLGATE_TEST_POSTGRES_PASSWORD_FILE"] }

    /// Creates an empty database with psql and returns its URL (without password).
    public static func createDatabase() throws -> String {
        guard let url = environment["TOLLGATE_TEST_POSTGRES_URL"], let passwordFile,
            let slash = url.lastIndex(of: "/")
        else { throw Missing() }
        let name = "tollgate_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let password = try String(contentsOfFile: passwordFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", "-v", "ON_ERROR_STOP=1", "-q", url, "-c", "CREATE DATABASE \(name)"]
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = password
        process.environment = environment
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Missing() }
        return String(url[...slash]) + name
    }

    public struct Missing: Error, CustomStringConvertible {
        public var description: String { "no test PostgreSQL server (run the tests through scripts/test.sh)" }
    }
}
