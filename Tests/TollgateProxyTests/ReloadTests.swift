import AsyncHTTPClient
import Foundation
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// What a reload keeps, what it replaces, and that it applies once.
@Suite("Reload", .serialized)
struct ReloadTests {
    static func temporaryFile(_ suffix: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString)\(suffix)")
    }

    static func fileIssuerYAML(upstreamPort: Int, jwksFile: String, comment: String = "") -> String {
        """
        \(comment)
        listen: 127.0.0.1:0
        admin: 127.0.0.1:0
        upstream: http://127.0.0.1:\(upstreamPort)
        server:
          access_log: false
        issuers:
          - name: file
            issuer: \(TestIssuer.issuer)
            jwks_file: \(jwksFile)
            audiences: ["\(TestIssuer.audience)"]
        routes:
          - match: { prefix: /orders }
        default: deny
        """
    }

    static func status(_ proxy: RunningProxy, token: String) async throws -> Int {
        try await RawHTTPClient.send(
            port: proxy.port,
            lines: ["GET /orders/1 HTTP/1.1", "Host: api.test", "Authorization: Bearer \(token)"]
        ).status
    }

    @Test(arguments: [true, false])
    func aKeyReplacedInTheKeyFileIsUsedAfterAReload(withKeyIDs: Bool) async throws {
        let old = TestIssuer()
        let new = TestIssuer()
        let header: [String: Any] = withKeyIDs ? [:] : ["kid": NSNull()]
        let jwks = Self.temporaryFile(".json")
        let file = Self.temporaryFile(".yaml")
        defer {
            try? FileManager.default.removeItem(at: jwks)
            try? FileManager.default.removeItem(at: file)
        }
        try await TestHTTPServer.serving(ProxyEnvironment.echo) { upstream in
            try old.jwksJSON(withKeyIDs: withKeyIDs).write(to: jwks, atomically: true, encoding: .utf8)
            try Self.fileIssuerYAML(upstreamPort: upstream.port, jwksFile: jwks.path)
                .write(to: file, atomically: true, encoding: .utf8)
            let proxy = try await RunningProxy.start(
                configuration: try ConfigurationLoader.load(path: file.path),
                configurationPath: file.path
            )
            let oldToken = old.token(header: header)
            let newToken = new.token(header: header)
            #expect(try await Self.status(proxy, token: oldToken) == 200)
            #expect(try await Self.status(proxy, token: newToken) == 401)
            // The same kids (or none), new key material.
            try new.jwksJSON(withKeyIDs: withKeyIDs).write(to: jwks, atomically: true, encoding: .utf8)
            let result = await proxy.runtime.reload(from: file.path)
            #expect((try? result.get()) != nil)
            #expect(try await Self.status(proxy, token: newToken) == 200)
            #expect(try await Self.status(proxy, token: old.token(header: header)) == 401)
            await proxy.stop(grace: .seconds(1))
        }
    }

    @Test func aCommentOnlyEditKeepsTheKeyCacheAndFetchesNothing() async throws {
        let file = Self.temporaryFile(".yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let environment = try await ProxyEnvironment.start(file: file.path)
        defer { Task { await environment.stop() } }
        let token = TestIssuer.shared.token()
        #expect(try await environment.send("/orders/1", headers: ["Authorization: Bearer \(token)"]).status == 200)
        let keys = environment.proxy.runtime.snapshot.verifier.issuers[0].keys
        let fetches = environment.jwks.requestCount
        let yaml = try String(contentsOf: file, encoding: .utf8)
        try ("# a comment that moves every line\n\n" + yaml).write(to: file, atomically: true, encoding: .utf8)
        let result = await environment.proxy.runtime.reload(from: file.path)
        #expect((try? result.get()) != nil)
        #expect(environment.proxy.runtime.snapshot.verifier.issuers[0].keys === keys)
        #expect(environment.proxy.runtime.snapshot.configuration.issuers[0].line != nil)
        #expect(environment.jwks.requestCount == fetches)
        #expect(try await environment.send("/orders/1", headers: ["Authorization: Bearer \(token)"]).status == 200)
    }

    /// A cached token keeps only the claims the configuration reads: a reload that forwards
    /// another claim gets a new verifier, and the same token, cached before, carries the new header.
    @Test func aReloadThatForwardsAnotherClaimForwardsItForATokenCachedBefore() async throws {
        let file = Self.temporaryFile(".yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let environment = try await ProxyEnvironment.start(file: file.path)
        defer { Task { await environment.stop() } }
        let token = TestIssuer.shared.token(["tenant": "acme"])
        for _ in 0..<3 {
            let response = try await environment.send("/orders/1", headers: ["Authorization: Bearer \(token)"])
            #expect(response.status == 200)
            #expect(!response.body.contains("X-Auth-Tenant"))
        }
        let yaml = try String(contentsOf: file, encoding: .utf8)
        try yaml.replacingOccurrences(
            of: "    X-Auth-Subject: sub\n",
            with: "    X-Auth-Subject: sub\n    X-Auth-Tenant: tenant\n"
        )
        .write(to: file, atomically: true, encoding: .utf8)
        let before = environment.proxy.runtime.snapshot.verifier
        #expect((try? await environment.proxy.runtime.reload(from: file.path).get()) != nil)
        #expect(environment.proxy.runtime.snapshot.verifier !== before)
        let response = try await environment.send("/orders/1", headers: ["Authorization: Bearer \(token)"])
        #expect(response.status == 200)
        #expect(response.body.contains("X-Auth-Tenant: acme"), "\(response.body)")
    }

    @Test func anUnchangedIssuerKeepsAnsweringAcrossAReloadDuringAKeyOutage() async throws {
        let file = Self.temporaryFile(".yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let environment = try await ProxyEnvironment.start(file: file.path)
        defer { Task { await environment.stop() } }
        #expect(
            try await environment.send("/orders/1", headers: ["Authorization: Bearer \(TestIssuer.shared.token())"])
                .status == 200
        )
        environment.jwksFailing.set(true)
        // Another issuer changes, so the verifier is rebuilt; `main` is configured as before.
        let yaml = try String(contentsOf: file, encoding: .utf8)
        try yaml.replacingOccurrences(of: "issuer: https://idp.test/opaque", with: "issuer: https://idp.test/opaque2")
            .write(to: file, atomically: true, encoding: .utf8)
        let before = environment.proxy.runtime.snapshot.verifier
        let result = await environment.proxy.runtime.reload(from: file.path)
        #expect((try? result.get()) != nil)
        #expect(environment.proxy.runtime.snapshot.verifier !== before)
        // A token never seen before needs the keys: they were kept, so no 503.
        let fresh = TestIssuer.shared.token(["sub": "someone-new"])
        #expect(try await environment.send("/orders/1", headers: ["Authorization: Bearer \(fresh)"]).status == 200)
    }

    @Test func aSignalAndAFileChangeTogetherApplyOnceAndLeaveNothingBehind() async throws {
        let file = Self.temporaryFile(".yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let environment = try await ProxyEnvironment.start(file: file.path)
        defer { Task { await environment.stop() } }
        let runtime = environment.proxy.runtime
        try await waitUntil { runtime.keyRefreshTaskCount == 1 }
        #expect(runtime.upstreamPoolCount == 1)
        let watcher = Task { await environment.proxy.watchConfiguration(every: .milliseconds(10)) }
        defer { watcher.cancel() }
        // A new upstream address (a new pool) and a changed key refresh for `main` (a new cache).
        let yaml = try String(contentsOf: file, encoding: .utf8)
        try yaml.replacingOccurrences(of: "upstream: http://127.0.0.1:", with: "upstream: http://localhost:")
            .replacingOccurrences(of: "cooldown: 1s", with: "cooldown: 2s")
            .write(to: file, atomically: true, encoding: .utf8)
        // SIGHUP's reload, several times, racing the file watcher.
        async let first = runtime.reload(from: file.path)
        async let second = runtime.reload(from: file.path)
        _ = await (first, second)
        try await waitUntil { runtime.snapshot.configuration.upstream?.endpoint.host == "localhost" }
        try await Task.sleep(for: .milliseconds(100))
        let metrics = String(decoding: runtime.metrics.render(runtime: runtime), as: UTF8.self)
        #expect(metrics.contains(#"tollgate_config_reloads_total{result="applied"} 1"#), "\(metrics)")
        try await waitUntil { runtime.keyRefreshTaskCount == 1 }
        #expect(runtime.upstreamPoolCount == 1)
        #expect(metrics.contains("tollgate_key_refresh_tasks"))
        #expect(metrics.contains("tollgate_upstream_pools 1"))
    }
}
