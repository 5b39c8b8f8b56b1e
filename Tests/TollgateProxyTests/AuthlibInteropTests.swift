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

    @Test(arguments: IssuerFixture.storages)
    func authlibCompletesEveryFlowAgainstTheRunningIssuer(_ storage: IssuerFixture.Storage) async throws {
        let fixture = try IssuerFixture(storage: storage)
        defer { fixture.stop() }
        try await fixture.serve()
        let client = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", Self.script, fixture.issuer, "@team/web", IssuerFixture.webSecret, "@team/svc",
                IssuerFixture.machineSecret, "ada", IssuerFixture.password,
            ]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(90)))
        #expect(client.process.terminationStatus == 0, "\(client.log)\n--- tollgate ---\n\(fixture.logs)")
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
