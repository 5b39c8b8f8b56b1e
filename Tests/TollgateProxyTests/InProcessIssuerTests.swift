import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

/// `tollgate serve` with an `issuer:` section: one process issues the tokens and checks them,
/// reading its own keys and token store (no HTTP call between the two), in front of a real
/// upstream, driven over real HTTP.
@Suite("In-process issuer", .serialized)
struct InProcessIssuerTests {
    struct Running {
        let process: ExternalProcess
        let port: Int
        let adminPort: Int
        let upstream: TestHTTPServer
        let directory: URL

        var base: String { "http://127.0.0.1:\(port)" }

        func stop() async {
            process.stop()
            try? await upstream.shutdown()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    static let machineSecret = "m2m-secret-0123456789abcdef0123456789"
    static let readerSecret = "reader-secret-0123456789abcdef0123"

    static func start(jwtAccessToken: Bool, again previous: Running? = nil) async throws -> Running {
        let upstream = try await TestHTTPServer.start(handler: ProxyEnvironment.echo)
        let port = try previous?.port ?? Ports.free()
        let adminPort = try previous?.adminPort ?? Ports.free()
        let directory =
            previous?.directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try machineSecret.write(to: directory.appendingPathComponent("svc.secret"), atomically: true, encoding: .utf8)
        try readerSecret.write(to: directory.appendingPathComponent("writer.secret"), atomically: true, encoding: .utf8)
        let file = directory.appendingPathComponent("tollgate.yaml")
        try """
        listen: 127.0.0.1:\(port)
        admin: 127.0.0.1:\(adminPort)
        upstream: http://127.0.0.1:\(upstream.port)
        issuer:
          issuer: http://127.0.0.1:\(port)
          jwt_access_token: \(jwtAccessToken)
          apis:
            - audience: "@team/orders"
              scopes: ["@team/orders.read", "@team/orders.write"]
          clients:
            - client_id: "@team/svc"
              type: machine
              client_secret_file: svc.secret
              scopes: ["@team/orders.read"]
            - client_id: "@team/writer"
              type: machine
              client_secret_file: writer.secret
              scopes: ["@team/orders.write"]
        routes:
          - match: { prefix: /orders }
            issuers: [local]
            require: { scopes: { all: ["@team/orders.read"] } }
        default: deny
        forward:
          claims:
            X-Auth-Subject: sub
        """.write(to: file, atomically: true, encoding: .utf8)
        let process = try ExternalProcess(TollgateBinary.path, ["serve", "--config", file.path])
        try await Ports.waitUntilListening(port)
        return Running(process: process, port: port, adminPort: adminPort, upstream: upstream, directory: directory)
    }

    static func token(
        _ running: Running,
        client: String,
        secret: String,
        scope: String
    ) async throws -> (Int, [String: Any]) {
        var request = HTTPClientRequest(url: running.base + "/oauth2/token")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(
            name: "Authorization",
            value: FormURLEncoding.basicAuthorization(clientID: client, clientSecret: secret)
        )
        request.body = .bytes(
            ByteBuffer(string: "grant_type=client_credentials&scope=" + FormURLEncoding.encode(scope))
        )
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        let object = try JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any] ?? [:]
        return (Int(response.status.code), object)
    }

