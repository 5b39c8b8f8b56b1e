import Foundation
import Testing
import TollgateCore
import TollgateTestSupport

/// Every signing algorithm of the issuer through real processes, checked by libraries nobody
/// here wrote (Tests/Interop/algorithms.py): joserfc verifies access tokens, Authlib as relying
/// party validates ID tokens (HS256 with the client's secret too), and a second Tollgate
/// verifies the access tokens from the issuer's JWKS with `algorithms:` naming the one.
@Suite("Signing algorithms", .serialized)
struct SigningAlgorithmProcessTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/algorithms.py").path

    @Test(arguments: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"])
    func independentLibrariesAndTheGateVerifyTokensOfEveryAlgorithm(_ algorithm: String) async throws {
        let upstream = try await TestHTTPServer.start(handler: ProxyEnvironment.echo)
        defer { Task { try? await upstream.shutdown() } }
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: """
                  signing_algorithm: \(algorithm)
                  store_client_secret: plain
                """,
            extraClients: """
                - client_id: "@team/hs"
                  type: web
                  client_secret_file: web.secret
                  redirect_uris: ["\(IssuerFixture.redirectURI)"]
                  scopes: [openid, profile, email]
                  id_token_signed_response_alg: HS256
                """
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let gatePort = try Ports.free()
        let gateFile = fixture.directory.appendingPathComponent("gate.yaml")
        try """
        listen: 127.0.0.1:\(gatePort)
        admin: 127.0.0.1:\(try Ports.free())
        server:
          access_log: false
        upstream: http://127.0.0.1:\(upstream.port)
        issuers:
          - name: idp
            issuer: \(fixture.issuer)
            jwks_uri: \(fixture.issuer)/oauth2/jwks
            audiences: ["@team/orders"]
            algorithms: [\(algorithm)]
        routes:
          - match: { prefix: /api }
            issuers: [idp]
        default: deny
        """.write(to: gateFile, atomically: true, encoding: .utf8)
        fixture.processes.append(try ExternalProcess(TollgateBinary.path, ["serve", "--config", gateFile.path]))
        try await Ports.waitUntilListening(gatePort)
        let client = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", Self.script, fixture.issuer, "http://127.0.0.1:\(gatePort)", algorithm, "ada",
                IssuerFixture.password, IssuerFixture.webSecret, IssuerFixture.machineSecret, "@team/hs",
            ]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(90)))
        #expect(client.process.terminationStatus == 0, "\(client.log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(client.log.contains("algorithms: all checks passed"))
    }

    /// `check-config` says which algorithms sign, what each scope releases and each client's
    /// own settings.
    @Test func checkConfigPrintsTheAlgorithmsTheClaimsAndEachClientsSettings() throws {
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: "  signing_algorithm: PS384\n  store_client_secret: plain",
            extraClients: """
                - client_id: "@team/hs"
                  type: web
                  client_secret_file: web.secret
                  redirect_uris: ["\(IssuerFixture.redirectURI)"]
                  require_pkce: false
                  id_token_ttl: 10m
                  id_token_signed_response_alg: HS256
                """
        )
        defer { fixture.stop() }
        let (status, output) = try fixture.run(["check-config", fixture.configuration.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("signing algorithms: HS256, PS384 (a key each)"), "\(output)")
        #expect(output.contains("scope groups releases: groups realm_access"), "\(output)")
        #expect(output.contains("scope email releases: email email_verified"), "\(output)")
        #expect(output.contains("api @team/orders: @team/orders.read; claims in its tokens: groups realm_access"))
        #expect(output.contains("client @team/web (web): "), "\(output)")
        #expect(output.contains("[PKCE required, refresh 86400s]"), "\(output)")
        #expect(output.contains("[PKCE optional, ID token 600s, ID tokens HS256]"), "\(output)")
    }
}
