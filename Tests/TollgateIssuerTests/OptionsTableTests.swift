import Crypto
import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// Reference 000's options table, each option at its default and changed, as a client sees it:
/// discovery, token answers, the tokens themselves, what a flow allows.
@Suite struct OptionsTableTests {
    typealias Flow = AuthorizationCodeFlowTests
    typealias Clock = DeviceFlowTests.Clock

    /// An issuer configured with `lines` under `issuer:` (the test clients and user of `Flow`).
    static func issuer(
        _ lines: String = "",
        store: MemoryIssuerStore = MemoryIssuerStore(),
        clock: Clock = Clock()
    ) async throws -> OAuthIssuer {
        let settings = try #require(
            try LocalIssuerConfigurationTests.parse("  issuer: https://idp.test\n" + lines).issuerSettings
        )
        return try await Flow.makeIssuer(store: store, clock: clock) { options in
            let apis = options.apis
            options = IssuerOptions(settings: settings)
            options.apis = apis
        }
    }

    static func discovery(_ issuer: OAuthIssuer) async throws -> JSONValue {
        try Flow.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
    }

    static func strings(_ value: JSONValue?) -> [String] { value?.arrayValue?.compactMap(\.stringValue) ?? [] }

    @Test func supportedScopes() async throws {
        #expect(Self.strings(try await Self.discovery(try await Self.issuer())["scopes_supported"]).contains("profile"))
        let narrowed = try await Self.issuer("  supported_scopes: [openid, offline_access]\n")
        #expect(!Self.strings(try await Self.discovery(narrowed)["scopes_supported"]).contains("profile"))
        // A scope the issuer does not offer is not granted (RFC 6749 §3.3: the answer says so).
        let (callback, _) = try await Flow.signInAndConsent(
            narrowed,
            path: Flow.authorizePath(scope: "openid profile @team/orders.read")
        )
        let answer = try Flow.json(try await Flow.exchange(narrowed, code: try #require(callback["code"])))
        #expect(answer["scope"] == .string("openid @team/orders.read"))
    }

    @Test func accessAndRefreshTokenLifetimes() async throws {
        let defaults = try await ClientSettingsTests.tokens(try await Self.issuer()).answer
        #expect(defaults["expires_in"] == .number(3600) && defaults["refresh_expires_in"] == .number(2_592_000))
        let changed = try await ClientSettingsTests.tokens(
            try await Self.issuer("  access_token_ttl: 900\n  refresh_token_ttl: 86400\n")
        ).answer
        #expect(changed["expires_in"] == .number(900) && changed["refresh_expires_in"] == .number(86400))
        let access = try Flow.claims(ofJWT: try #require(changed["access_token"]?.stringValue))
        #expect(access["exp"]?.numberValue.map { $0 - (access["iat"]?.numberValue ?? 0) } == 900)
    }

    @Test func codeLifetime() async throws {
        for (lines, redeemable) in [("", false), ("  code_ttl: 1200\n", true)] {
            let clock = Clock()
            let issuer = try await Self.issuer(lines, clock: clock)
            let code = try #require(try await Flow.signInAndConsent(issuer).0["code"])
            clock.advance(601)
            let answer = try await Flow.exchange(issuer, code: code)
            #expect((answer.head.status == .ok) == redeemable, "code_ttl '\(lines)': \(answer.head.status)")
        }
    }

    @Test func enableDynamicRegistration() async throws {
        var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: "/oauth2/register")
        request.headerFields[.contentType] = "application/json"
        let body = Array(#"{"redirect_uris": ["https://rp.example/cb"]}"#.utf8)
        let closed = try await Self.issuer()
        #expect(try await Self.discovery(closed)["registration_endpoint"] == nil)
        #expect(await closed.handle(request, body: body).head.status == .forbidden)
        let open = try await Self.issuer("  enable_dynamic_registration: true\n")
        #expect(try await Self.discovery(open)["registration_endpoint"] == .string("https://idp.test/oauth2/register"))
        #expect(await open.handle(request, body: body).head.status == .created)
    }

    @Test func requirePKCEForPublic() async throws {
        let path = Flow.authorizePath(client: "@team/spa", redirect: "https://spa.test/cb", scope: "openid", extra: [])
        let strict = await Flow.get(try await Self.issuer(), path)
        #expect(Flow.query(strict.head.headerFields[.location] ?? "")["error"] == "invalid_request")
        let lax = await Flow.get(try await Self.issuer("  require_pkce_for_public: false\n"), path)
        #expect(lax.head.status == .ok, "the sign-in form, without PKCE")
    }

    @Test func jwtAccessToken() async throws {
        let jwt = try await ClientSettingsTests.tokens(try await Self.issuer()).answer["access_token"]?.stringValue
        #expect(jwt?.split(separator: ".").count == 3)
        let opaque = try await ClientSettingsTests.tokens(try await Self.issuer("  jwt_access_token: false\n"))
            .answer["access_token"]?.stringValue
        #expect(opaque?.contains(".") == false)
    }

    @Test func storeClientSecretAndStoreTokens() async throws {
        let hashedStore = MemoryIssuerStore()
        let hashed = try await Self.issuer(store: hashedStore)
        #expect(
            !Self.strings(try await Self.discovery(hashed)["id_token_signing_alg_values_supported"]).contains("HS256")
        )
        let tokens = try await ClientSettingsTests.tokens(hashed).answer
        let refresh = try #require(tokens["refresh_token"]?.stringValue)
        let digest = Base64URL.encode(Array(SHA256Digest.of(refresh)))
        #expect(try await hashedStore.refreshToken(digest: digest)?.value == nil, "a digest only")

        let plainStore = MemoryIssuerStore()
        let plain = try await Self.issuer("  store_client_secret: plain\n  store_tokens: plain\n", store: plainStore)
        #expect(
            Self.strings(try await Self.discovery(plain)["id_token_signing_alg_values_supported"]).contains("HS256")
        )
        let kept = try #require(try await ClientSettingsTests.tokens(plain).answer["refresh_token"]?.stringValue)
        #expect(try await plainStore.refreshToken(digest: Base64URL.encode(SHA256Digest.of(kept)))?.value == kept)
        let (client, secret) = try await IssuerAdministration.createClient(
            id: "@ops/m",
            kind: .machine,
            redirectURIs: [],
            postLogoutRedirectURIs: [],
            scopes: [],
            grantTypes: nil,
            skipConsent: false,
            options: plain.options,
            store: plainStore
        )
        #expect(client.secret == .keeping(try #require(secret)))
    }

    @Test func pairwiseSecret() async throws {
        let public_ = try await ClientSettingsTests.tokens(try await Self.issuer()).answer
        let id = try Flow.claims(ofJWT: try #require(public_["id_token"]?.stringValue))
        #expect(id["sub"] == .string("ada"))
        let pairwise = try await Self.issuer("  pairwise_secret_env: LONG\n")
        #expect(Self.strings(try await Self.discovery(pairwise)["subject_types_supported"]) == ["pairwise"])
        let answer = try await ClientSettingsTests.tokens(pairwise).answer
        let sub = try Flow.claims(ofJWT: try #require(answer["id_token"]?.stringValue))["sub"]?.stringValue
        #expect(sub != nil && sub != "ada" && sub?.count == 43)
    }

    @Test func grantTypes() async throws {
        let all = Self.strings(try await Self.discovery(try await Self.issuer())["grant_types_supported"])
        #expect(all == ["authorization_code", "client_credentials", "refresh_token"])
        let narrowed = try await Self.issuer("  grant_types: [authorization_code, refresh_token]\n")
        #expect(
            Self.strings(try await Self.discovery(narrowed)["grant_types_supported"]) == [
                "authorization_code", "refresh_token",
            ]
        )
        let answer = await Flow.post(
            narrowed,
            "/oauth2/token",
            [("grant_type", "client_credentials")],
            authorization: Flow.webBasic
        )
        #expect(try Flow.json(answer)["error"] == .string("unsupported_grant_type"))
    }

    @Test func issuerURL() async throws {
        let issuer = try await Self.issuer()
        #expect(try await Self.discovery(issuer)["issuer"] == .string("https://idp.test"))
        let id = try Flow.claims(
            ofJWT: try #require(try await ClientSettingsTests.tokens(issuer).answer["id_token"]?.stringValue)
        )
        #expect(id["iss"] == .string("https://idp.test"))
    }
}

enum SHA256Digest {
    static func of(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Array(text.utf8))) }
}
