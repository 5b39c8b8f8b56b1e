import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// The issuer's endpoints as functions of a request: discovery, JWKS, client_credentials,
/// introspection and revocation, per RFC 6749, 7662, 7009, 8414 and 9068.
@Suite struct OAuthIssuerTests {
    static let machineSecret = "machine-secret-0123456789abcdef"

    static func makeIssuer(jwtAccessToken: Bool = true) async throws -> OAuthIssuer {
        var options = IssuerOptions(issuer: "https://idp.test/team")
        options.apis = [
            APIDefinition(audience: "@team/orders", scopes: ["@team/orders.read", "@team/orders.write"]),
            APIDefinition(audience: "@team/billing", scopes: ["@team/billing.read"]),
        ]
        options.jwtAccessToken = jwtAccessToken
        let store = MemoryIssuerStore()
        try await store.saveClient(
            RegisteredClient(
                id: "@team/svc",
                kind: .machine,
                secret: .hashing(machineSecret),
                scopes: ["@team/orders.read", "@team/billing.read", "openid"]
            )
        )
        try await store.saveClient(
            RegisteredClient(id: "@team/spa", kind: .spa, redirectURIs: ["https://app.test/cb"], scopes: ["openid"])
        )
        return try await OAuthIssuer.start(options: options, store: store)
    }

