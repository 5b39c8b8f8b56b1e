import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// RFC 7591 dynamic registration (refused unless enabled) and the JSON consent endpoint for
/// applications that render their own consent page.
@Suite struct RegistrationAndConsentTests {
    typealias Flow = AuthorizationCodeFlowTests

    static func makeIssuer(
        registration: Bool,
        consentPage: String? = nil,
        registrationsPerHour: Int = 20
    ) async throws -> OAuthIssuer {
        var options = IssuerOptions(issuer: "https://idp.test")
        options.limits.registrationsPerHour = registrationsPerHour
        options.apis = [APIDefinition(audience: "@team/orders", scopes: ["@team/orders.read"])]
        options.enableDynamicRegistration = registration
        options.consentPage = consentPage
        let store = MemoryIssuerStore()
        try await store.saveClient(
            RegisteredClient(
                id: "@team/web",
                kind: .web,
                secret: .hashing(Flow.webSecret),
                redirectURIs: ["https://app.test/callback"],
                scopes: ["openid", "profile", "@team/orders.read"]
            )
        )
        try await store.saveUser(
            IssuerUser(username: "ada", passwordHash: try PasswordHash.make(Flow.password, rounds: 1 << 10))
        )
        return try await OAuthIssuer.start(options: options, store: store)
    }

