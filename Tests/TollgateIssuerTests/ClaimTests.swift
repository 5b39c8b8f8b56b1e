import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// Claims as people configure them (references 001, 002, 004): typed values, scopes that
/// release them (OpenID Connect Core §5.4 and the configuration's own), an API's access tokens
/// carrying what it lists, and names a token sets itself refused.
@Suite struct ClaimTests {
    typealias Flow = AuthorizationCodeFlowTests

    static let yaml = """
          issuer: https://idp.example
          claims:
            national_id: [national_id]
            groups: [groups, realm_access]
          apis:
            - audience: "@team/orders"
              scopes: ["@team/orders.read"]
              claims: [email, groups, realm_access]
          users:
            - username: ada
              password_hash_env: HASH
              claims:
                name: Ada Lovelace
                email: ada@example.test
                email_verified: true
                updated_at: 1700000000
                national_id: "0123"
                groups: [admins, staff]
                realm_access: { roles: [offline_access, auditor] }
                address: { street_address: 12 St James's Square, country: GB }

        """

    @Test func userClaimsKeepTheirJSONTypesAndScopesMapToClaims() throws {
        let settings = try #require(try LocalIssuerConfigurationTests.parse(Self.yaml).issuerSettings)
        let ada = try #require(settings.users.first)
        #expect(ada.claims["email_verified"] == .bool(true))
        #expect(ada.claims["updated_at"] == .number(1_700_000_000))
        #expect(ada.claims["national_id"] == .string("0123"), "a quoted value stays a string")
        #expect(ada.claims["groups"] == .array([.string("admins"), .string("staff")]))
        #expect(
            ada.claims["realm_access"]?.value(atPath: "roles")
                == .array([.string("offline_access"), .string("auditor")])
        )
        #expect(settings.claims == ["national_id": ["national_id"], "groups": ["groups", "realm_access"]])
        #expect(settings.supportedScopes.contains("national_id") && settings.supportedScopes.contains("groups"))
        #expect(settings.apis.first?.claims == ["email", "groups", "realm_access"])
        let options = IssuerOptions(settings: settings)
        #expect(options.scopeClaims["email"] == ["email", "email_verified"], "the standard scopes stay")
        #expect(options.scopeClaims["phone"] == ["phone_number", "phone_number_verified"])
    }

    @Test(arguments: [
        ("claims:\n    national_id: [iss]\n", 4, "issuer.claims.national_id"),
        ("apis:\n    - audience: a\n      scopes: [a.read]\n      claims: [email, exp]\n", 6, "issuer.apis[0].claims"),
        (
            "users:\n    - username: ada\n      password_hash_env: HASH\n      claims:\n        name: Ada\n        sub: root\n",
            8, "issuer.users[0].claims.sub"
        ),
        ("claims:\n    openid: [name]\n", 4, "issuer.claims.openid"),
    ])
    func claimNamesATokenSetsItselfAreRefusedWithTheirLine(yaml: String, line: Int, field: String) throws {
        do {
            _ = try LocalIssuerConfigurationTests.parse("  issuer: https://idp.example\n  " + yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.field == field, "\(error)")
            #expect(error.line.map { $0 } == line, "\(error)")
        }
    }

    static func makeIssuer() async throws -> OAuthIssuer {
        let settings = try #require(try LocalIssuerConfigurationTests.parse(Self.yaml).issuerSettings)
        let ada = try #require(settings.users.first)
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store) { options in
            options.scopeClaims.merge(settings.claims) { _, configured in configured }
            options.supportedScopes += ["national_id", "groups", "address"]
            options.apis[0].claims = ["email", "groups", "realm_access"]
        }
        var client = try #require(try await store.client(id: "@team/web"))
        client.scopes += ["national_id", "groups", "address"]
        try await store.saveClient(client)
        var user = try #require(try await store.user(username: "ada"))
        user.claims = ada.claims
        try await store.saveUser(user)
        return issuer
    }

    @Test func theGrantedScopesReleaseTypedClaimsInTheIDTokenUserinfoAndIntrospection() async throws {
        let issuer = try await Self.makeIssuer()
        let (callback, _) = try await Flow.signInAndConsent(
            issuer,
            path: Flow.authorizePath(scope: "openid email groups national_id @team/orders.read")
        )
        let tokens = try Flow.json(try await Flow.exchange(issuer, code: try #require(callback["code"])))
        let id = try Flow.claims(ofJWT: try #require(tokens["id_token"]?.stringValue))
        #expect(id["email_verified"] == .bool(true), "a boolean, not the string \"true\"")
        #expect(id["groups"] == .array([.string("admins"), .string("staff")]))
        #expect(id.value(atPath: "realm_access.roles")?.arrayValue?.count == 2)
        #expect(id["national_id"] == .string("0123"))
        #expect(id["name"] == nil && id["address"] == nil, "profile and address were not granted")
        #expect(id["sub"] == .string("ada"), "a person's claims never replace the token's own")

        let access = try #require(tokens["access_token"]?.stringValue)
        var request = HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: "/oauth2/userinfo")
        request.headerFields[.authorization] = "Bearer \(access)"
        let userinfo = try Flow.json(await issuer.handle(request, body: []))
        #expect(userinfo["groups"] == id["groups"] && userinfo["email_verified"] == .bool(true))
        #expect(userinfo["national_id"] == .string("0123") && userinfo["name"] == nil)

        // The API's access token carries the claims it lists, so the gate can forward them.
        let jwt = try Flow.claims(ofJWT: access)
        #expect(jwt["groups"] == id["groups"] && jwt["realm_access"] == id["realm_access"])
        #expect(jwt["email"] == .string("ada@example.test"))
        #expect(jwt["national_id"] == nil, "released to the client, not listed by the API")
        #expect(jwt["client_id"] == .string("@team/web") && jwt["scope"] != nil && jwt["sub"] == .string("ada"))

        let introspection = try Flow.json(
            await Flow.post(issuer, "/oauth2/introspect", [("token", access)], authorization: Flow.webBasic)
        )
        #expect(introspection["active"] == .bool(true))
        #expect(introspection["groups"] == id["groups"] && introspection["national_id"] == .string("0123"))
    }

    @Test func profileReleasesThePreferredUserNameAndAddressAnObject() async throws {
        let issuer = try await Self.makeIssuer()
        let (callback, _) = try await Flow.signInAndConsent(
            issuer,
            path: Flow.authorizePath(scope: "openid profile address @team/orders.read")
        )
        let tokens = try Flow.json(try await Flow.exchange(issuer, code: try #require(callback["code"])))
        let id = try Flow.claims(ofJWT: try #require(tokens["id_token"]?.stringValue))
        #expect(id["preferred_username"] == .string("ada"))
        #expect(id["name"] == .string("Ada Lovelace") && id["updated_at"] == .number(1_700_000_000))
        #expect(id.value(atPath: "address.country") == .string("GB"))
        #expect(id["email"] == nil && id["groups"] == nil)
        // The API lists email and groups, but no granted scope released them: not in its token.
        let access = try Flow.claims(ofJWT: try #require(tokens["access_token"]?.stringValue))
        #expect(access["email"] == nil && access["groups"] == nil && access["realm_access"] == nil)
    }

    @Test func discoveryListsTheClaimsTheOfferedScopesRelease() async throws {
        let issuer = try await Self.makeIssuer()
        let document = try Flow.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        let claims = Set(try #require(document["claims_supported"]?.arrayValue).compactMap(\.stringValue))
        #expect(claims.isSuperset(of: ["sub", "email", "email_verified", "groups", "realm_access", "national_id"]))
    }
}
