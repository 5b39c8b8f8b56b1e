import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateTestSupport

/// The issuer as operators run it: real `tollgate serve` processes, the administration commands
/// against their storage, independent clients (curl, Python's requests) over real HTTP.
@Suite("Issuer processes", .serialized)
struct IssuerProcessTests {
    static let interop = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop")

    static func script(
        _ program: String,
        _ arguments: [String],
        timeout: Duration = .seconds(90)
    ) async throws -> (Bool, String) {
        let process = try ExternalProcess("/usr/bin/env", [program] + arguments)
        defer { process.stop() }
        let exited = await process.waitForExit(timeout: timeout)
        return (exited && process.process.terminationStatus == 0, process.log)
    }

    /// The identity provider docs' "No framework (curl)" walk-through, unchanged in its steps.
    @Test func theCurlWalkThroughRunsAgainstTheRunningIssuer() async throws {
        let fixture = try IssuerFixture(storage: .sqlite)
        defer { fixture.stop() }
        try await fixture.serve()
        let (passed, log) = try await Self.script(
            "bash",
            [
                Self.interop.appendingPathComponent("curl_walkthrough.sh").path, fixture.issuer, "@team/web",
                IssuerFixture.webSecret, "@team/svc", IssuerFixture.machineSecret, "ada", IssuerFixture.password,
                IssuerFixture.redirectURI, IssuerFixture.postLogoutURI,
            ]
        )
        #expect(passed, "\(log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(log.contains("curl walk-through: all steps passed"))
    }

    /// Reference 004's endpoint paths (`/oidc/auth`, `/oidc/token`, `/oidc/me`, …) through
    /// `endpoints:`: discovery names them, the curl walk-through runs unchanged on them.
    static let referencePaths = """
          endpoints:
            authorization: /oidc/auth
            token: /oidc/token
            introspection: /oidc/token/introspection
            revocation: /oidc/token/revocation
            userinfo: /oidc/me
            jwks: /oidc/jwks
            end_session: /oidc/session/end
            device_authorization: /oidc/device/auth
            device: /activate
        """

    @Test func theCurlWalkThroughRunsOnTheReferencesOIDCPaths() async throws {
        let fixture = try IssuerFixture(storage: .sqlite, extra: Self.referencePaths)
        defer { fixture.stop() }
        try await fixture.serve()
        let (passed, log) = try await Self.script(
            "bash",
            [
                Self.interop.appendingPathComponent("curl_walkthrough.sh").path, fixture.issuer, "@team/web",
                IssuerFixture.webSecret, "@team/svc", IssuerFixture.machineSecret, "ada", IssuerFixture.password,
                IssuerFixture.redirectURI, IssuerFixture.postLogoutURI,
            ]
        )
        #expect(passed, "\(log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(log.contains("curl walk-through: all steps passed"))
    }

    /// The seed documents' calls as written (Tests/Interop/seed_apis.py): 000's
    /// `consent({ accept: true })` from the browser's cookie jar and its registration payload,
    /// 004's native client revoking with Expo's `revokeAsync` shape, on 004's paths.
    @Test func theSeedDocumentsCallsWorkAsWritten() async throws {
        let consentPage = "http://127.0.0.1:9/consent"
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: Self.referencePaths + """

                  consent_page: \(consentPage)
                  enable_dynamic_registration: true
                """,
            extraClients: """
                - client_id: "@team/app"
                  type: native
                  redirect_uris: ["is.team.app:/callback"]
                  scopes: [openid, offline_access]
                  skip_consent: true
                """
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let (passed, log) = try await Self.script(
            "python3",
            [
                Self.interop.appendingPathComponent("seed_apis.py").path, fixture.issuer, IssuerFixture.webSecret,
                "ada", IssuerFixture.password, "bob", consentPage, "@team/app", "is.team.app:/callback",
            ]
        )
        #expect(passed, "\(log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(log.contains("seed APIs: all checks passed"))
    }

