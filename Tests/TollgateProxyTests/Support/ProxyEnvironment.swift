import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
import TollgateCore
import TollgateProxy
import TollgateTestSupport
import _CryptoExtras

/// Keys and a token minter standing in for an identity provider.
struct TestIssuer: Sendable {
    static let shared = TestIssuer()
    static let issuer = "https://idp.test/team"
    static let audience = "@team/api"

    let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    let p256 = P256.Signing.PrivateKey()

    /// The key set; `withKeyIDs: false` publishes the keys without `kid`.
    func jwksJSON(withKeyIDs: Bool) -> String {
        withKeyIDs
            ? jwksJSON
            : jwksJSON.replacingOccurrences(of: #""kid":"rsa-1","#, with: "")
                .replacingOccurrences(of: #""kid":"ec-1","#, with: "")
    }

    var jwksJSON: String {
        let primitives = try! rsa.publicKey.getKeyPrimitives()
        let point = Array(p256.publicKey.x963Representation)
        return """
            {"keys":[{"kty":"RSA","kid":"rsa-1","use":"sig","n":"\(Base64URL.encode(Array(primitives.modulus)))",\
            "e":"\(Base64URL.encode(Array(primitives.publicExponent)))"},\
            {"kty":"EC","crv":"P-256","kid":"ec-1","x":"\(Base64URL.encode(point[1..<33]))",\
            "y":"\(Base64URL.encode(point[33...]))"}]}
            """
    }

    static func encode(_ object: [String: Any]) -> String {
        Base64URL.encode(Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
    }

    /// An RS256 (or ES256) access token; `changes` overrides claims (`nil` removes one).
    func token(
        scope: String = "@team/orders.read openid",
        algorithm: String = "RS256",
        kid: String? = nil,
        header headerChanges: [String: Any] = [:],
        _ changes: [String: Any?] = [:]
    ) -> String {
        let now = Int(Date().timeIntervalSince1970)
        var claims: [String: Any] = [
            "iss": Self.issuer, "aud": [Self.audience], "sub": "user-42", "exp": now + 600, "iat": now - 5,
            "scope": scope, "actor": ["national_id": "1234"],
        ]
        for (key, value) in changes {
            if let value { claims[key] = value } else { claims[key] = nil }
        }
        var header: [String: Any] = [
            "alg": algorithm, "kid": kid ?? (algorithm == "ES256" ? "ec-1" : "rsa-1"), "typ": "at+jwt",
        ]
        for (key, value) in headerChanges { header[key] = value is NSNull ? nil : value }
        let input = Self.encode(header) + "." + Self.encode(claims)
        let digest = SHA256.hash(data: Array(input.utf8))
        let signature: [UInt8] =
            algorithm == "ES256"
            ? Array(try! p256.signature(for: digest).rawRepresentation)
            : Array(try! rsa.signature(for: digest, padding: .insecurePKCS1v1_5).rawRepresentation)
        return input + "." + Base64URL.encode(signature)
    }
}

/// A switch a test flips to make a stub server fail.
final class Switch: Sendable {
    private let state = NIOLockedValueBox(false)
    var isOn: Bool { state.withLockedValue { $0 } }
    func set(_ value: Bool) { state.withLockedValue { $0 = value } }
}

/// A real Tollgate in front of a real upstream, with a real JWKS endpoint and a real
/// introspection endpoint, all on 127.0.0.1.
struct ProxyEnvironment {
    let proxy: RunningProxy
    let upstream: TestHTTPServer
    let jwks: TestHTTPServer
    let introspection: TestHTTPServer
    let jwksFailing: Switch
    let introspectionFailing: Switch
    let client: HTTPClient
    /// `KeyRefreshService`'s work, as `tollgate serve`'s service group runs it.
    let keyRefreshes: Task<Void, Never>

    static let activeOpaque = "opaque-active-0123456789"
    static let inactiveOpaque = "opaque-inactive-0123456789"

    /// The configuration the tests use; `extra` is appended at the top level.
    static func yaml(
        upstreamPort: Int,
        jwksPort: Int,
        introspectionPort: Int,
        trustedProxies: [String] = ["127.0.0.1"],
        extra: String = "",
        replaceServer: Bool = false,
        routes: String = ""
    ) -> String {
        let trusted = trustedProxies.map { "\"\($0)\"" }.joined(separator: ", ")
        // A generous header timeout: the test process runs many suites at once, and a test's task
        // may wait for a busy thread between connecting and sending longer than the default 10 s.
        let server =
            replaceServer
            ? "" : "server:\n  access_log: false\n  header_timeout: 120s\n  trusted_proxies: [\(trusted)]"
        return """
            listen: 127.0.0.1:0
            admin: 127.0.0.1:0
            upstream: http://127.0.0.1:\(upstreamPort)
            realm: orders
            \(server)
            forward_auth:
              path: /_tollgate/auth
            issuers:
              - name: main
                issuer: \(TestIssuer.issuer)
                jwks_uri: http://127.0.0.1:\(jwksPort)/jwks
                audiences: ["\(TestIssuer.audience)"]
                algorithms: [RS256, ES256]
                jwks:
                  cooldown: 1s
              - name: opaque
                issuer: https://idp.test/opaque
                introspection:
                  endpoint: http://127.0.0.1:\(introspectionPort)/introspect
                  client_id: "@team/gate"
                  client_secret_env: TOLLGATE_TEST_INTROSPECTION_SECRET
            routes:
            \(routes)
              - match: { path: /healthz }
                auth: none
              - name: admin
                match: { prefix: /admin }
                require: { scopes: { all: ["@team/admin"] } }
              - name: orders
                match: { prefix: /orders, methods: [GET, POST, PUT] }
                issuers: [main]
                require: { scopes: { all: ["@team/orders.read"] } }
              - name: opaque
                match: { prefix: /opaque }
                issuers: [opaque]
            default: deny
            forward:
              claims:
                X-Auth-Subject: sub
                X-Auth-Scope: scope
                X-Auth-Actor: actor.national_id
              payload_header: X-Auth-Claims
            \(extra)
            """
    }

    static func start(
        extra: String = "",
        upstreamHandler: TestHTTPServer.Handler? = nil,
        introspectionHandler: TestHTTPServer.Handler? = nil,
        file: String? = nil,
        jwksDown: Bool = false,
        trustedProxies: [String] = ["127.0.0.1"],
        replaceServer: Bool = false,
        upstreamPort: Int? = nil,
        routes: String = ""
    ) async throws -> ProxyEnvironment {
        let jwksFailing = Switch()
        jwksFailing.set(jwksDown)
        let introspectionFailing = Switch()
        let issuer = TestIssuer.shared
        let jwks = try await TestHTTPServer.start { _ in
            if jwksFailing.isOn { return .json(#"{"error":"down"}"#, status: 500) }
            return .json(issuer.jwksJSON, headers: [("Cache-Control", "max-age=300")])
        }
        let introspection = try await TestHTTPServer.start { request in
            if let introspectionHandler { return await introspectionHandler(request) }
            if introspectionFailing.isOn { return .json(#"{"error":"down"}"#, status: 500) }
            let exp = Int(Date().timeIntervalSince1970) + 300
            if request.bodyText.contains(activeOpaque) {
                return .json(#"{"active":true,"sub":"svc-7","scope":"@team/orders.read","exp":\#(exp)}"#)
            }
            return .json(#"{"active":false}"#)
        }
        let upstream = try await TestHTTPServer.start(handler: upstreamHandler ?? echo)
        let yaml = Self.yaml(
            upstreamPort: upstreamPort ?? upstream.port,
            jwksPort: jwks.port,
            introspectionPort: introspection.port,
            trustedProxies: trustedProxies,
            extra: extra,
            replaceServer: replaceServer,
            routes: routes
        )
        let configuration: TollgateConfiguration
        // Reloads read the secret from the process environment, as `tollgate serve` does.
        setenv("TOLLGATE_TEST_INTROSPECTION_SECRET", "s3cret", 1)
        if let file {
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            configuration = try ConfigurationLoader.load(
                path: file,
                environment: ["TOLLGATE_TEST_INTROSPECTION_SECRET": "s3cret"]
            )
        } else {
            configuration = try ConfigurationLoader.parse(
                yaml: yaml,
                file: "test.yaml",
                baseDirectory: "/tmp",
                environment: ["TOLLGATE_TEST_INTROSPECTION_SECRET": "s3cret"]
            )
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let proxy = try await RunningProxy.start(configuration: configuration, configurationPath: file)
        let runtime = proxy.runtime
        let keyRefreshes = Task { await runtime.runKeyRefreshes() }
        return ProxyEnvironment(
            proxy: proxy,
            upstream: upstream,
            jwks: jwks,
            introspection: introspection,
            jwksFailing: jwksFailing,
            introspectionFailing: introspectionFailing,
            client: client,
            keyRefreshes: keyRefreshes
        )
    }

    /// The upstream answers with what it received, as JSON-ish lines the tests read back.
    static let echo: TestHTTPServer.Handler = { request in
        var lines = ["\(request.method) \(request.uri)"]
        for (name, value) in request.headers { lines.append("\(name): \(value)") }
        return TestHTTPServer.Response(
            status: 200,
            headers: [("Content-Type", "text/plain")],
            body: Array(lines.joined(separator: "\n").utf8)
        )
    }

    func stop() async {
        await proxy.stop(grace: .seconds(1))
        keyRefreshes.cancel()
        await keyRefreshes.value
        try? await client.shutdown()
        try? await upstream.shutdown()
        try? await jwks.shutdown()
        try? await introspection.shutdown()
    }

    /// Runs `body` with a started environment and always stops it.
    static func with(
        extra: String = "",
        upstreamHandler: TestHTTPServer.Handler? = nil,
        introspectionHandler: TestHTTPServer.Handler? = nil,
        jwksDown: Bool = false,
        trustedProxies: [String] = ["127.0.0.1"],
        replaceServer: Bool = false,
        upstreamPort: Int? = nil,
        routes: String = "",
        _ body: (ProxyEnvironment) async throws -> Void
    ) async throws {
        let environment = try await start(
            extra: extra,
            upstreamHandler: upstreamHandler,
            introspectionHandler: introspectionHandler,
            jwksDown: jwksDown,
            trustedProxies: trustedProxies,
            replaceServer: replaceServer,
            upstreamPort: upstreamPort,
            routes: routes
        )
        do {
            try await body(environment)
        } catch {
            await environment.stop()
            throw error
        }
        await environment.stop()
    }

    /// Applies the running configuration with the upstream's `response_timeout` set to `seconds`.
    func setUpstreamResponseTimeout(_ seconds: Double) async throws {
        var configuration = proxy.runtime.snapshot.configuration
        var upstream = try #require(configuration.upstream)
        upstream.responseTimeout = seconds
        configuration.upstream = upstream
        try await proxy.runtime.apply(configuration)
    }

    /// A raw request to the proxy: `GET path` with the given header lines.
    func send(
        _ path: String,
        method: String = "GET",
        headers: [String] = [],
        body: String = ""
    ) async throws
        -> RawHTTPClient.Response
    {
        try await RawHTTPClient.send(
            port: proxy.port,
            lines: ["\(method) \(path) HTTP/1.1", "Host: api.test"] + headers,
            body: body
        )
    }
}