    static func postJSON(
        _ issuer: OAuthIssuer,
        _ path: String,
        _ body: String,
        cookie: String? = nil,
        contentType: String = "application/json"
    ) async -> IssuerResponse {
        var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: path)
        request.headerFields[.contentType] = contentType
        if let cookie { request.headerFields[.cookie] = cookie }
        return await issuer.handle(request, body: Array(body.utf8))
    }

    static func json(_ response: IssuerResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    @Test func registrationIsRefusedWhenItIsNotEnabled() async throws {
        let issuer = try await Self.makeIssuer(registration: false)
        let refused = await Self.postJSON(
            issuer,
            "/oauth2/register",
            #"{"redirect_uris": ["https://evil.test/cb"], "client_name": "x"}"#
        )
        #expect(refused.head.status == .forbidden)
        #expect(try Self.json(refused)["error"] as? String == "access_denied")
        let discovery = try Self.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        #expect(discovery["registration_endpoint"] == nil)
    }

    @Test func aRegisteredPublicClientRunsTheCodeFlowWithPKCE() async throws {
        let issuer = try await Self.makeIssuer(registration: true)
        let discovery = try Self.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        #expect(discovery["registration_endpoint"] as? String == "https://idp.test/oauth2/register")
        let answer = await Self.postJSON(
            issuer,
            "/oauth2/register",
            """
            {"client_name": "My App", "redirect_uris": ["https://app.example/callback"],
             "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
             "scope": "openid offline_access"}
            """
        )
        #expect(answer.head.status == .created)
        let registered = try Self.json(answer)
        let id = try #require(registered["client_id"] as? String)
        #expect(registered["client_secret"] == nil, "a public client gets no secret")
        #expect(registered["client_name"] as? String == "My App")
        #expect(registered["scope"] as? String == "openid offline_access")

        let path = Flow.authorizePath(
            client: id,
            redirect: "https://app.example/callback",
            scope: "openid offline_access"
        )
        let browser = Flow.Browser()
        let login = await Flow.get(issuer, path, browser: browser)
        let consent = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(login, "request"))),
                ("csrf", try #require(Flow.hidden(login, "csrf"))), ("username", "ada"), ("password", Flow.password),
            ],
            browser: browser
        )
        // A registered client is third-party: the person is asked.
        #expect(String(decoding: consent.body, as: UTF8.self).contains("Allow access?"))
    }

    /// An MCP client steps up to the union of the scopes a resource names without registering
    /// again: the registered client may ask for any offered scope, and is told when one is not.
    @Test func aRegisteredClientMayAskForAnyOfferedScopeAndIsToldOfOneThatIsNot() async throws {
        let issuer = try await Self.makeIssuer(registration: true)
        let registered = try Self.json(
            await Self.postJSON(
                issuer,
                "/oauth2/register",
                #"{"redirect_uris": ["https://app.example/callback"], "token_endpoint_auth_method": "none", "scope": "openid"}"#
            )
        )
        let id = try #require(registered["client_id"] as? String)
        let wider = Flow.authorizePath(
            client: id,
            redirect: "https://app.example/callback",
            scope: "openid @team/orders.read"
        )
        let browser = Flow.Browser()
        let login = await Flow.get(issuer, wider, browser: browser)
        let consent = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(login, "request"))),
                ("csrf", try #require(Flow.hidden(login, "csrf"))), ("username", "ada"), ("password", Flow.password),
            ],
            browser: browser
        )
        let page = String(decoding: consent.body, as: UTF8.self)
        #expect(page.contains("Allow access?"))
        #expect(page.contains("@team/orders.read"), "the scope beyond the registered ones is asked for, not dropped")
        let unknown = await Flow.get(
            issuer,
            Flow.authorizePath(client: id, redirect: "https://app.example/callback", scope: "openid @team/unknown"),
            browser: Flow.Browser()
        )
        // A registered client's redirect URI is not trusted before the person decides: the
        // invalid_scope refusal is shown on a page, not redirected.
        #expect(unknown.head.headerFields[.location] == nil)
        let refusal = String(decoding: unknown.body, as: UTF8.self)
        #expect(refusal.contains("a requested scope is not offered"), "\(refusal)")
        #expect(!refusal.contains("@team/unknown"), "the client's text is not echoed")
    }

    @Test func aClientRegisteredForDPoPBoundTokensGetsNoneWithoutAProof() async throws {
        let issuer = try await Self.makeIssuer(registration: true)
        let answer = await Self.postJSON(
            issuer,
            "/oauth2/register",
            #"{"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none", "#
                + #""grant_types": ["authorization_code", "refresh_token"], "dpop_bound_access_tokens": true}"#
        )
        #expect(answer.head.status == .created)
        let registered = try Self.json(answer)
        #expect(registered["dpop_bound_access_tokens"] as? Bool == true)
        let id = try #require(registered["client_id"] as? String)
        // A token request without a proof is refused before its grant is looked at.
        let refused = await Flow.post(
            issuer,
            "/oauth2/token",
            [("grant_type", "refresh_token"), ("refresh_token", "whatever"), ("client_id", id)]
        )
        #expect(refused.head.status == .badRequest)
        #expect(try Self.json(refused)["error"] as? String == "invalid_dpop_proof")
    }

    @Test func aRegisteredConfidentialClientGetsASecretThatAuthenticates() async throws {
        let issuer = try await Self.makeIssuer(registration: true)
        let answer = await Self.postJSON(
            issuer,
            "/oauth2/register",
            #"{"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}"#
        )
        #expect(answer.head.status == .created)
        let registered = try Self.json(answer)
        let id = try #require(registered["client_id"] as? String)
        let secret = try #require(registered["client_secret"] as? String)
        #expect(registered["client_secret_expires_at"] as? Int == 0)
        // The secret authenticates the client (revocation answers 200 to an authenticated client).
        let revoked = await Flow.post(
            issuer,
            "/oauth2/revoke",
            [("token", "anything")],
            authorization: FormURLEncoding.basicAuthorization(clientID: id, clientSecret: secret)
        )
        #expect(revoked.head.status == .ok)
        let wrong = await Flow.post(
            issuer,
            "/oauth2/revoke",
            [("token", "anything")],
            authorization: FormURLEncoding.basicAuthorization(clientID: id, clientSecret: "wrong")
        )
        #expect(wrong.head.status == .unauthorized)
    }

    @Test(arguments: [
        (#"{"redirect_uris": ["http://evil.test/cb"]}"#, "invalid_redirect_uri"),
        (#"{"redirect_uris": ["https://app.test/cb#frag"]}"#, "invalid_redirect_uri"),
        (#"{"redirect_uris": ["javascript:alert(1)"]}"#, "invalid_redirect_uri"),
        (#"{"grant_types": ["authorization_code"]}"#, "invalid_redirect_uri"),
        (#"{"redirect_uris": ["https://a.test/cb"], "grant_types": ["implicit"]}"#, "invalid_client_metadata"),
        (#"{"redirect_uris": ["https://a.test/cb"], "response_types": ["token"]}"#, "invalid_client_metadata"),
        (#"{"redirect_uris": ["https://a.test/cb"], "scope": "admin"}"#, "invalid_client_metadata"),
        (
            #"{"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}"#,
            "invalid_client_metadata"
        ),
        (#"{"redirect_uris": "https://a.test/cb"}"#, "invalid_client_metadata"),
        (#"[1, 2]"#, "invalid_client_metadata"),
        // Open registration never yields a client that gets tokens without a person.
        (#"{"grant_types": ["client_credentials"], "scope": "@team/orders.read"}"#, "invalid_client_metadata"),
        // Sender-constrained tokens asked for are given or refused, never bearer tokens instead.
        (#"{"redirect_uris": ["https://a.test/cb"], "dpop_bound_access_tokens": "yes"}"#, "invalid_client_metadata"),
        (
            #"{"redirect_uris": ["https://a.test/cb"], "tls_client_certificate_bound_access_tokens": true}"#,
            "invalid_client_metadata"
        ),
    ])
    func badMetadataIsRefusedWithTheRFC7591Error(_ body: String, _ error: String) async throws {
        let issuer = try await Self.makeIssuer(registration: true)
        let answer = await Self.postJSON(issuer, "/oauth2/register", body)
        #expect(answer.head.status == .badRequest)
        #expect(try Self.json(answer)["error"] as? String == error)
    }

    @Test func loopbackAndPrivateUseRedirectsAreAcceptedForNativeApps() async throws {
        let issuer = try await Self.makeIssuer(registration: true)
        let answer = await Self.postJSON(
            issuer,
            "/oauth2/register",
            #"{"redirect_uris": ["http://127.0.0.1:5000/cb", "com.example.app:/callback"], "token_endpoint_auth_method": "none"}"#
        )
        #expect(answer.head.status == .created)
    }

    /// The application's own consent page: the browser is sent there with a consent code, and
    /// the page answers through `POST /oauth2/consent`.
    @Test func anApplicationsOwnConsentPageAnswersThroughTheJSONEndpoint() async throws {
        let issuer = try await Self.makeIssuer(registration: false, consentPage: "https://app.test/consent")
        func signIn() async throws -> (consentCode: String, cookie: String) {
            let browser = Flow.Browser()
            let login = await Flow.get(issuer, Flow.authorizePath(scope: "openid profile"), browser: browser)
            let signedIn = await Flow.post(
                issuer,
                "/oauth2/authorize/login",
                [
                    ("request", try #require(Flow.hidden(login, "request"))),
                    ("csrf", try #require(Flow.hidden(login, "csrf"))), ("username", "ada"),
                    ("password", Flow.password),
                ],
                browser: browser
            )
            #expect(signedIn.head.status == .found)
            let location = try #require(signedIn.head.headerFields[.location])
            #expect(location.hasPrefix("https://app.test/consent?"))
            let query = Flow.query(location)
            #expect(query["client_id"] == "@team/web")
            #expect(query["scope"] == "openid profile")
            let cookie = try #require(signedIn.head.headerFields[.setCookie])
            return (try #require(query["consent_code"]), String(cookie.split(separator: ";")[0]))
        }

        let (code, cookie) = try await signIn()
        // Without the session, or as a form, or with a made-up code: refused.
        let anonymous = await Self.postJSON(issuer, "/oauth2/consent", #"{"consent_code": "\#(code)", "accept": true}"#)
        #expect(anonymous.head.status == .unauthorized)
        let asForm = await Self.postJSON(
            issuer,
            "/oauth2/consent",
            "consent_code=\(code)&accept=true",
            cookie: cookie,
            contentType: "application/x-www-form-urlencoded"
        )
        #expect(asForm.head.status == .badRequest)
        let madeUp = await Self.postJSON(
            issuer,
            "/oauth2/consent",
            #"{"consent_code": "nope", "accept": true}"#,
            cookie: cookie
        )
        #expect(madeUp.head.status == .badRequest)

        let accepted = await Self.postJSON(
            issuer,
            "/oauth2/consent",
            #"{"consent_code": "\#(code)", "accept": true}"#,
            cookie: cookie
        )
        #expect(accepted.head.status == .ok)
        let next = try #require(try Self.json(accepted)["redirect_uri"] as? String)
        let query = Flow.query(next)
        #expect(next.hasPrefix("https://app.test/callback?"))
        #expect(query["code"] != nil && query["state"] == "st-1" && query["iss"] == "https://idp.test")
        // The code is spent with its consent code: a second answer is refused.
        let again = await Self.postJSON(
            issuer,
            "/oauth2/consent",
            #"{"consent_code": "\#(code)", "accept": true}"#,
            cookie: cookie
        )
        #expect(again.head.status == .badRequest)

        // Consent is remembered: the next request with the same scopes goes straight to the code.
        let remembered = await Flow.get(
            issuer,
            Flow.authorizePath(scope: "openid profile"),
            browser: Flow.Browser(cookie: cookie)
        )
        #expect(remembered.head.headerFields[.location]?.hasPrefix("https://app.test/callback?code=") == true)

        // Declining sends the browser back with access_denied.
        let (second, secondCookie) = try await signIn2(issuer)
        let declined = await Self.postJSON(
            issuer,
            "/oauth2/consent",
            #"{"consent_code": "\#(second)", "accept": false}"#,
            cookie: secondCookie
        )
        let denied = Flow.query(try #require(try Self.json(declined)["redirect_uri"] as? String))
        #expect(denied["error"] == "access_denied")
    }

    /// A sign-in asking for a scope not yet consented to.
    func signIn2(_ issuer: OAuthIssuer) async throws -> (String, String) {
        let browser = Flow.Browser()
        let login = await Flow.get(issuer, Flow.authorizePath(scope: "openid @team/orders.read"), browser: browser)
        let signedIn = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(login, "request"))),
                ("csrf", try #require(Flow.hidden(login, "csrf"))), ("username", "ada"), ("password", Flow.password),
            ],
            browser: browser
        )
        let query = Flow.query(try #require(signedIn.head.headerFields[.location]))
        let cookie = try #require(signedIn.head.headerFields[.setCookie])
        return (try #require(query["consent_code"]), String(cookie.split(separator: ";")[0]))
    }
}