    static func get(_ running: Running, _ path: String, token: String? = nil) async throws -> (Int, String, HTTPHeaders)
    {
        var request = HTTPClientRequest(url: running.base + path)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: body), response.headers)
    }

    @Test func aClientCredentialsJWTFromTheSameProcessPassesAndIsVerifiedWithoutHTTP() async throws {
        let running = try await Self.start(jwtAccessToken: true)
        do {
            let (discoveryStatus, discovery, _) = try await Self.get(running, "/.well-known/openid-configuration")
            #expect(discoveryStatus == 200)
            #expect(discovery.contains(#""issuer":"http://127.0.0.1:\#(running.port)""#))
            let (status, answer) = try await Self.token(
                running,
                client: "@team/svc",
                secret: Self.machineSecret,
                scope: "@team/orders.read"
            )
            #expect(status == 200, "\(answer)")
            let token = try #require(answer["access_token"] as? String)
            #expect(token.split(separator: ".").count == 3)
            let (passed, echo, _) = try await Self.get(running, "/orders/7", token: token)
            #expect(passed == 200)
            #expect(echo.contains("X-Auth-Subject: @team/svc"))
            // The token endpoint itself is never proxied.
            #expect(!running.upstream.requests.contains { $0.uri.hasPrefix("/oauth2") })
            let (anonymous, _, headers) = try await Self.get(running, "/orders/7")
            #expect(anonymous == 401)
            #expect(headers.first(name: "www-authenticate") == #"Bearer realm="tollgate""#)
            // A token without the route's scope.
            let (_, writer) = try await Self.token(
                running,
                client: "@team/writer",
                secret: Self.readerSecret,
                scope: "@team/orders.write"
            )
            let writerToken = try #require(writer["access_token"] as? String)
            let (forbidden, _, challenge) = try await Self.get(running, "/orders/7", token: writerToken)
            #expect(forbidden == 403)
            #expect(challenge.first(name: "www-authenticate")?.contains(#"error="insufficient_scope""#) == true)
            // No key fetch and no introspection call happened: the verifier read the issuer directly.
            let (_, metrics, _) = try await Self.get(
                Running(
                    process: running.process,
                    port: running.adminPort,
                    adminPort: 0,
                    upstream: running.upstream,
                    directory: running.directory
                ),
                "/metrics"
            )
            #expect(!metrics.contains(#"tollgate_jwks_fetches_total{issuer="local""#))
            #expect(!metrics.contains(#"tollgate_introspection_calls_total{issuer="local""#))
            #expect(metrics.contains(#"tollgate_issuer_ready{issuer="local"} 1"#))
            // The access log is written in batches, at the latest every 250 ms.
            var log = running.process.log
            for _ in 0..<40 where !log.contains(#""path":"/orders/7""#) {
                try await Task.sleep(for: .milliseconds(50))
                log = running.process.log
            }
            #expect(log.contains(#""path":"/oauth2/token""#), "the access log records the issuer's requests")
            #expect(!log.contains(#""path":"/oauth2/jwks""#))
            #expect(!log.contains(#""path":"/oauth2/introspect""#))
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
    }

    @Test func anOpaqueTokenPassesThroughTheInProcessStoreAndARevokedOneIsRefusedAtOnce() async throws {
        let running = try await Self.start(jwtAccessToken: false)
        do {
            let (status, answer) = try await Self.token(
                running,
                client: "@team/svc",
                secret: Self.machineSecret,
                scope: "@team/orders.read"
            )
            #expect(status == 200)
            let token = try #require(answer["access_token"] as? String)
            #expect(!token.contains("."))
            let (passed, echo, _) = try await Self.get(running, "/orders/1", token: token)
            #expect(passed == 200)
            #expect(echo.contains("X-Auth-Subject: @team/svc"))
            var revoke = HTTPClientRequest(url: running.base + "/oauth2/revoke")
            revoke.method = .POST
            revoke.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            revoke.headers.add(
                name: "Authorization",
                value: FormURLEncoding.basicAuthorization(clientID: "@team/svc", clientSecret: Self.machineSecret)
            )
            revoke.body = .bytes(ByteBuffer(string: "token=" + FormURLEncoding.encode(token)))
            let revoked = try await HTTPClient.shared.execute(revoke, timeout: .seconds(10))
            #expect(revoked.status == .ok)
            let (refused, body, _) = try await Self.get(running, "/orders/1", token: token)
            #expect(refused == 401)
            #expect(body.contains("the token is not active"))
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
    }

    @Test func onSQLiteKeysClientsAndTokensSurviveARestart() async throws {
        let first = try await Self.start(jwtAccessToken: false)
        let (_, answer) = try await Self.token(
            first,
            client: "@team/svc",
            secret: Self.machineSecret,
            scope: "@team/orders.read"
        )
        let token = try #require(answer["access_token"] as? String)
        let (_, keysBefore, _) = try await Self.get(first, "/oauth2/jwks")
        first.process.stop()
        try? await first.upstream.shutdown()
        #expect(
            FileManager.default.fileExists(
                atPath: first.directory.appendingPathComponent("tollgate-issuer.sqlite").path
            )
        )
        let second = try await Self.start(jwtAccessToken: false, again: first)
        do {
            let (_, keysAfter, _) = try await Self.get(second, "/oauth2/jwks")
            #expect(keysAfter == keysBefore, "the same signing key after a restart")
            let (passed, _, _) = try await Self.get(second, "/orders/1", token: token)
            #expect(passed == 200, "a token issued before the restart still works")
        } catch {
            await second.stop()
            throw error
        }
        await second.stop()
    }
}
