import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateProxy

/// The built `tollgate` executable (the test command builds it before running the tests).
enum TollgateBinary {
    static var path: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        if let override = ProcessInfo.processInfo.environment["TOLLGATE_BINARY"] { return override }
        let binary = root.appendingPathComponent(".build/debug/tollgate").path
        // A binary older than the sources would test yesterday's code: refuse it.
        let built = modificationDate(binary) ?? .distantPast
        let sources = root.appendingPathComponent("Sources")
        let newest = FileManager.default.enumerator(atPath: sources.path)?.compactMap { item -> Date? in
            guard let name = item as? String, name.hasSuffix(".swift") else { return nil }
            return modificationDate(sources.appendingPathComponent(name).path)
        }.max()
        precondition(
            newest.map { built >= $0 } ?? true,
            "\(binary) is older than the sources: run `swift build` (the test command does) before the tests"
        )
        return binary
    }

    static func modificationDate(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}

@Suite("Operations", .serialized)
struct OperationsTests {
    @Test("hot reload under load: no request fails across a configuration change, an invalid file is refused")
    func hotReloadUnderLoad() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        let environment = try await ProxyEnvironment.start(file: file.path)
        let watcher = Task { await environment.proxy.watchConfiguration(every: .milliseconds(50)) }
        do {
            let token = TestIssuer.shared.token()
            let port = environment.proxy.port
            let client = environment.client
            let total = 4000
            let workers = 8
            let counter = Counter()
            let results = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        var statuses: [Int] = []
                        while counter.next() < total {
                            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/orders/1")
                            request.headers.add(name: "Authorization", value: "Bearer \(token)")
                            let response = try await client.execute(request, timeout: .seconds(10))
                            _ = try await response.body.collect(upTo: 1 << 20)
                            statuses.append(Int(response.status.code))
                        }
                        return statuses
                    }
                }
                group.addTask {
                    // Change the configuration while the load runs: a new public route.
                    try await Task.sleep(for: .milliseconds(150))
                    let yaml = ProxyEnvironment.yaml(
                        upstreamPort: environment.upstream.port,
                        jwksPort: environment.jwks.port,
                        introspectionPort: environment.introspection.port,
                        extra: ""
                    ).replacingOccurrences(
                        of: "routes:\n",
                        with: "routes:\n  - name: reports\n    match: { prefix: /reports }\n    auth: none\n"
                    )
                    try yaml.write(to: file, atomically: true, encoding: .utf8)
                    return []
                }
                var all: [Int] = []
                for try await statuses in group { all += statuses }
                return all
            }
            #expect(results.count >= total)
            #expect(results.allSatisfy { $0 == 200 }, "statuses: \(Set(results))")
            // The watcher applied the new file.
            try await waitUntil {
                environment.proxy.runtime.snapshot.configuration.routes.routes.first?.name == "reports"
            }
            let reports = try await environment.send("/reports/q3")
            #expect(reports.status == 200)

            // An invalid file is refused; the routes of the last good one keep answering.
            try "routes: [ { match: { prefix: 42 } ".write(to: file, atomically: true, encoding: .utf8)
            let refused = await environment.proxy.runtime.reload(from: file.path)
            guard case .failure(let error) = refused else {
                Issue.record("an invalid configuration was applied")
                return
            }
            #expect(error.file == file.path)
            let still = try await environment.send("/reports/q4")
            #expect(still.status == 200)
            let orders = try await environment.send("/orders/1", headers: ["Authorization: Bearer \(token)"])
            #expect(orders.status == 200)
        } catch {
            watcher.cancel()
            await environment.stop()
            throw error
        }
        watcher.cancel()
        await environment.stop()
    }

    @Test("/readyz is false until the keys are loaded; /metrics counts requests by route and outcome")
    func adminEndpoints() async throws {
        try await ProxyEnvironment.with(jwksDown: true) { environment in
            let admin = environment.proxy.adminPort
            let notReady = try await RawHTTPClient.send(port: admin, lines: ["GET /readyz HTTP/1.1", "Host: a"])
            #expect(notReady.status == 503)
            #expect(notReady.body.contains("main"))
            let health = try await RawHTTPClient.send(port: admin, lines: ["GET /healthz HTTP/1.1", "Host: a"])
            #expect(health.status == 200)
            // Refusals are the proxy's: the same error type, the same JSON.
            let missing = try await RawHTTPClient.send(port: admin, lines: ["GET /nothing HTTP/1.1", "Host: a"])
            #expect(missing.status == 404)
            #expect(missing.body == #"{"error":"not_found","error_description":"nothing is served here"}"#)
            let post = try await RawHTTPClient.send(port: admin, lines: ["POST /metrics HTTP/1.1", "Host: a"])
            #expect(post.status == 405)
            #expect(post.header("Allow") == "GET, HEAD")
            environment.jwksFailing.set(false)
            // A refresh already in flight (the background one) may still meet the outage: retry.
            let keys = environment.proxy.runtime.snapshot.verifier.issuers[0].jwks
            for _ in 0..<50 where keys?.isReady != true {
                await keys?.refresh()
                if keys?.isReady != true { try await Task.sleep(for: .milliseconds(20)) }
            }
            let ready = try await RawHTTPClient.send(port: admin, lines: ["GET /readyz HTTP/1.1", "Host: a"])
            #expect(ready.status == 200)
            _ = try await environment.send("/orders/1", headers: ["Authorization: Bearer " + TestIssuer.shared.token()])
            _ = try await environment.send("/orders/1")
            let metrics = try await RawHTTPClient.send(port: admin, lines: ["GET /metrics HTTP/1.1", "Host: a"])
            #expect(metrics.status == 200)
            #expect(metrics.body.contains(#"tollgate_requests_total{route="orders",outcome="allowed"} 1"#))
            #expect(metrics.body.contains(#"tollgate_requests_total{route="orders",outcome="no_token"} 1"#))
            #expect(metrics.body.contains(#"tollgate_jwks_fetches_total{issuer="main",result="error"}"#))
            #expect(metrics.body.contains("tollgate_verification_duration_seconds_bucket"))
            #expect(metrics.body.contains("tollgate_upstream_duration_seconds_count 1"))
            #expect(metrics.body.contains("tollgate_active_connections"))
        }
    }

    @Test("SIGTERM during a slow upstream response: it completes, new connections are refused, the process exits")
    func sigtermDrains() async throws {
        let upstream = try await TestHTTPServer.start { request in
            if request.uri.hasPrefix("/slow") { try? await Task.sleep(for: .milliseconds(1500)) }
            return .json(#"{"ok":true}"#)
        }
        defer { Task { try? await upstream.shutdown() } }
        let port = try Ports.free()
        let adminPort = try Ports.free()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        listen: 127.0.0.1:\(port)
        admin: 127.0.0.1:\(adminPort)
        upstream: http://127.0.0.1:\(upstream.port)
        server:
          drain_grace: 5s
        routes:
          - match: { prefix: / }
            auth: none
        """.write(to: file, atomically: true, encoding: .utf8)
        let process = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path])
        defer { process.stop() }
        try await Ports.waitUntilListening(port)
        let slow = Task { try await RawHTTPClient.send(port: port, lines: ["GET /slow HTTP/1.1", "Host: a"]) }
        try await Task.sleep(for: .milliseconds(400))
        let started = ContinuousClock.now
        process.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await Ports.refuses(port), "the listener still accepts after SIGTERM")
        let response = try await slow.value
        #expect(response.status == 200)
        #expect(response.body.contains("ok"))
        #expect(await process.waitForExit(timeout: .seconds(5)))
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(process.process.terminationStatus == 0, "\(process.log)")
        // One JSON line per request on standard output.
        let line = try #require(process.log.split(separator: "\n").first { $0.hasPrefix("{") && $0.contains("/slow") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["status"] as? Int == 200)
        #expect(object["outcome"] as? String == "public")
        #expect(object["route"] as? String == "routes[0]")
        #expect((object["request_id"] as? String)?.isEmpty == false)
        #expect(object["latency_ms"] is Double)
    }

    @Test("a standard output nobody reads never stops the proxy: log lines are dropped and counted")
    func accessLogNeverBlocks() async throws {
        let upstream = try await TestHTTPServer.start { _ in .json(#"{"ok":true}"#) }
        defer { Task { try? await upstream.shutdown() } }
        let port = try Ports.free()
        let adminPort = try Ports.free()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
        listen: 127.0.0.1:\(port)
        admin: 127.0.0.1:\(adminPort)
        upstream: http://127.0.0.1:\(upstream.port)
        server:
          access_log: true
          access_log_buffer_bytes: 8192
        routes:
          - match: { prefix: / }
            auth: none
        """.write(to: file, atomically: true, encoding: .utf8)
        // A pipe whose reading end is never read: it fills after 64 KiB.
        let pipe = Pipe()
        let process = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path], standardOutput: pipe)
        defer { process.stop() }
        try await Ports.waitUntilListening(port)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = client.shutdown() }
        var statuses: [Int] = []
        for index in 0..<1500 {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/item/\(index)")
            request.headers.add(name: "X-Request-Id", value: String(repeating: "r", count: 100))
            let response = try await client.execute(request, timeout: .seconds(5))
            _ = try await response.body.collect(upTo: 1 << 16)
            statuses.append(Int(response.status.code))
        }
        #expect(statuses.allSatisfy { $0 == 200 })
        let metrics = try await RawHTTPClient.send(port: adminPort, lines: ["GET /metrics HTTP/1.1", "Host: a"])
        let line = metrics.body.split(separator: "\n").first { $0.hasPrefix("tollgate_access_log_dropped_total ") }
        let dropped = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        #expect(dropped > 0, "\(line ?? "no counter")")
        _ = pipe.fileHandleForReading
    }
}
