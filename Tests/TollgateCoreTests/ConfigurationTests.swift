import AsyncHTTPClient
import Foundation
import Testing

@testable import TollgateCore

@Suite struct ConfigurationTests {
    static let directory = Bundle.module.url(forResource: "Fixtures/config", withExtension: nil)!.path

    static func parse(
        _ yaml: String,
        environment: [String: String] = [:]
    ) throws(ConfigurationError)
        -> TollgateConfiguration
    {
        try ConfigurationLoader.parse(
            yaml: yaml,
            file: "tollgate.yaml",
            baseDirectory: directory,
            environment: environment
        )
    }

    static func error(_ yaml: String) -> ConfigurationError? {
        do {
            _ = try parse(yaml)
            return nil
        } catch {
            return error
        }
    }

    static let issuer = """
        issuers:
          - name: main
            issuer: https://idp.example.com/team
            jwks_uri: https://idp.example.com/team/jwks
            audiences: ["@team/api"]

        """

    @Test func theExampleFileLoadsWithEveryField() throws {
        let configuration = try ConfigurationLoader.load(path: Self.directory + "/valid.yaml")
        #expect(configuration.upstream?.url == "http://127.0.0.1:3000")
        #expect(configuration.issuers.count == 2)
        let main = try #require(configuration.issuer(named: "main"))
        #expect(main.policy.leeway == 45)
        #expect(main.policy.requiredTokenType == "at+jwt")
        #expect(main.policy.algorithms == [.rs256, .es256, .eddsa])
        #expect(main.keySource == .discovery(issuer: "https://idp.example.com/team"))
        #expect(main.refresh.minimumRefresh == 60 && main.refresh.maximumRefresh == 3600)
        #expect(main.introspection?.clientID == "@team/gate")
        #expect(main.introspection?.clientSecret.value == "introspection-secret-value")
        #expect("\(main.introspection!.clientSecret)" == "<redacted>")
        #expect(configuration.routes.routes.count == 3)
        #expect(configuration.routes.routes[1].name == "orders-read")
        #expect(configuration.routes.routes[2].conditions.count == 2)
        #expect(configuration.routes.routes[2].authentication == .required(issuers: ["main"]))
        #expect(configuration.routes.defaultAction == .deny)
        #expect(configuration.forward.payloadHeader == "X-Auth-Claims")
        #expect(configuration.warnings.isEmpty)
    }

    @Test(
        arguments: [
            (
                "unknown field",
                issuer + "routes:\n  - match: { prefix: /a }\n    requires: {}\n",
                8, "routes[0].requires", "unknown field"
            ),
            (
                "wrong type",
                issuer + "routes:\n  - match: { prefix: /a }\n    require: { scopes: { all: \"x\" } }\n",
                8, "routes[0].require.scopes.all", "list of strings"
            ),
            (
                "missing issuer URL",
                "issuers:\n  - name: main\n    jwks_uri: https://x.example/jwks\n",
                2, "issuers[0].issuer", "is required"
            ),
            (
                "alg none",
                issuer + "    algorithms: [RS256, none]\n",
                6, "issuers[0].algorithms[1]", "never"
            ),
            (
                "bad duration",
                issuer + "    leeway: soon\n",
                6, "issuers[0].leeway", "duration"
            ),
            (
                "inline secret",
                issuer
                    + "    introspection:\n      endpoint: https://idp.example.com/i\n      client_id: a\n      client_secret: hunter2\n",
                9, "issuers[0].introspection.client_secret", "client_secret_file"
            ),
            (
                "unknown issuer on a route",
                issuer + "routes:\n  - match: { prefix: /a }\n    issuers: [other]\n",
                8, "routes[0].issuers", "no issuer is named 'other'"
            ),
            (
                "plain HTTP JWKS",
                "issuers:\n  - name: main\n    issuer: https://idp.example.com\n    jwks_uri: http://idp.example.com/jwks\n",
                4, "issuers[0].jwks_uri", "plain HTTP"
            ),
            (
                "not normalised route",
                issuer + "routes:\n  - match: { prefix: /a/../b }\n",
                7, "routes[0].match.prefix", "not a normalised path"
            ),
            (
                "YAML syntax",
                "issuers:\n  - name: [unclosed\n",
                3, "", "did not find expected"
            ),
            (
                "HS256 without a secret",
                issuer + "    algorithms: [HS256]\n",
                6, "issuers[0].algorithms", "hmac_secret"
            ),
        ] as [(String, String, Int, String, String)]
    )
    func errorsNameTheLineAndTheField(name: String, yaml: String, line: Int, field: String, message: String) throws {
        let error = try #require(Self.error(yaml), "\(name) was accepted")
        #expect(error.line == line, "\(name): \(error)")
        #expect(error.field == field, "\(name): \(error)")
        #expect(error.message.contains(message), "\(name): \(error)")
        #expect(error.description.hasPrefix("tollgate.yaml:\(line):"))
    }

