import Testing
import TollgateCore
import TollgateIssuer

/// The `issuer:` section, parsed by the issuer module: the options table's names and defaults,
/// and refusals that name the file, line and field.
@Suite struct LocalIssuerConfigurationTests {
    static func parse(_ issuer: String, routes: String = "") throws(ConfigurationError) -> TollgateConfiguration {
        LocalIssuerSettings.register()
        return try ConfigurationLoader.parse(
            yaml: "issuer:\n" + issuer + routes,
            file: "issuer.yaml",
            baseDirectory: "/tmp",
            environment: [
                "M2M_SECRET": "s3cret-value", "SHORT": "too-short", "LONG": String(repeating: "p", count: 32),
                "HASH": "scrypt$16384$8$1$c2FsdA$aGFzaA",
            ]
        )
    }

    @Test func defaultsFollowTheOptionsTable() throws {
        let configuration = try Self.parse("  issuer: https://idp.example/team\n")
        let local = try #require(configuration.issuerSettings)
        #expect(local.supportedScopes == ["openid", "profile", "email", "offline_access"])
        #expect(local.accessTokenTTL == 3600)
        #expect(local.refreshTokenTTL == 2_592_000)
        #expect(local.codeTTL == 600)
        #expect(local.enableDynamicRegistration == false)
        #expect(local.requirePKCEForPublic == true)
        #expect(local.jwtAccessToken == true)
        #expect(local.storeClientSecret == "hashed")
        #expect(local.storeTokens == "hashed")
        #expect(local.pairwiseSecret == nil)
        #expect(local.grantTypes == ["authorization_code", "client_credentials", "refresh_token"])
        // It is an issuer routes can name, verified in process.
        let verifying = try #require(configuration.issuer(named: "local"))
        #expect(verifying.keySource == .inProcess)
        #expect(verifying.policy.issuer == "https://idp.example/team")
    }

    @Test func apisClientsAndTheDeviceGrantByName() throws {
        let configuration = try Self.parse(
            """
              issuer: https://idp.example/team
              grant_types: [client_credentials, device_code]
              pairwise_secret_env: LONG
              apis:
                - audience: "@team/orders"
                  scopes: ["@team/orders.read"]
              clients:
                - client_id: "@team/svc"
                  type: machine
                  client_secret_env: M2M_SECRET
                  scopes: ["@team/orders.read"]
                - client_id: "@team/spa"
                  type: spa
                  redirect_uris: [https://app.example/cb]
                  scopes: [openid]

            """,
            routes: "routes:\n  - match: { prefix: /orders }\n    issuers: [local]\n"
        )
        let local = try #require(configuration.issuerSettings)
        #expect(local.grantTypes == ["client_credentials", "urn:ietf:params:oauth:grant-type:device_code"])
        #expect(local.audiences == ["@team/orders"])
        #expect(local.clients.map(\.id) == ["@team/svc", "@team/spa"])
        #expect(local.clients[0].secret?.value == "s3cret-value")
        #expect(local.clients[1].secret == nil)
        #expect(configuration.issuer(named: "local")?.policy.audiences == ["@team/orders"])
    }

    @Test func postgresStorageConsentPageKeysAndMaxAge() throws {
        let configuration = try Self.parse(
            """
              issuer: https://idp.example
              signing_algorithm: EdDSA
              jwks_max_age: 60
              consent_page: https://app.example/consent
              storage:
                postgres:
                  url: postgres://tollgate@db.internal:6432/issuer
                  password_env: LONG

            """
        )
        let local = try #require(configuration.issuerSettings)
        #expect(local.signingAlgorithm == "EdDSA")
        #expect(local.jwksMaxAge == 60)
        #expect(local.consentPage == "https://app.example/consent")
        guard case .postgres(let postgres) = local.storage else {
            Issue.record("storage is \(local.storage)")
            return
        }
        #expect(postgres.host == "db.internal" && postgres.port == 6432)
        #expect(postgres.username == "tollgate" && postgres.database == "issuer")
        #expect(postgres.password?.value == String(repeating: "p", count: 32))
        #expect(postgres.tls, "TLS by default to a database on another host")
        #expect(configuration.issuer(named: "local")?.policy.algorithms.contains(.eddsa) == true)
        // The default storage is SQLite beside the file.
        let plain = try #require(try Self.parse("  issuer: https://i\n").issuerSettings)
        #expect(plain.storage == .sqlite("/tmp/tollgate-issuer.sqlite"))
    }

    @Test(arguments: [
        (
            "  issuer: https://i\n  storage:\n    postgres:\n      url: postgres://u:hunter2@h/db\n",
            "holds a password"
        ),
        ("  issuer: https://i\n  storage:\n    postgres:\n      url: mysql://u@h/db\n", "expected postgres://"),
        (
            "  issuer: https://i\n  storage:\n    postgres:\n      url: postgres://u@h/db\n      password: x\n",
            "secrets are not written"
        ),
        (
            "  issuer: https://i\n  storage:\n    sqlite: a.db\n    postgres:\n      url: postgres://u@h/db\n",
            "one of sqlite, postgres or memory"
        ),
        ("  issuer: https://i\n  consent_page: javascript:x\n", "http(s) URL"),
        ("  issuer: https://i\n  signing_algorithm: HS256\n", "HS256/384/512 only per client, for ID tokens"),
    ])
    func storageAndKeyRefusals(_ section: String, _ message: String) {
        do {
            _ = try Self.parse(section)
            Issue.record("accepted: \(section)")
        } catch {
            #expect(error.file == "issuer.yaml")
            #expect(error.line != nil)
            #expect(error.description.contains(message), "\(error)")
            #expect(!error.description.contains("hunter2"), "a password never appears in an error")
        }
    }

    @Test(arguments: [
        (
            "  issuer: https://i\n  clients:\n    - client_id: a\n      type: machine\n      client_secret: x\n",
            "secrets are not written"
        ),
        ("  issuer: https://i\n  pairwise_secret_env: SHORT\n", "at least 32 characters"),
        ("  issuer: https://i\n  grant_types: [password]\n", "not a grant type"),
        ("  issuer: https://i\n  clients:\n    - client_id: a\n      type: robot\n", "expected web, spa"),
        (
            "  issuer: https://i\n  clients:\n    - client_id: a\n      type: spa\n      client_secret_env: M2M_SECRET\n",
            "public"
        ),
        (
            "  issuer: https://i\n  clients:\n    - client_id: a\n      type: spa\n      scopes: [nope]\n",
            "neither a supported scope"
        ),
        ("  issuer: ftp://i\n", "http(s) URL"),
        ("  issuer: https://i\n  store_tokens: sometimes\n", "'hashed' or 'plain'"),
    ])
    func refusalsNameTheLineAndField(_ section: String, _ message: String) {
        do {
            _ = try Self.parse(section)
            Issue.record("accepted: \(section)")
        } catch {
            #expect(error.file == "issuer.yaml")
            #expect(error.line != nil)
            #expect(error.description.contains(message), "\(error)")
        }
    }
}