    /// py_oidc_auth (reference 001's relying-party library, from PyPI): login with PKCE,
    /// callback, refresh, device flow, userinfo and logout.
    @Test func pyOIDCAuthCompletesItsFlowsAgainstTheRunningIssuer() async throws {
        let fixture = try IssuerFixture(storage: .sqlite)
        defer { fixture.stop() }
        try await fixture.serve()
        let (passed, log) = try await Self.script(
            "python3",
            [
                Self.interop.appendingPathComponent("py_oidc_auth_flow.py").path, fixture.issuer, "@team/web",
                IssuerFixture.webSecret, "ada", IssuerFixture.password, IssuerFixture.redirectURI,
                IssuerFixture.postLogoutURI,
            ]
        )
        #expect(passed, "\(log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(log.contains("py_oidc_auth: all checks passed"))
    }

    /// Two issuer processes on one store (the SQLite file, or one PostgreSQL database), with a
    /// reuse interval: fifty refreshes of one token at once, half to each, rotate it exactly
    /// once and every loser gets the winner's answer.
    @Test(arguments: IssuerFixture.storages)
    func fiftyConcurrentRefreshesOverTwoProcessesRotateOnce(_ storage: IssuerFixture.Storage) async throws {
        // The retry answer is what the losers get: it is kept only with a reuse interval.
        let fixture = try IssuerFixture(storage: storage, extra: "  refresh_token_reuse_interval: 30s")
        defer { fixture.stop() }
        try await fixture.serve()
        let second = try await fixture.serve()
        let (passed, log) = try await Self.script(
            "python3",
            [
                Self.interop.appendingPathComponent("refresh_race.py").path, fixture.issuer,
                "http://127.0.0.1:\(second)", "@team/web", IssuerFixture.webSecret, "ada", IssuerFixture.password,
                IssuerFixture.redirectURI,
            ]
        )
        #expect(passed, "\(log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(log.contains("refresh race: all checks passed"))
    }

