import Foundation
import Testing
import TollgateTestSupport

/// The issuer's DPoP binding driven by a client built from PyPI libraries (requests and
/// joserfc, Tests/Interop/dpop_issuer_flow.py) against `tollgate serve`, and the gate in the same
/// process taking the bound token only with a proof by its key.
@Suite("DPoP from the issuer", .serialized)
struct DPoPIssuerTests {
    @Test func theIssuerBindsTokensToTheClientsKeyAndTheGateHoldsThemToIt() async throws {
        let upstream = try await TestHTTPServer.start { _ in .init(status: 200, body: Array("ok".utf8)) }
        let port = try Ports.free()
        let resource = "http://127.0.0.1:\(port)/orders"
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extraClients: """
                - client_id: "@team/cli"
                  type: native
                  redirect_uris: ["http://127.0.0.1:9/callback"]
                  scopes: [openid, offline_access, "@team/orders.read"]
                  dpop_bound_access_tokens: true
                """,
            upstream: upstream.port,
            routes: """
                routes:
                  - match: { prefix: /orders }
                    issuers: [local]
                    resource: { identifier: "\(resource)", audiences: ["@team/orders"] }
                """,
            port: port
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/dpop_issuer_flow.py").path
        let client = try ExternalProcess(
            "/usr/bin/env",
            ["python3", script, fixture.issuer, "@team/cli", "ada", IssuerFixture.password, resource]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(90)))
        #expect(client.process.terminationStatus == 0, "\(client.log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(client.log.contains("dpop issuer: all checks passed"))
        #expect(upstream.requestCount == 1)
        try await upstream.shutdown()
    }

    @Test func serverNoncesAreSharedByReplicasWithTheSameSecret() async throws {
        let upstream = try await TestHTTPServer.start { _ in .init(status: 200, body: Array("ok".utf8)) }
        let port = try Ports.free()
        let fixture = try IssuerFixture(
            storage: .sqlite,
            upstream: upstream.port,
            routes: """
                routes:
                  - match: { prefix: /orders }
                    issuers: [local]
                    resource: { identifier: "http://127.0.0.1:\(port)/orders", audiences: ["@team/orders"] }
                dpop:
                  nonce: true
                  nonce_secret_file: nonce.secret
                """,
            port: port
        )
        defer { fixture.stop() }
        try "a-nonce-secret-of-forty-bytes-0123456789".write(
            to: fixture.directory.appendingPathComponent("nonce.secret"),
            atomically: true,
            encoding: .utf8
        )
        try await fixture.serve()
        let replica = try await fixture.serve()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/dpop_nonce_flow.py").path
        let client = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", script, fixture.issuer, "http://127.0.0.1:\(replica)", "@team/svc",
                IssuerFixture.machineSecret, "/orders/1",
            ]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(90)))
        #expect(client.process.terminationStatus == 0, "\(client.log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(client.log.contains("dpop nonces: all checks passed"))
        #expect(upstream.requestCount == 1)
        try await upstream.shutdown()
    }

    @Test func theTokenEndpointTakesTheConfigurationsProofSettings() async throws {
        let fixture = try IssuerFixture(
            storage: .sqlite,
            routes: "routes:\n  - match: { prefix: / }\n    issuers: [local]\ndpop:\n  algorithms: [ES384, EdDSA]"
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let discovery = try await RawHTTPClient.send(
            port: fixture.issuerPort,
            lines: ["GET /.well-known/openid-configuration HTTP/1.1", "Host: 127.0.0.1"]
        )
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(discovery.body.utf8)) as? [String: Any]
        )
        #expect(document["dpop_signing_alg_values_supported"] as? [String] == ["ES384", "EdDSA"])
        #expect(
            document["tls_client_certificate_bound_access_tokens"] == nil,
            "no client certificate reaches this listener: certificate-bound tokens are not offered"
        )
    }
}
