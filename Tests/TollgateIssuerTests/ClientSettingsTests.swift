import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// Per-client settings as reference 004's client types have them: PKCE required of every
/// client unless configured otherwise, and each client's own token lifetimes.
@Suite struct ClientSettingsTests {
    typealias Flow = AuthorizationCodeFlowTests

    @Test func aWebClientWithoutPKCEIsRefusedUnlessItsConfigurationSaysSo() async throws {
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store)
        let withoutPKCE = Flow.authorizePath(extra: [])
        let refused = await Flow.get(issuer, withoutPKCE)
        let location = try #require(refused.head.headerFields[.location])
        #expect(Flow.query(location)["error"] == "invalid_request", "a confidential web client needs PKCE too")

        var client = try #require(try await store.client(id: "@team/web"))
        client.requirePKCE = false
        try await store.saveClient(client)
        let (callback, _) = try await Flow.signInAndConsent(issuer, path: withoutPKCE)
        let answer = await Flow.post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", "authorization_code"), ("code", try #require(callback["code"])),
                ("redirect_uri", "https://app.test/callback"),
            ],
            authorization: Flow.webBasic
        )
        #expect(answer.head.status == .ok, "require_pkce: false lets this one client go without")
    }

    @Test func requirePKCEParsesPerClientAndAPublicClientCannotOptOut() throws {
        let settings = try #require(
            try LocalIssuerConfigurationTests.parse(
                """
                  issuer: https://idp.example
                  clients:
                    - client_id: legacy
                      type: web
                      client_secret_env: M2M_SECRET
                      redirect_uris: [https://legacy.example/cb]
                      require_pkce: false
                      access_token_ttl: 5m
                      refresh_token_ttl: 1d
                      id_token_ttl: 600

                """
            ).issuerSettings
        )
        let legacy = try #require(settings.clients.first)
        #expect(legacy.requirePKCE == false)
        #expect(legacy.accessTokenTTL == 300 && legacy.refreshTokenTTL == 86_400 && legacy.idTokenTTL == 600)
        #expect(settings.idTokenTTL == 3600, "the ID token's own default, not the access token's")
        do {
            _ = try LocalIssuerConfigurationTests.parse(
                """
                  issuer: https://idp.example
                  clients:
                    - client_id: app
                      type: spa
                      redirect_uris: [https://app.example/cb]
                      require_pkce: false

                """
            )
            Issue.record("a public client opted out of PKCE")
        } catch {
            #expect(error.field == "issuer.clients[0].require_pkce" && error.line == 7, "\(error)")
        }
    }

    @Test func eachClientsLifetimesShowInItsAnswersAndTheIDToken() async throws {
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store) { options in
            options.accessTokenTTL = 900
            options.longestClientTTLs = (access: 120, refresh: 7200, id: 60)
        }
        let defaults = try await Self.tokens(issuer)
        #expect(defaults.answer["expires_in"] == .number(900))
        #expect(defaults.answer["refresh_expires_in"] == .number(2_592_000))
        #expect(defaults.idLifetime == 3600, "the ID token lives id_token_ttl, not access_token_ttl")

        var client = try #require(try await store.client(id: "@team/web"))
        client.accessTokenTTL = 120
        client.refreshTokenTTL = 7200
        client.idTokenTTL = 60
        try await store.saveClient(client)
        let own = try await Self.tokens(issuer)
        #expect(own.answer["expires_in"] == .number(120))
        #expect(own.answer["refresh_expires_in"] == .number(7200))
        #expect(own.idLifetime == 60)
        let access = try Flow.claims(ofJWT: try #require(own.answer["access_token"]?.stringValue))
        #expect(access["exp"]?.numberValue.map { $0 - (access["iat"]?.numberValue ?? 0) } == 120)
        // The rotated refresh token keeps the client's lifetime.
        let refreshed = try Flow.json(
            await Flow.post(
                issuer,
                "/oauth2/token",
                [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", try #require(own.answer["refresh_token"]?.stringValue)),
                ],
                authorization: Flow.webBasic
            )
        )
        #expect(refreshed["refresh_expires_in"] == .number(7200) && refreshed["expires_in"] == .number(120))
    }

    static func tokens(_ issuer: OAuthIssuer) async throws -> (answer: JSONValue, idLifetime: Double) {
        let (callback, _) = try await Flow.signInAndConsent(issuer)
        let answer = try Flow.json(try await Flow.exchange(issuer, code: try #require(callback["code"])))
        let id = try Flow.claims(ofJWT: try #require(answer["id_token"]?.stringValue))
        return (answer, try #require(id["exp"]?.numberValue) - (try #require(id["iat"]?.numberValue)))
    }

    @Test(arguments: [
        ("token: /oidc/token\n    introspection: /oidc/token", "is both token and introspection"),
        ("authorization: /oidc/auth\n    token: /oidc/auth/login", "the authorization endpoint's sign-in form"),
        ("token: oidc/token", "expected an absolute path"),
        ("token: /oidc/../token", "expected an absolute path"),
        ("jwks: /.well-known/jwks.json", "expected an absolute path"),
        ("tokens: /oidc/token", "unknown field"),
    ])
    func endpointPathsAreCheckedWithTheirLine(_ endpoints: String, _ reason: String) throws {
        do {
            _ = try LocalIssuerConfigurationTests.parse(
                "  issuer: https://idp.example\n  endpoints:\n    \(endpoints)\n"
            )
            Issue.record("accepted \(endpoints)")
        } catch {
            #expect(error.field.hasPrefix("issuer.endpoints") && "\(error)".contains(reason), "\(error)")
            #expect(error.line != nil)
        }
    }

    @Test func movedEndpointsAreAnsweredWhereDiscoverySaysAndNowhereElse() async throws {
        let issuer = try await Flow.makeIssuer { options in
            options.endpoints = ["token": "/oidc/token", "authorization": "/oidc/auth", "userinfo": "/oidc/me"]
        }
        let document = try Flow.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        #expect(document["token_endpoint"] == .string("https://idp.test/oidc/token"))
        #expect(document["authorization_endpoint"] == .string("https://idp.test/oidc/auth"))
        #expect(document["jwks_uri"] == .string("https://idp.test/oauth2/jwks"), "what is not moved stays")
        #expect(issuer.paths.contains("/oidc/auth/login") && !issuer.paths.contains("/oauth2/token"))
        #expect(await Flow.post(issuer, "/oauth2/token", []).head.status == .notFound)
        let page = await Flow.get(issuer, "/oidc/auth?" + Flow.authorizePath().split(separator: "?")[1])
        #expect(String(decoding: page.body, as: UTF8.self).contains("action=\"/oidc/auth/login\""))
        let answer = await Flow.post(
            issuer,
            "/oidc/token",
            [("grant_type", "client_credentials")],
            authorization: Flow.webBasic
        )
        #expect(answer.head.status != .notFound)
    }

    /// Secret rotation (reference 004 rotates from its Settings tab): the new secret at once,
    /// the old one within the grace and refused after it, with the clock injected.
    @Test func aRotatedSecretIsAcceptedWithinItsGraceAndRefusedAfter() async throws {
        let clock = DeviceFlowTests.Clock()
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store, clock: clock)
        let (_, old) = try await IssuerAdministration.createClient(
            id: "@ops/reporter",
            kind: .machine,
            redirectURIs: [],
            postLogoutRedirectURIs: [],
            scopes: ["@team/orders.read"],
            grantTypes: nil,
            skipConsent: false,
            options: issuer.options,
            store: store
        )
        let oldSecret = try #require(old)
        func status(_ secret: String) async -> Int {
            let answer = await Flow.post(
                issuer,
                "/oauth2/token",
                [("grant_type", "client_credentials")],
                authorization: FormURLEncoding.basicAuthorization(clientID: "@ops/reporter", clientSecret: secret)
            )
            return answer.head.status.code
        }
        #expect(await status(oldSecret) == 200)
        let (rotated, newSecret) = try await IssuerAdministration.rotateSecret(
            id: "@ops/reporter",
            grace: 3600,
            options: issuer.options,
            declared: false,
            store: store,
            now: clock.now
        )
        #expect(rotated.previousSecretExpiresAt == clock.now + 3600)
        #expect(await status(newSecret) == 200)
        #expect(await status(oldSecret) == 200, "within the grace")
        clock.advance(3599)
        #expect(await status(oldSecret) == 200)
        clock.advance(1)
        #expect(await status(oldSecret) == 401, "after it")
        #expect(await status(newSecret) == 200)

        // Without a grace the old secret is refused at once, as reference 004 rotates.
        let (_, third) = try await IssuerAdministration.rotateSecret(
            id: "@ops/reporter",
            grace: 0,
            options: issuer.options,
            declared: false,
            store: store,
            now: clock.now
        )
        #expect(await status(newSecret) == 401)
        #expect(await status(third) == 200)

        for (id, declared, reason) in [
            ("@team/spa", false, "public client"), ("@ops/reporter", true, "declared in the configuration"),
            ("nobody", false, "there is no client"),
        ] {
            do {
                _ = try await IssuerAdministration.rotateSecret(
                    id: id,
                    grace: 0,
                    options: issuer.options,
                    declared: declared,
                    store: store,
                    now: clock.now
                )
                Issue.record("rotated \(id)")
            } catch {
                #expect("\(error)".contains(reason), "\(error)")
            }
        }
    }

    @Test func createClientTakesTheClientsSettingsWithinWhatTheIssuerAllows() async throws {
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store)
        func create(
            _ id: String,
            _ kind: RegisteredClient.Kind,
            _ settings: IssuerAdministration.ClientSettings
        ) async throws -> RegisteredClient {
            try await IssuerAdministration.createClient(
                id: id,
                kind: kind,
                redirectURIs: ["https://app.example/cb"],
                postLogoutRedirectURIs: [],
                scopes: ["openid"],
                grantTypes: nil,
                skipConsent: false,
                settings: settings,
                options: issuer.options,
                store: store
            ).client
        }
        let legacy = try await create(
            "legacy",
            .web,
            .init(requirePKCE: false, accessTokenTTL: 600, idTokenTTL: 300, idTokenSignedResponseAlg: "RS256")
        )
        #expect(legacy.requirePKCE == false && legacy.accessTokenTTL == 600 && legacy.idTokenTTL == 300)
        #expect(try await store.client(id: "legacy")?.idTokenSignedResponseAlg == "RS256")
        for (id, kind, settings, reason) in [
            ("a", RegisteredClient.Kind.spa, IssuerAdministration.ClientSettings(requirePKCE: false), "must use PKCE"),
            ("b", .web, .init(accessTokenTTL: 7200), "between 1 and 3600"),
            ("c", .web, .init(idTokenSignedResponseAlg: "ES384"), "holds no ES384 key"),
            ("d", .web, .init(idTokenSignedResponseAlg: "HS256"), "stored hashed"),
        ] {
            do {
                _ = try await create(id, kind, settings)
                Issue.record("created \(id)")
            } catch {
                #expect("\(error)".contains(reason), "\(error)")
            }
        }
    }

    @Test func lifetimesPastTenYearsAreRefusedAndAnHSClientsSecretStaysUsable() async throws {
        do {
            _ = try LocalIssuerConfigurationTests.parse("  issuer: https://idp.example\n  access_token_ttl: 3651d\n")
            Issue.record("accepted a lifetime past ten years")
        } catch {
            #expect(error.field == "issuer.access_token_ttl" && "\(error)".contains("at most 10 years"), "\(error)")
        }
        // An HS256 client's rotation under hashed storage would leave it nothing to sign with.
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store)
        var client = try #require(try await store.client(id: "@team/web"))
        client.secret = .keeping(Flow.webSecret)
        client.idTokenSignedResponseAlg = "HS256"
        try await store.saveClient(client)
        do {
            _ = try await IssuerAdministration.rotateSecret(
                id: "@team/web",
                grace: 0,
                options: issuer.options,
                declared: false,
                store: store,
                now: 1
            )
            Issue.record("rotated an HS256 client's secret into a digest")
        } catch {
            #expect("\(error)".contains("signs its ID tokens with its secret"), "\(error)")
        }
    }
}