    static func post(
        _ issuer: OAuthIssuer,
        _ path: String,
        form: String,
        authorization: String? = nil
    ) async
        -> IssuerResponse
    {
        var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: path)
        request.headerFields[.contentType] = "application/x-www-form-urlencoded"
        if let authorization { request.headerFields[.authorization] = authorization }
        return await issuer.handle(request, body: Array(form.utf8))
    }

    static func json(_ response: IssuerResponse) throws -> JSONValue { try JSONParser.parse(response.body) }

    static var machineBasic: String {
        FormURLEncoding.basicAuthorization(clientID: "@team/svc", clientSecret: machineSecret)
    }

    @Test func thumbprintMatchesRFC7638Example() {
        // RFC 7638 §3.1.
        let n =
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        let thumbprint = SigningKey.thumbprint(["kty": .string("RSA"), "n": .string(n), "e": .string("AQAB")])
        #expect(thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    }

    @Test func discoveryNamesEveryEndpointAndOnlyTheCodeResponseType() async throws {
        let issuer = try await Self.makeIssuer()
        for path in ["/team/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/team"] {
            let response = await issuer.handle(
                HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: path),
                body: []
            )
            #expect(response.head.status == .ok, "\(path)")
            let document = try Self.json(response)
            #expect(document["issuer"]?.stringValue == "https://idp.test/team")
            #expect(document["token_endpoint"]?.stringValue == "https://idp.test/team/oauth2/token")
            #expect(document["jwks_uri"]?.stringValue == "https://idp.test/team/oauth2/jwks")
            #expect(document["response_types_supported"] == .array([.string("code")]))
            #expect(document["code_challenge_methods_supported"] == .array([.string("S256")]))
        }
    }

    @Test func jwksPublishesTheActiveKeyUnderItsThumbprintWithAMaxAge() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await issuer.handle(
            HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: "/team/oauth2/jwks"),
            body: []
        )
        #expect(response.head.headerFields[.cacheControl] == "public, max-age=300")
        let keys = try #require(try Self.json(response)["keys"]?.arrayValue)
        #expect(keys.count == 1)
        #expect(keys[0]["kid"]?.stringValue == issuer.keys.snapshot.active.keyID)
        #expect(keys[0]["d"] == nil, "no private member")
        #expect(keys[0]["alg"]?.stringValue == "RS256")
    }

    @Test func clientCredentialsWithABasicHeaderWhoseIDHasAtAndSlashGetsAVerifiableJWT() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials&scope=%40team%2Forders.read",
            authorization: Self.machineBasic
        )
        #expect(response.head.status == .ok)
        #expect(response.head.headerFields[.cacheControl] == "no-store")
        let answer = try Self.json(response)
        #expect(answer["token_type"]?.stringValue == "Bearer")
        #expect(answer["expires_in"]?.numberValue == 3600)
        #expect(answer["refresh_token"] == nil)
        #expect(answer["scope"]?.stringValue == "@team/orders.read")
        let token = try #require(answer["access_token"]?.stringValue)
        // Tollgate's own verifier, with the issuer's published keys.
        let verifier = TokenVerifier(
            issuers: [
                IssuerVerifier(
                    policy: IssuerPolicy(
                        name: "local",
                        issuer: "https://idp.test/team",
                        audiences: ["@team/orders"],
                        requiredTokenType: "at+jwt"
                    ),
                    keys: JWKSCache(
                        issuerName: "local",
                        source: .fixed(JSONWebKeySetBox(issuer.keys.snapshot.keySet)),
                        client: nil
                    )
                )
            ]
        )
        let verified = try await verifier.verify(token).get()
        #expect(verified.subject == "@team/svc")
        #expect(verified.scopes.contains("@team/orders.read"))
        #expect(verified.claims["client_id"]?.stringValue == "@team/svc")
        #expect(verified.claims["jti"]?.stringValue != nil)
    }

    @Test func formCredentialsWorkToo() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials&client_id=%40team%2Fsvc&client_secret=\(Self.machineSecret)"
        )
        #expect(response.head.status == .ok)
    }

    @Test func aTokenWithoutAnAPIScopeIsOpaqueAndSoIsEveryTokenWhenJWTsAreOff() async throws {
        let issuer = try await Self.makeIssuer(jwtAccessToken: false)
        let response = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials&scope=%40team%2Forders.read",
            authorization: Self.machineBasic
        )
        let token = try #require(try Self.json(response)["access_token"]?.stringValue)
        #expect(!token.contains("."))
        #expect(token.utf8.count >= 43)
    }

    @Test func scopesOfOneAPIOnlyWhenTheResourceNamesIt() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.post(
            issuer,
            "/team/oauth2/token",
            form:
                "grant_type=client_credentials&scope=%40team%2Forders.read+%40team%2Fbilling.read&resource=%40team%2Fbilling",
            authorization: Self.machineBasic
        )
        #expect(try Self.json(response)["scope"]?.stringValue == "@team/billing.read")
        let unknown = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials&resource=%40team%2Fnone",
            authorization: Self.machineBasic
        )
        #expect(try Self.json(unknown)["error"]?.stringValue == "invalid_target")
    }

    @Test func aWrongSecretIs401InvalidClientWithAChallenge() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials",
            authorization: FormURLEncoding.basicAuthorization(clientID: "@team/svc", clientSecret: "wrong")
        )
        #expect(response.head.status == .unauthorized)
        #expect(response.head.headerFields[.wwwAuthenticate] == #"Basic realm="https://idp.test/team""#)
        #expect(try Self.json(response)["error"]?.stringValue == "invalid_client")
        #expect(!String(decoding: response.body, as: UTF8.self).contains("wrong"))
    }

    @Test(arguments: [
        ("grant_type=password&username=a&password=b", "unsupported_grant_type", 400),
        ("grant_type=client_credentials&grant_type=client_credentials", "invalid_request", 400),
        ("scope=x", "invalid_request", 400),
        ("grant_type=client_credentials&scope=%40team%2Fadmin", "invalid_scope", 400),
    ])
    func protocolErrorsFollowRFC6749(_ form: String, _ error: String, _ status: Int) async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.post(issuer, "/team/oauth2/token", form: form, authorization: Self.machineBasic)
        #expect(Int(response.head.status.code) == status)
        #expect(try Self.json(response)["error"]?.stringValue == error)
    }

    @Test func aPublicClientMayNotUseClientCredentials() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials&client_id=%40team%2Fspa"
        )
        #expect(try Self.json(response)["error"]?.stringValue == "unauthorized_client")
    }

    @Test func introspectionAndRevocation() async throws {
        let issuer = try await Self.makeIssuer()
        let minted = await Self.post(
            issuer,
            "/team/oauth2/token",
            form: "grant_type=client_credentials",
            authorization: Self.machineBasic
        )
        let token = try #require(try Self.json(minted)["access_token"]?.stringValue)
        let form = "token=" + FormURLEncoding.encode(token)
        let active = try Self.json(
            await Self.post(issuer, "/team/oauth2/introspect", form: form, authorization: Self.machineBasic)
        )
        #expect(active["active"] == .bool(true))
        #expect(active["client_id"]?.stringValue == "@team/svc")
        #expect(active["aud"]?.stringValue == "@team/orders")
        // Unauthenticated callers learn nothing.
        let anonymous = await Self.post(issuer, "/team/oauth2/introspect", form: form)
        #expect(anonymous.head.status == .unauthorized)
        let revoked = await Self.post(issuer, "/team/oauth2/revoke", form: form, authorization: Self.machineBasic)
        #expect(revoked.head.status == .ok)
        let inactive = try Self.json(
            await Self.post(issuer, "/team/oauth2/introspect", form: form, authorization: Self.machineBasic)
        )
        #expect(inactive == .object(["active": .bool(false)]))
        let unknown = try Self.json(
            await Self.post(issuer, "/team/oauth2/introspect", form: "token=nothing", authorization: Self.machineBasic)
        )
        #expect(unknown == .object(["active": .bool(false)]))
    }

    @Test func versionIsSemantic() {
        let parts = TollgateIssuer.version.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { UInt($0) != nil })
    }
}
