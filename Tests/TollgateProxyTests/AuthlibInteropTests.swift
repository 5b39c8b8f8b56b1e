import Foundation
import Testing
import TollgateTestSupport

/// Authlib, an independent OAuth 2 / OpenID Connect client from PyPI, drives `tollgate serve`'s
/// issuer over real HTTP: the code flow with PKCE through the HTML forms, ID token validation,
/// userinfo, refresh rotation and family revocation, client_credentials, introspection,
/// revocation, the device flow and RP-initiated logout (Tests/Interop/authlib_flow.py) — once
/// on SQLite and once on PostgreSQL.
@Suite("Authlib interop", .serialized)
struct AuthlibInteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/authlib_flow.py").path

    enum Storage: String, Sendable, CaseIterable {
        case sqlite
        case postgres
    }

    static let storages: [Storage] = [.sqlite] + (TestPostgres.isConfigured ? [.postgres] : [])

    @Test(arguments: storages)
    func authlibCompletesEveryFlowAgainstTheRunningIssuer(_ storage: Storage) async throws {
        let port = try Ports.free()
        let adminPort = try Ports.free()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let webSecret = "web-secret-0123456789abcdef0123456789"
        let machineSecret = "m2m-secret-0123456789abcdef0123456789"
        let password = "correct horse battery staple"
        try webSecret.write(to: directory.appendingPathComponent("web.secret"), atomically: true, encoding: .utf8)
        try machineSecret.write(to: directory.appendingPathComponent("m2m.secret"), atomically: true, encoding: .utf8)
        try PasswordHash.forTests(password).write(
            to: directory.appendingPathComponent("ada.hash"),
            atomically: true,
            encoding: .utf8
        )
        var storageSection = "sqlite: issuer.sqlite"
        if storage == .postgres {
            let url = try TestPostgres.createDatabase()
            storageSection = """
                postgres:
                      url: \(url)
                      password_file: \(try #require(TestPostgres.passwordFile))
                """
        }
        let file = directory.appendingPathComponent("tollgate.yaml")
        try """
        listen: 127.0.0.1:\(port)
        admin: 127.0.0.1:\(adminPort)
        server:
          access_log: false
        issuer:
          issuer: http://127.0.0.1:\(port)
          grant_types: [authorization_code, client_credentials, refresh_token, device_code]
          storage:
            \(storageSection)
          apis:
            - audience: "@team/orders"
              scopes: ["@team/orders.read"]
          clients:
            - client_id: "@team/web"
              type: web
              client_secret_file: web.secret
              redirect_uris: ["http://127.0.0.1:9/callback"]
              post_logout_redirect_uris: ["http://127.0.0.1:9/signed-out"]
              scopes: [openid, profile, email, offline_access, "@team/orders.read"]
            - client_id: "@team/tv"
              type: device
              scopes: [openid, profile, offline_access, "@team/orders.read"]
            - client_id: "@team/svc"
              type: machine
              client_secret_file: m2m.secret
              scopes: ["@team/orders.read"]
          users:
            - username: ada
              password_hash_file: ada.hash
              claims: { name: Ada Lovelace, email: ada@example.test }
        routes:
          - match: { prefix: / }
            issuers: [local]
        """.write(to: file, atomically: true, encoding: .utf8)
        let tollgate = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path])
        defer { tollgate.stop() }
        try await Ports.waitUntilListening(port)
        let client = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", Self.script, "http://127.0.0.1:\(port)", "@team/web", webSecret, "@team/svc", machineSecret,
                "ada", password,
            ]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(90)))
        #expect(client.process.terminationStatus == 0, "\(client.log)\n--- tollgate ---\n\(tollgate.log)")
        #expect(client.log.contains("authlib: all checks passed"))
    }
}

enum PasswordHash {
    /// A scrypt hash made by the real binary's `tollgate issuer hash-password`.
    static func forTests(_ password: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TollgateBinary.path)
        process.arguments = ["issuer", "hash-password"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data((password + "\n").utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
