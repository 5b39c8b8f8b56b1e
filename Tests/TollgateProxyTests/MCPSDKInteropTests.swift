import Foundation
import Testing
import TollgateTestSupport

/// The official MCP Python SDK (`mcp` from PyPI) end to end: an SDK MCP server (streamable HTTP)
/// behind `tollgate serve`, whose in-process issuer is the authorization server, and the SDK's
/// own OAuth client, which starts with no token and finds the metadata, the issuer and the
/// registration from the gate's 401 (Tests/Interop/mcp_sdk_flow.py). Once per protocol
/// generation (2025-11-25 without Mcp-Method/Mcp-Name, 2026-07-28 with them) and per way the
/// client is known to the issuer (dynamic registration, a client ID metadata document).
@Suite("MCP SDK end to end", .serialized)
struct MCPSDKInteropTests {
    static let interop = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop")

    @Test(arguments: [("legacy", "dcr"), ("auto", "dcr"), ("auto", "cimd"), ("legacy", "cimd")])
    func theSDKsClientReachesTheToolsItMayCall(mode: String, registration: String) async throws {
        let serverPort = try Ports.free()
        let headerLog = FileManager.default.temporaryDirectory.appendingPathComponent("mcp-\(UUID().uuidString).jsonl")
        FileManager.default.createFile(atPath: headerLog.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: headerLog) }
        let server = try ExternalProcess(
            "/usr/bin/env",
            ["python3", Self.interop.appendingPathComponent("mcp_server.py").path, String(serverPort), headerLog.path]
        )
        defer { server.stop() }
        try await Ports.waitUntilListening(serverPort)

        let port = try Ports.free()
        let resource = "http://127.0.0.1:\(port)/mcp"
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: """
                  enable_dynamic_registration: true
                  client_id_metadata_documents: { enabled: true, allow_loopback_http: true }
                """,
            extraAPIs: """
                - audience: \(resource)
                  scopes: ["mcp:tools", "mcp:admin"]
                """,
            upstream: serverPort,
            routes: """
                routes:
                  - name: mcp
                    match: { prefix: /mcp }
                    issuers: [local]
                    resource: \(resource)
                    require: { scopes: { all: ["mcp:tools"] } }
                    mcp:
                      tools:
                        delete_all: { scopes: { all: ["mcp:admin"] } }
                forward:
                  claims:
                    X-Claims-Sub: sub
                    X-Claims-Scope: scope
                """,
            port: port
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let client = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", Self.interop.appendingPathComponent("mcp_sdk_flow.py").path, resource, mode, registration,
                "ada", IssuerFixture.password, "@team/svc", IssuerFixture.machineSecret, headerLog.path,
            ]
        )
        defer { client.stop() }
        #expect(await client.waitForExit(timeout: .seconds(120)))
        #expect(
            client.process.terminationStatus == 0,
            "\(client.log)\n--- tollgate ---\n\(fixture.logs)\n--- server ---\n\(server.log)"
        )
        #expect(client.log.contains("mcp sdk (\(mode), \(registration)): all checks passed"))
    }
}