    @Test func secretsAreNeverEchoedInErrors() {
        let yaml =
            Self.issuer + "    introspection:\n      endpoint: https://idp.example.com/i\n      client_id: a\n"
            + "      client_secret: hunter2-very-secret\n"
        let error = Self.error(yaml)
        #expect(error != nil)
        #expect(!(error?.description.contains("hunter2") ?? true))
    }

    @Test func secretsComeFromTheEnvironment() throws {
        let yaml =
            Self.issuer
            + "    introspection:\n      endpoint: https://idp.example.com/i\n      client_id: a\n      client_secret_env: GATE_SECRET\n"
        let configuration = try Self.parse(yaml, environment: ["GATE_SECRET": "from-env"])
        #expect(configuration.issuers[0].introspection?.clientSecret.value == "from-env")
        #expect(Self.error(yaml)?.message.contains("GATE_SECRET is not set") == true)
    }

    @Test func warningsForShadowedRoutesAndMissingAudiences() throws {
        let yaml = """
            issuers:
              - name: main
                issuer: https://idp.example.com/team
                jwks_uri: https://idp.example.com/team/jwks
            routes:
              - match: { prefix: /orders }
              - name: never
                match: { path: /orders/42, methods: [GET] }
            """
        let warnings = try Self.parse(yaml).warnings
        #expect(warnings.contains { $0.contains("no audiences") })
        #expect(warnings.contains { $0.contains("never can never match") })
    }
}

@Suite struct VerifierFromConfigurationTests {
    @Test func anHMACOnlyIssuerVerifiesWithItsConfiguredSecret() async throws {
        let yaml = """
            issuers:
              - name: internal
                issuer: https://idp.example.com/team
                audiences: ["@team/api"]
                algorithms: [HS256]
                hmac_secret_file: secrets/hmac
            """
        let configuration = try ConfigurationTests.parse(yaml)
        let client = OutboundHTTP.makeClient()
        let now = 1_800_000_000.0
        let verifier = TokenVerifier(configuration: configuration, client: client, now: { now })
        #expect(verifier.isReady)
        let secret = Array("test-only-hmac-secret-0123456789abcdef".utf8)
        let good = TestTokens.mint(header: ["alg": "HS256"], claims: TestTokens.claims(now: now), signer: .hmac(secret))
        #expect((try? await verifier.verify(good).get())?.subject == "user-42")
        let forged = TestTokens.mint(
            header: ["alg": "HS256"],
            claims: TestTokens.claims(now: now),
            signer: .hmac(Array("another-secret-of-at-least-32-bytes!!".utf8))
        )
        #expect(await verifier.verify(forged).failureCode == .signatureInvalid)
        let rs256 = TestTokens.rs256(now: now)
        #expect(await verifier.verify(rs256).failureCode == .algorithmNotAllowed)
        try await client.shutdown()
    }
}
