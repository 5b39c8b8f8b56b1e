import Foundation
import TollgateTestSupport

/// A directory with a `tollgate.yaml` whose `issuer:` section declares the clients and the user
/// the issuer tests drive (secrets and the password hash in files beside it), and the
/// `tollgate serve` processes started on it.
final class IssuerFixture: @unchecked Sendable {
    static let webSecret = "web-secret-0123456789abcdef0123456789"
    static let machineSecret = "m2m-secret-0123456789abcdef0123456789"
    static let password = "correct horse battery staple"
    static let redirectURI = "http://127.0.0.1:9/callback"
    static let postLogoutURI = "http://127.0.0.1:9/signed-out"

    enum Storage: String, Sendable, CaseIterable {
        case sqlite
        case postgres
    }

    /// PostgreSQL joins when the test server is there (always under scripts/test.sh).
    static let storages: [Storage] = [.sqlite] + (TestPostgres.isConfigured ? [.postgres] : [])

    let directory: URL
    let issuerPort: Int
    /// The file without `listen:` and `admin:`, which each process gets of its own.
    let body: String
    /// The PostgreSQL database's URL (no password), when the storage is PostgreSQL.
    let postgresURL: String?
    var processes: [ExternalProcess] = []

    var issuer: String { "http://127.0.0.1:\(issuerPort)" }
    /// The first process's file (what the administration commands are pointed at).
    var configuration: URL { directory.appendingPathComponent("tollgate-0.yaml") }

    /// - Parameters:
    ///   - extra: more lines for the `issuer:` section, indented by two spaces.
    ///   - routes: the file's `routes:` and anything after it.
    ///   - extraClients: more entries for `clients:`, written from column 0 (`- client_id: …`).
    ///   - extraAPIs: more entries for `apis:`, written from column 0 (`- audience: …`).
    init(
        storage: Storage,
        extra: String = "",
        extraClients: String = "",
        extraAPIs: String = "",
        upstream: Int? = nil,
        routes: String? = nil,
        port: Int? = nil
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        issuerPort = try port ?? Ports.free()
        try Self.webSecret.write(to: directory.appendingPathComponent("web.secret"), atomically: true, encoding: .utf8)
        try Self.machineSecret.write(
            to: directory.appendingPathComponent("m2m.secret"),
            atomically: true,
            encoding: .utf8
        )
        try PasswordHash.forTests(Self.password).write(
            to: directory.appendingPathComponent("ada.hash"),
            atomically: true,
            encoding: .utf8
        )
        // Each line of `extraClients` (written from column 0) under `clients:`.
        let clientsBlock = extraClients.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        let apisBlock = extraAPIs.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        var storageSection = "sqlite: issuer.sqlite"
        postgresURL = storage == .postgres ? try TestPostgres.createDatabase() : nil
        if let postgresURL {
            storageSection = """
                postgres:
                      url: \(postgresURL)
                      password_file: \(TestPostgres.passwordFile ?? "")
                """
        }
        body = """
            server:
              access_log: false
            \(upstream.map { "upstream: http://127.0.0.1:\($0)" } ?? "")
            issuer:
              issuer: http://127.0.0.1:\(issuerPort)
              grant_types: [authorization_code, client_credentials, refresh_token, device_code]
              storage:
                \(storageSection)
              claims:
                groups: [groups, realm_access]
              apis:
                - audience: "@team/orders"
                  scopes: ["@team/orders.read"]
                  claims: [groups, realm_access]
                - audience: "@team/billing"
                  scopes: ["@team/billing.read"]
            \(apisBlock)
              clients:
                - client_id: "@team/web"
                  type: web
                  client_secret_file: web.secret
                  redirect_uris: ["\(Self.redirectURI)"]
                  post_logout_redirect_uris: ["\(Self.postLogoutURI)"]
                  scopes: [openid, profile, email, offline_access, groups, "@team/orders.read"]
                  refresh_token_ttl: 1d
                - client_id: "@team/svc"
                  type: machine
                  client_secret_file: m2m.secret
                  scopes: ["@team/orders.read"]
                - client_id: "@team/tv"
                  type: device
                  scopes: [openid, profile, offline_access, "@team/orders.read"]
            \(clientsBlock)
              users:
                - username: ada
                  password_hash_file: ada.hash
                  claims:
                    name: Ada Lovelace
                    email: ada@example.test
                    email_verified: true
                    groups: [admins]
                    realm_access: { roles: [auditor] }
                - username: bob
                  password_hash_file: ada.hash
                  claims: { name: Bob, groups: [staff] }
            \(extra)
            \(routes ?? "routes:\n  - match: { prefix: / }\n    issuers: [local]")
            """
        try write(index: 0, port: issuerPort, adminPort: try Ports.free())
    }

    func write(index: Int, port: Int, adminPort: Int) throws {
        try ("listen: 127.0.0.1:\(port)\nadmin: 127.0.0.1:\(adminPort)\n" + body).write(
            to: directory.appendingPathComponent("tollgate-\(index).yaml"),
            atomically: true,
            encoding: .utf8
        )
    }

    /// Starts `tollgate serve` on the file; the first process listens on the issuer's port,
    /// later ones (replicas on the same storage) on ports of their own. Returns the port.
    @discardableResult
    func serve() async throws -> Int {
        let index = processes.count
        let port = index == 0 ? issuerPort : try Ports.free()
        if index > 0 { try write(index: index, port: port, adminPort: try Ports.free()) }
        let file = directory.appendingPathComponent("tollgate-\(index).yaml")
        let process = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path])
        processes.append(process)
        try await Ports.waitUntilListening(port)
        return port
    }

    /// Runs `tollgate ARGUMENTS` to completion; returns its exit status and output.
    func run(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TollgateBinary.path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The SQLite file of `storage: sqlite`.
    var sqlitePath: String { directory.appendingPathComponent("issuer.sqlite").path }

    var logs: String { processes.map(\.log).joined(separator: "\n--- next process ---\n") }

    func stop() {
        for process in processes { process.stop() }
        try? FileManager.default.removeItem(at: directory)
    }
}
