import Foundation
import Testing
import TollgateCore
import TollgateProxy
import TollgateTestSupport

/// gRPC (HTTP/2 with trailers) through Tollgate to an h2c upstream, with grpcio (PyPI) on both
/// ends: a real third-party client and server, not a hand-made imitation.
@Suite("gRPC pass-through", .serialized)
struct GRPCTests {
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/grpc_echo.py").path
    }

    /// The `python3` on PATH, where the test script installed grpcio.
    static func run(_ arguments: [String]) throws -> ExternalProcess {
        try ExternalProcess("/usr/bin/env", ["python3", script] + arguments)
    }

    @Test("a unary call with a valid token passes through with its trailers; without a token it is UNAUTHENTICATED")
    func unaryCallThroughTheProxy() async throws {
        let server = try Self.run(["serve"])
        defer { server.stop() }
        let portLine = try await waitForLine(in: server)
        let upstreamPort = try #require(Int(portLine), "grpc server printed \(portLine)")
        try await ProxyEnvironment.with { environment in
            var configuration = environment.proxy.runtime.snapshot.configuration
            var upstream = UpstreamSettings(url: "http://127.0.0.1:\(upstreamPort)")
            upstream.h2c = true
            configuration.upstream = upstream
            configuration.routes = RouteTable(
                routes: [
                    Route(
                        name: "grpc",
                        methods: ["POST"],
                        pattern: .prefix("/tollgate.test.Echo"),
                        authentication: .required(issuers: ["main"]),
                        scopes: ScopeRequirement(all: ["@team/orders.read"])
                    )
                ],
                defaultAction: .deny
            )
            try await environment.proxy.runtime.apply(configuration)

            let allowed = try Self.run(["call", String(environment.proxy.port), TestIssuer.shared.token()])
            defer { allowed.stop() }
            let answer = try await waitForLine(in: allowed)
            #expect(answer == "OK ping through the gate | user-42", "\(allowed.log)")

            let refused = try Self.run(["call", String(environment.proxy.port), "-"])
            defer { refused.stop() }
            #expect(try await waitForLine(in: refused) == "ERR UNAUTHENTICATED")

            let scopeless = try Self.run([
                "call", String(environment.proxy.port), TestIssuer.shared.token(scope: "openid"),
            ])
            defer { scopeless.stop() }
            #expect(try await waitForLine(in: scopeless) == "ERR PERMISSION_DENIED")
        }
    }

    /// The first non-empty line a process printed.
    func waitForLine(in process: ExternalProcess, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = process.log.split(separator: "\n").first(where: { !$0.isEmpty && !$0.hasPrefix("WARNING") }) {
                return String(line)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RawHTTPClient.Failure(description: "no output within \(timeout): \(process.log)")
    }
}
