import Foundation
import Testing
import TollgateTestSupport

/// RFC 8705 from the issuer's side: `tollgate serve` terminating TLS with client certificates
/// (made with openssl), a client declared `tls_client_certificate_bound_access_tokens`, driven
/// by requests, joserfc and cryptography (Tests/Interop/mtls_issuer_flow.py). Its access tokens,
/// JWT or opaque, are bound to the certificate of the token request, and the gate in the same
/// process takes them only over it (and, bound to a DPoP key too, only with a proof).
@Suite("Certificate-bound tokens from the issuer", .serialized)
struct CertificateBoundIssuerTests {
    @Test(arguments: ["jwt", "opaque"])
    func theIssuerBindsTokensToTheClientCertificate(form: String) async throws {
        let certificates = try CertificateBoundTokenTests.Certificates.make()
        defer { try? FileManager.default.removeItem(at: certificates.directory) }
        let upstream = try await TestHTTPServer.start { _ in .init(status: 200, body: Array("ok".utf8)) }
        let port = try Ports.free()
        let issuer = "https://127.0.0.1:\(port)"
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: form == "opaque" ? "  jwt_access_token: false" : "",
            extraClients: """
                - client_id: "@team/mtls"
                  type: machine
                  client_secret_file: m2m.secret
                  scopes: ["@team/orders.read"]
                  tls_client_certificate_bound_access_tokens: true
                """,
            upstream: upstream.port,
            routes: """
                routes:
                  - match: { prefix: /orders }
                    issuers: [local]
                    resource: { identifier: "\(issuer)/orders", audiences: ["@team/orders"] }
                """,
            port: port
        )
        defer { fixture.stop() }
        // The same file, served over TLS with client certificates, the issuer named by https.
        var text = try String(contentsOf: fixture.configuration, encoding: .utf8)
        text = text.replacingOccurrences(of: "issuer: http://127.0.0.1:\(port)", with: "issuer: \(issuer)")
        text = text.replacingOccurrences(
            of: "server:\n  access_log: false",
            with: """
                server:
                  access_log: false
                  tls:
                    certificate_file: \(certificates.server.certificate)
                    key_file: \(certificates.server.key)
                    client_ca_file: \(certificates.ca)
                """
        )
        try text.write(to: fixture.configuration, atomically: true, encoding: .utf8)
        try await fixture.serve()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/mtls_issuer_flow.py").path
        let client = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", script, issuer, "@team/mtls", IssuerFixture.machineSecret,
                certificates.directory.path, "/orders/1", form,
            ]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(90)))
        #expect(client.process.terminationStatus == 0, "\(client.log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(client.log.contains("mtls issuer (\(form)): all checks passed"))
        #expect(upstream.requestCount == 2)
        try await upstream.shutdown()
    }
}