    /// The holes an attacker finds, tried from outside against the real process on each storage
    /// (Tests/Interop/issuer_attacks.py): refresh-token revocation and introspection, the gate
    /// refusing a revoked grant's JWT at once, resources, concurrent code redemption, the storage
    /// read past the issuer (sqlite3, psql), login and logout CSRF, open redirects, request
    /// objects, the device page and the brute-force limits.
    @Test(arguments: IssuerFixture.storages)
    func theIssuerHoldsAgainstTheAttacksTriedFromOutside(_ storage: IssuerFixture.Storage) async throws {
        let upstream = try await TestHTTPServer.start(handler: ProxyEnvironment.echo)
        defer { Task { try? await upstream.shutdown() } }
        let fixture = try IssuerFixture(
            storage: storage,
            extra: """
                  enable_dynamic_registration: true
                  refresh_token_reuse_interval: 30s
                  limits:
                    account_failures: 3
                    wait_increment: 30s
                    user_code_failures_per_address: 3
                """,
            upstream: upstream.port,
            routes: """
                routes:
                  - match: { prefix: /api }
                    issuers: [local]
                default: deny
                """
        )
        defer { fixture.stop() }
        try await fixture.serve()
        var query = ["sqlite3", fixture.sqlitePath]
        var environment = ProcessInfo.processInfo.environment
        if let url = fixture.postgresURL {
            query = ["psql", url, "-At", "-c"]
            environment["PGPASSWORD"] = try String(contentsOfFile: TestPostgres.passwordFile ?? "", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let process = try ExternalProcess(
            "/usr/bin/env",
            [
                "python3", Self.interop.appendingPathComponent("issuer_attacks.py").path, fixture.issuer, "@team/web",
                IssuerFixture.webSecret, "@team/svc", IssuerFixture.machineSecret, "ada", IssuerFixture.password,
                IssuerFixture.redirectURI,
            ] + query,
            environment: environment
        )
        defer { process.stop() }
        let exited = await process.waitForExit(timeout: .seconds(120))
        #expect(exited && process.process.terminationStatus == 0, "\(process.log)\n--- tollgate ---\n\(fixture.logs)")
        #expect(process.log.contains("issuer attacks: all checks passed"))
    }

    static func post(_ url: String, form: String, basic: (String, String)? = nil) async throws -> (Int, [String: Any]) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        if let basic {
            request.headers.add(
                name: "Authorization",
                value: FormURLEncoding.basicAuthorization(clientID: basic.0, clientSecret: basic.1)
            )
        }
        request.body = .bytes(ByteBuffer(string: form))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        let object = (try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8))) as? [String: Any]
        return (Int(response.status.code), object ?? [:])
    }

    static func get(_ url: String, token: String? = nil) async throws -> (Int, String) {
        var request = HTTPClientRequest(url: url)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static func clientCredentials(
        _ fixture: IssuerFixture,
        id: String,
        secret: String
    ) async throws -> (Int, [String: Any]) {
        try await post(fixture.issuer + "/oauth2/token", form: "grant_type=client_credentials", basic: (id, secret))
    }

    /// create-client, list-clients, add-user and revoke-client work on the storage of a
    /// running issuer, which sees the change on its next request.
    @Test func theAdministrationCommandsChangeARunningIssuer() async throws {
        let upstream = try await TestHTTPServer.start(handler: ProxyEnvironment.echo)
        defer { Task { try? await upstream.shutdown() } }
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: "  jwt_access_token: false",
            upstream: upstream.port,
            routes: """
                routes:
                  - match: { prefix: /orders }
                    issuers: [local]
                    require: { scopes: { all: ["@team/orders.read"] } }
                default: deny
                """
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let config = fixture.configuration.path

        let created = try fixture.run([
            "issuer", "create-client", "-c", config, "--id", "@ops/reporter", "--type", "machine", "--scope",
            "@team/orders.read",
        ])
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains("only its SHA-256 digest is stored (store_client_secret: hashed)"))
        let secret = try #require(
            created.output.split(separator: "\n").first { $0.hasPrefix("client_secret: ") }.map {
                String($0.dropFirst("client_secret: ".count).prefix { $0 != " " })
            }
        )
        let (issued, answer) = try await Self.clientCredentials(fixture, id: "@ops/reporter", secret: secret)
        #expect(issued == 200, "\(answer)")
        let token = try #require(answer["access_token"] as? String)
        #expect(try await Self.get(fixture.issuer + "/orders/1", token: token).0 == 200)

        let listed = try fixture.run(["issuer", "list-clients", "-c", config])
        #expect(listed.status == 0)
        #expect(listed.output.contains("@ops/reporter\tmachine\tactive"))
        #expect(listed.output.contains("@team/web\tweb\tactive"))
        #expect(!listed.output.contains(secret), "secrets are never listed")
        #expect(!listed.output.contains(IssuerFixture.webSecret))

        let duplicate = try fixture.run([
            "issuer", "create-client", "-c", config, "--id", "@ops/reporter", "--type", "machine",
        ])
        #expect(duplicate.status != 0 && duplicate.output.contains("already exists"))
        let badScope = try fixture.run([
            "issuer", "create-client", "-c", config, "--id", "x", "--type", "machine", "--scope", "admin",
        ])
        #expect(badScope.status != 0 && badScope.output.contains("neither a supported scope"))

        // Secret rotation with a grace: both secrets work, list-clients says until when.
        let rotated = try fixture.run(["issuer", "rotate-secret", "-c", config, "@ops/reporter", "--grace", "1h"])
        #expect(rotated.status == 0, "\(rotated.output)")
        #expect(rotated.output.contains("the previous secret is accepted for 3600s more"), "\(rotated.output)")
        let newSecret = try #require(
            rotated.output.split(separator: "\n").first { $0.hasPrefix("client_secret: ") }.map {
                String($0.dropFirst("client_secret: ".count).prefix { $0 != " " })
            }
        )
        #expect(newSecret != secret)
        #expect(try await Self.clientCredentials(fixture, id: "@ops/reporter", secret: newSecret).0 == 200)
        #expect(try await Self.clientCredentials(fixture, id: "@ops/reporter", secret: secret).0 == 200)
        #expect(try fixture.run(["issuer", "list-clients", "-c", config]).output.contains("previous_secret_until="))
        let declared = try fixture.run(["issuer", "rotate-secret", "-c", config, "@team/svc"])
        #expect(declared.status != 0 && declared.output.contains("declared in the configuration"))
        let strict = try fixture.run(["issuer", "rotate-secret", "-c", config, "@ops/reporter"])
        #expect(strict.output.contains("the previous secret is no longer accepted"), "\(strict.output)")
        #expect(try await Self.clientCredentials(fixture, id: "@ops/reporter", secret: newSecret).0 == 401)
        #expect(try await Self.clientCredentials(fixture, id: "@ops/reporter", secret: secret).0 == 401)

        let revoked = try fixture.run(["issuer", "revoke-client", "-c", config, "@ops/reporter"])
        #expect(revoked.status == 0, "\(revoked.output)")
        // Its opaque token is refused by the gate at once, and it can no longer authenticate.
        #expect(try await Self.get(fixture.issuer + "/orders/1", token: token).0 == 401)
        let (refused, error) = try await Self.clientCredentials(fixture, id: "@ops/reporter", secret: secret)
        #expect(refused == 401 && error["error"] as? String == "invalid_client")
        #expect(try fixture.run(["issuer", "revoke-client", "-c", config, "nobody"]).status != 0)

        let added = try fixture.run(
            [
                "issuer", "add-user", "-c", config, "--username", "grace", "--claim", "email=grace@example.test",
                "--claim", "email_verified=true", "--claim", "phone_number=0123456", "--claim", #"groups=["ops"]"#,
            ],
            input: "another good password\n"
        )
        #expect(added.status == 0, "\(added.output)")
        // Booleans and lists keep their type; a number-like value stays text.
        let stored = Process()
        stored.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stored.arguments = [
            "sqlite3", fixture.sqlitePath, "SELECT body FROM records WHERE kind = 'user' AND key = 'grace'",
        ]
        let output = Pipe()
        stored.standardOutput = output
        try stored.run()
        stored.waitUntilExit()
        let body = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(body.contains(#""email_verified":true"#), "\(body)")
        #expect(body.contains(#""phone_number":"0123456""#), "\(body)")
        #expect(body.contains(#""groups":["ops"]"#), "\(body)")
        let signedIn = try await Self.signIn(fixture, username: "grace", password: "another good password")
        #expect(signedIn.contains("Allow access?"), "the new user signs in: \(signedIn)")
    }

    /// The sign-in form for the web client, filled in; returns the page that follows.
    static func signIn(_ fixture: IssuerFixture, username: String, password: String) async throws -> String {
        let query = FormURLEncoding.encode([
            ("response_type", "code"), ("client_id", "@team/web"), ("redirect_uri", IssuerFixture.redirectURI),
            ("scope", "openid"), ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ])
        let pageResponse = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: fixture.issuer + "/oauth2/authorize?" + query),
            timeout: .seconds(10)
        )
        let page = String(buffer: try await pageResponse.body.collect(upTo: 1 << 20))
        // The form is accepted only from the browser that loaded it: its pre-session cookie.
        let browserCookie = pageResponse.headers["Set-Cookie"].first.map { String($0.split(separator: ";")[0]) }
        func hidden(_ name: String) -> String {
            guard let range = page.range(of: "name=\"\(name)\" value=\"") else { return "" }
            return String(page[range.upperBound...].prefix { $0 != "\"" })
        }
        var request = HTTPClientRequest(url: fixture.issuer + "/oauth2/authorize/login")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        if let browserCookie { request.headers.add(name: "Cookie", value: browserCookie) }
        request.body = .bytes(
            ByteBuffer(
                string: FormURLEncoding.encode([
                    ("request", hidden("request")), ("csrf", hidden("csrf")), ("username", username),
                    ("password", password),
                ])
            )
        )
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    /// A reload never rebuilds the issuer: a changed `issuer:` section is refused as a whole
    /// (the running one keeps serving, the issuer unchanged), an edit elsewhere that only moves
    /// the section's lines applies.
    @Test func aReloadThatChangesTheIssuerSectionIsRefusedAndOneThatMovesItApplies() async throws {
        let fixture = try IssuerFixture(storage: .sqlite)
        defer { fixture.stop() }
        try await fixture.serve()
        let process = try #require(fixture.processes.first)
        let original = try String(contentsOf: fixture.configuration, encoding: .utf8)
        try original.replacingOccurrences(of: "  grant_types:", with: "  access_token_ttl: 60\n  grant_types:")
            .write(to: fixture.configuration, atomically: true, encoding: .utf8)
        process.signal(SIGHUP)
        let deadline = ContinuousClock.now + .seconds(10)
        while !process.log.contains("the issuer: section changed") && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(process.log.contains("the issuer: section changed"), "\(process.log)")
        let (_, answer) = try await Self.clientCredentials(
            fixture,
            id: "@team/svc",
            secret: IssuerFixture.machineSecret
        )
        #expect(answer["expires_in"] as? Int == 3600, "the issuer keeps its options")

        try ("# a comment above everything\n# and another\n" + original)
            .write(to: fixture.configuration, atomically: true, encoding: .utf8)
        process.signal(SIGHUP)
        while !process.log.contains("configuration applied") && ContinuousClock.now < deadline + .seconds(10) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(process.log.contains("configuration applied"), "\(process.log)")
    }

    static func keyID(of token: String) -> String? {
        guard let header = Base64URL.decode(String(token.split(separator: ".").first ?? "")) else { return nil }
        return (try? JSONParser.parse(header))?["kid"]?.stringValue
    }

    /// `tollgate issuer rotate-keys` beside a running gate: the new key is published first and
    /// signs only after the JWKS max-age (1 s here) plus a refresh interval; a token of the old
    /// key keeps passing the gate.
    @Test func rotateKeysBesideARunningGateKeepsOldTokensValid() async throws {
        let upstream = try await TestHTTPServer.start(handler: ProxyEnvironment.echo)
        defer { Task { try? await upstream.shutdown() } }
        let fixture = try IssuerFixture(
            storage: .sqlite,
            extra: "  jwks_max_age: 1",
            upstream: upstream.port,
            routes: """
                routes:
                  - match: { prefix: /orders }
                    issuers: [local]
                    require: { scopes: { all: ["@team/orders.read"] } }
                default: deny
                """
        )
        defer { fixture.stop() }
        try await fixture.serve()
        let (_, first) = try await Self.clientCredentials(fixture, id: "@team/svc", secret: IssuerFixture.machineSecret)
        let oldToken = try #require(first["access_token"] as? String)
        let oldKey = try #require(Self.keyID(of: oldToken))

        let rotated = try fixture.run(["issuer", "rotate-keys", "-c", fixture.configuration.path])
        #expect(rotated.status == 0, "\(rotated.output)")
        #expect(rotated.output.contains("signing in 2s"))
        // Published before it signs.
        var published = false
        var newKey: String?
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            let (_, jwks) = try await Self.get(fixture.issuer + "/oauth2/jwks")
            let count = (try? JSONParser.parse(jwks))?["keys"]?.arrayValue?.count ?? 0
            let (_, answer) = try await Self.clientCredentials(
                fixture,
                id: "@team/svc",
                secret: IssuerFixture.machineSecret
            )
            let kid = (answer["access_token"] as? String).flatMap(Self.keyID(of:))
            if kid == oldKey && count == 2 { published = true }
            if let kid, kid != oldKey {
                newKey = kid
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(published, "the new key was in the JWKS while the old one still signed")
        let signing = try #require(newKey, "the new key signs within the deadline: \(fixture.logs)")
        let (_, jwks) = try await Self.get(fixture.issuer + "/oauth2/jwks")
        #expect(jwks.contains(oldKey) && jwks.contains(signing), "both keys are published")
        #expect(try await Self.get(fixture.issuer + "/orders/1", token: oldToken).0 == 200)
        let (_, fresh) = try await Self.clientCredentials(fixture, id: "@team/svc", secret: IssuerFixture.machineSecret)
        #expect(
            try await Self.get(fixture.issuer + "/orders/1", token: try #require(fresh["access_token"] as? String)).0
                == 200
        )
    }
}
