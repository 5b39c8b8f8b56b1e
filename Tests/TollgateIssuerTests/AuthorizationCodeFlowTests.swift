import Crypto
import Foundation
import HTTPTypes
import Synchronization
import Testing
import TollgateCore
import TollgateIssuer

/// The authorization code flow with PKCE as a browser and a client drive it: the login and
/// consent forms, the code, its exchange, ID token, userinfo and refresh rotation.
@Suite struct AuthorizationCodeFlowTests {
    static let webSecret = "web-secret-0123456789abcdef0123456789"
    static let password = "correct horse battery staple"
    static let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    /// RFC 7636 Appendix B.
    static let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    /// A browser's cookie jar: every answer it is given sets or clears its cookies.
    final class Browser: @unchecked Sendable {
        private(set) var cookies: [String: String] = [:]

        init() {}

        /// A jar holding one cookie, `name=value`.
        convenience init(cookie: String) {
            self.init()
            set(cookie)
        }

        var cookie: String? {
            cookies.isEmpty
                ? nil : cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        }

        private func set(_ pair: some StringProtocol) {
            guard let equals = pair.firstIndex(of: "=") else { return }
            let name = String(pair[..<equals])
            let value = String(pair[pair.index(after: equals)...])
            if value.isEmpty { cookies.removeValue(forKey: name) } else { cookies[name] = value }
        }

        func absorb(_ response: IssuerResponse) {
            for field in response.head.headerFields[values: .setCookie] {
                set(field.split(separator: ";")[0])
            }
        }
    }

    static func makeIssuer(
        reuseInterval: Int = 0,
        store: any IssuerStore = MemoryIssuerStore(),
        clock: DeviceFlowTests.Clock? = nil,
        algorithm: SigningKey.Algorithm = .rs256,
        configure: (inout IssuerOptions) -> Void = { _ in }
    ) async throws -> OAuthIssuer {
        var options = IssuerOptions(issuer: "https://idp.test")
        options.apis = [
            APIDefinition(audience: "@team/orders", scopes: ["@team/orders.read"]),
            APIDefinition(audience: "@team/billing", scopes: ["@team/billing.read"]),
        ]
        options.refreshTokenReuseInterval = reuseInterval
        configure(&options)
        try await store.saveClient(
            RegisteredClient(
                id: "@team/web",
                kind: .web,
                secret: .hashing(webSecret),
                redirectURIs: ["https://app.test/callback"],
                postLogoutRedirectURIs: ["https://app.test/bye"],
                scopes: ["openid", "profile", "email", "offline_access", "@team/orders.read"]
            )
        )
        try await store.saveClient(
            RegisteredClient(
                id: "@team/spa",
                kind: .spa,
                redirectURIs: ["https://spa.test/cb"],
                scopes: ["openid", "offline_access"],
                skipConsent: true
            )
        )
        try await store.saveUser(
            IssuerUser(
                username: "ada",
                passwordHash: try PasswordHash.make(password, rounds: 1 << 10),
                claims: ["name": .string("Ada Lovelace"), "email": .string("ada@example.test")]
            )
        )
        // One key per algorithm for every test issuer: generating an RSA key per test kept the
        // suite's shared threads busy long enough to starve network tests running beside it.
        if try await store.signingKeys().isEmpty { try await store.saveSigningKey(try Self.sharedKey(algorithm)) }
        if let clock {
            let keys = try await KeyRing.load(from: store, algorithm: algorithm, now: clock.now)
            return OAuthIssuer(options: options, store: store, keys: keys, now: { clock.now })
        }
        return try await OAuthIssuer.start(options: options, store: store, algorithm: algorithm)
    }

    static let sharedKeys = Mutex<[SigningKey.Algorithm: StoredSigningKey]>([:])

    /// An active key of `algorithm`, made once per test run.
    static func sharedKey(_ algorithm: SigningKey.Algorithm) throws -> StoredSigningKey {
        if let key = sharedKeys.withLock({ $0[algorithm] }) { return key }
        let key = try SigningKey.generate(algorithm)
        let record = StoredSigningKey(
            keyID: key.keyID,
            algorithm: algorithm.rawValue,
            privateKeyDER: key.privateKeyDER,
            stage: .active,
            createdAt: 1
        )
        return sharedKeys.withLock { keys in
            if let existing = keys[algorithm] { return existing }
            keys[algorithm] = record
            return record
        }
    }

    static func get(_ issuer: OAuthIssuer, _ path: String, browser: Browser = Browser()) async -> IssuerResponse {
        var request = HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: path)
        if let cookie = browser.cookie { request.headerFields[.cookie] = cookie }
        let response = await issuer.handle(request, body: [])
        browser.absorb(response)
        return response
    }

    static func post(
        _ issuer: OAuthIssuer,
        _ path: String,
        _ pairs: [(String, String)],
        browser: Browser = Browser(),
        authorization: String? = nil
    ) async -> IssuerResponse {
        var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: path)
        request.headerFields[.contentType] = "application/x-www-form-urlencoded"
        if let cookie = browser.cookie { request.headerFields[.cookie] = cookie }
        if let authorization { request.headerFields[.authorization] = authorization }
        let response = await issuer.handle(request, body: Array(FormURLEncoding.encode(pairs).utf8))
        browser.absorb(response)
        return response
    }

    static func hidden(_ response: IssuerResponse, _ name: String) -> String? {
        let html = String(decoding: response.body, as: UTF8.self)
        guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        let rest = html[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    static func query(_ location: String) -> [String: String] {
        guard let question = location.firstIndex(of: "?") else { return [:] }
        let pairs = FormURLEncoding.decode(Array(location[location.index(after: question)...].utf8)) ?? []
        return Dictionary(pairs, uniquingKeysWith: { first, _ in first })
    }

    static func authorizePath(
        client: String = "@team/web",
        redirect: String = "https://app.test/callback",
        scope: String = "openid profile email offline_access @team/orders.read",
        extra: [(String, String)] = [("code_challenge", challenge), ("code_challenge_method", "S256")]
    ) -> String {
        "/oauth2/authorize?"
            + FormURLEncoding.encode(
                [
                    ("response_type", "code"), ("client_id", client), ("redirect_uri", redirect), ("scope", scope),
                    ("state", "st-1"), ("nonce", "n-0S6_WzA2Mj"),
                ] + extra
            )
    }

    /// Logs in and consents; returns the redirect's query and the browser with its session.
    static func signInAndConsent(
        _ issuer: OAuthIssuer,
        path: String = authorizePath(),
        browser: Browser = Browser()
    ) async throws
        -> ([String: String], Browser)
    {
        let loginPage = await get(issuer, path, browser: browser)
        #expect(loginPage.head.status == .ok, "\(loginPage.head.headerFields[.location] ?? "")")
        #expect(loginPage.head.headerFields[.contentType] == "text/html; charset=utf-8")
        let request = try #require(hidden(loginPage, "request"))
        let csrf = try #require(hidden(loginPage, "csrf"))
        let consentPage = await post(
            issuer,
            "/oauth2/authorize/login",
            [("request", request), ("csrf", csrf), ("username", "ada"), ("password", password)],
            browser: browser
        )
        let cookie = try #require(
            consentPage.head.headerFields[values: .setCookie].first { $0.hasPrefix("tollgate_session=") }
        )
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"))
        var location = consentPage.head.headerFields[.location]
        if location == nil {
            #expect(String(decoding: consentPage.body, as: UTF8.self).contains("@team/orders.read"))
            let allowed = await post(
                issuer,
                "/oauth2/authorize/consent",
                [
                    ("request", try #require(hidden(consentPage, "request"))),
                    ("csrf", try #require(hidden(consentPage, "csrf"))), ("decision", "allow"),
                ],
                browser: browser
            )
            #expect(allowed.head.status == .found)
            location = allowed.head.headerFields[.location]
        }
        let redirect = try #require(location)
        #expect(redirect.hasPrefix("https://app.test/callback?") || redirect.hasPrefix("https://spa.test/cb?"))
        return (query(redirect), browser)
    }

    static var webBasic: String { FormURLEncoding.basicAuthorization(clientID: "@team/web", clientSecret: webSecret) }

    static func exchange(
        _ issuer: OAuthIssuer,
        code: String,
        verifier: String = verifier
    ) async throws -> IssuerResponse {
        await post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", "https://app.test/callback"),
                ("code_verifier", verifier),
            ],
            authorization: webBasic
        )
    }

    static func json(_ response: IssuerResponse) throws -> JSONValue { try JSONParser.parse(response.body) }

    static func claims(ofJWT token: String) throws -> JSONValue {
        let parts = token.split(separator: ".")
        return try JSONParser.parse(try #require(Base64URL.decode(String(parts[1]))))
    }

    @Test func theFullFlowIssuesAnIDTokenWithNonceAtHashAndAuthTimeAndUserinfoAnswers() async throws {
        let issuer = try await Self.makeIssuer()
        let (callback, browser) = try await Self.signInAndConsent(issuer)
        #expect(callback["state"] == "st-1")
        #expect(callback["iss"] == "https://idp.test", "RFC 9207")
        let code = try #require(callback["code"])
        let tokens = try Self.json(try await Self.exchange(issuer, code: code))
        let accessToken = try #require(tokens["access_token"]?.stringValue)
        let idToken = try #require(tokens["id_token"]?.stringValue)
        #expect(tokens["refresh_token"]?.stringValue != nil)
        let claims = try Self.claims(ofJWT: idToken)
        #expect(claims["iss"]?.stringValue == "https://idp.test")
        #expect(claims["aud"]?.stringValue == "@team/web")
        #expect(claims["azp"]?.stringValue == "@team/web")
        #expect(claims["sub"]?.stringValue == "ada")
        #expect(claims["nonce"]?.stringValue == "n-0S6_WzA2Mj")
        #expect(claims["auth_time"]?.numberValue != nil)
        #expect(claims["email"]?.stringValue == "ada@example.test")
        let hash = Array(SHA256.hash(data: Array(accessToken.utf8)))
        #expect(claims["at_hash"]?.stringValue == Base64URL.encode(hash.prefix(16)))
        // The ID token verifies with the published keys.
        let verifier = TokenVerifier(
            issuers: [
                IssuerVerifier(
                    policy: IssuerPolicy(name: "idp", issuer: "https://idp.test", audiences: ["@team/web"]),
                    keys: JWKSCache(
                        issuerName: "idp",
                        source: .fixed(JSONWebKeySetBox(issuer.keys.snapshot.keySet)),
                        client: nil
                    )
                )
            ]
        )
        #expect((try? await verifier.verify(idToken).get()) != nil)
        // The access token is a JWT for the API named by its scope.
        #expect(try Self.claims(ofJWT: accessToken)["aud"]?.stringValue == "@team/orders")
        var userinfo = HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: "/oauth2/userinfo")
        userinfo.headerFields[.authorization] = "Bearer \(accessToken)"
        let profile = try Self.json(await issuer.handle(userinfo, body: []))
        #expect(profile["sub"]?.stringValue == "ada")
        #expect(profile["name"]?.stringValue == "Ada Lovelace")
        // The session is remembered: the next authorization needs no login and no consent.
        let again = await Self.get(issuer, Self.authorizePath(), browser: browser)
        #expect(again.head.status == .found)
        #expect(Self.query(try #require(again.head.headerFields[.location]))["code"] != nil)
    }

    @Test func aReplayedCodeIsRefusedAndRevokesWhatItIssued() async throws {
        let issuer = try await Self.makeIssuer()
        let code = try #require(try await Self.signInAndConsent(issuer).0["code"])
        let first = try Self.json(try await Self.exchange(issuer, code: code))
        let accessToken = try #require(first["access_token"]?.stringValue)
        let replay = try await Self.exchange(issuer, code: code)
        #expect(replay.head.status == .badRequest)
        #expect(try Self.json(replay)["error"]?.stringValue == "invalid_grant")
        let introspection = try Self.json(
            await Self.post(issuer, "/oauth2/introspect", [("token", accessToken)], authorization: Self.webBasic)
        )
        #expect(introspection["active"] == .bool(false))
        let refreshed = await Self.post(
            issuer,
            "/oauth2/token",
            [("grant_type", "refresh_token"), ("refresh_token", try #require(first["refresh_token"]?.stringValue))],
            authorization: Self.webBasic
        )
        #expect(try Self.json(refreshed)["error"]?.stringValue == "invalid_grant")
    }

    @Test func aWrongCodeVerifierIsInvalidGrant() async throws {
        let issuer = try await Self.makeIssuer()
        let code = try #require(try await Self.signInAndConsent(issuer).0["code"])
        let response = try await Self.exchange(issuer, code: code, verifier: String(repeating: "a", count: 43))
        #expect(try Self.json(response)["error"]?.stringValue == "invalid_grant")
        // Nor does another client, or another redirect URI: the code is checked before it is
        // spent, so whoever stole it cannot burn it for its owner.
        let wrongRedirect = await Self.post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", "https://app.test/other"),
                ("code_verifier", Self.verifier),
            ],
            authorization: Self.webBasic
        )
        #expect(try Self.json(wrongRedirect)["error"]?.stringValue == "invalid_grant")
        let owner = try await Self.exchange(issuer, code: code)
        #expect(owner.head.status == .ok)
    }

    @Test func plainPKCEAndMissingPKCEForAPublicClientAreRefusedToTheRedirectURI() async throws {
        let issuer = try await Self.makeIssuer()
        let plain = await Self.get(
            issuer,
            Self.authorizePath(extra: [("code_challenge", Self.verifier), ("code_challenge_method", "plain")])
        )
        #expect(Self.query(try #require(plain.head.headerFields[.location]))["error"] == "invalid_request")
        let missing = await Self.get(
            issuer,
            Self.authorizePath(client: "@team/spa", redirect: "https://spa.test/cb", scope: "openid", extra: [])
        )
        let query = Self.query(try #require(missing.head.headerFields[.location]))
        #expect(query["error"] == "invalid_request")
        #expect(query["state"] == "st-1")
        #expect(query["iss"] == "https://idp.test")
    }

    @Test func anUnregisteredRedirectURIGetsAnErrorPageNeverARedirect() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.get(issuer, Self.authorizePath(redirect: "https://evil.test/cb"))
        #expect(response.head.status == .badRequest)
        #expect(response.head.headerFields[.location] == nil)
        let unknownClient = await Self.get(issuer, Self.authorizePath(client: "@team/nobody"))
        #expect(unknownClient.head.headerFields[.location] == nil)
    }

    @Test func promptNoneWithoutASessionIsLoginRequired() async throws {
        let issuer = try await Self.makeIssuer()
        let response = await Self.get(
            issuer,
            Self.authorizePath(extra: [
                ("code_challenge", Self.challenge), ("code_challenge_method", "S256"), ("prompt", "none"),
            ])
        )
        #expect(Self.query(try #require(response.head.headerFields[.location]))["error"] == "login_required")
    }

    @Test func aFormPostWithoutItsCSRFTokenIsRefused() async throws {
        let issuer = try await Self.makeIssuer()
        let page = await Self.get(issuer, Self.authorizePath())
        let request = try #require(Self.hidden(page, "request"))
        let forged = await Self.post(
            issuer,
            "/oauth2/authorize/login",
            [("request", request), ("csrf", "guessed"), ("username", "ada"), ("password", Self.password)]
        )
        #expect(forged.head.status == .forbidden)
        #expect(forged.head.headerFields[.setCookie] == nil)
    }

    @Test func aWrongPasswordShowsTheFormAgain() async throws {
        let issuer = try await Self.makeIssuer()
        let browser = Browser()
        let page = await Self.get(issuer, Self.authorizePath(), browser: browser)
        let response = await Self.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Self.hidden(page, "request"))),
                ("csrf", try #require(Self.hidden(page, "csrf"))),
                ("username", "ada"), ("password", "wrong"),
            ],
            browser: browser
        )
        #expect(response.head.status == .unauthorized)
        #expect(response.head.headerFields[.setCookie] == nil)
        #expect(String(decoding: response.body, as: UTF8.self).contains("not right"))
    }

    @Test func withAReuseIntervalARetryGetsTheSameAnswerAndLaterReuseRevokesTheGrant() async throws {
        let issuer = try await Self.makeIssuer(reuseInterval: 30)
        let code = try #require(try await Self.signInAndConsent(issuer).0["code"])
        let first = try Self.json(try await Self.exchange(issuer, code: code))
        let original = try #require(first["refresh_token"]?.stringValue)
        func refresh(_ token: String) async throws -> JSONValue {
            try Self.json(
                await Self.post(
                    issuer,
                    "/oauth2/token",
                    [("grant_type", "refresh_token"), ("refresh_token", token)],
                    authorization: Self.webBasic
                )
            )
        }
        let second = try await refresh(original)
        let successor = try #require(second["refresh_token"]?.stringValue)
        #expect(successor != original)
        // A retry of the spent token within the reuse interval gets the same answer.
        let retry = try await refresh(original)
        #expect(retry["refresh_token"]?.stringValue == successor)
        #expect(retry["access_token"] == second["access_token"])
        let third = try await refresh(successor)
        let newest = try #require(third["refresh_token"]?.stringValue)
        // The first token again, now two generations old: the family is revoked.
        #expect(try await refresh(original)["error"]?.stringValue == "invalid_grant")
        #expect(try await refresh(newest)["error"]?.stringValue == "invalid_grant")
    }

    @Test func fiftyConcurrentRefreshesOfOneTokenLeaveExactlyOneSuccessor() async throws {
        let issuer = try await Self.makeIssuer(reuseInterval: 30)
        let code = try #require(try await Self.signInAndConsent(issuer).0["code"])
        let original = try #require(
            try Self.json(try await Self.exchange(issuer, code: code))["refresh_token"]?.stringValue
        )
        let answers = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    let response = await Self.post(
                        issuer,
                        "/oauth2/token",
                        [("grant_type", "refresh_token"), ("refresh_token", original)],
                        authorization: Self.webBasic
                    )
                    return try? Self.json(response)["refresh_token"]?.stringValue
                }
            }
            var all: [String?] = []
            for await answer in group { all.append(answer) }
            return all
        }
        // Every caller is the same client within the reuse interval: all get the one successor.
        let successors = Set(answers.compactMap { $0 })
        #expect(successors.count == 1)
        #expect(answers.allSatisfy { $0 != nil })
    }

    @Test func endSessionSignsOutAndReturnsToARegisteredAddressWithTheState() async throws {
        let issuer = try await Self.makeIssuer()
        let (callback, browser) = try await Self.signInAndConsent(issuer)
        let tokens = try Self.json(try await Self.exchange(issuer, code: try #require(callback["code"])))
        let idToken = try #require(tokens["id_token"]?.stringValue)
        let discovery = try Self.json(await Self.get(issuer, "/.well-known/openid-configuration"))
        #expect(discovery["end_session_endpoint"]?.stringValue == "https://idp.test/oauth2/end_session")
        let unregistered = await Self.get(
            issuer,
            "/oauth2/end_session?"
                + FormURLEncoding.encode([
                    ("id_token_hint", idToken), ("post_logout_redirect_uri", "https://evil.test/"),
                ]),
            browser: browser
        )
        #expect(unregistered.head.status == .badRequest)
        #expect(unregistered.head.headerFields[.location] == nil)
        let forged = await Self.get(
            issuer,
            "/oauth2/end_session?" + FormURLEncoding.encode([("id_token_hint", idToken.dropLast(4) + "AAAA")]),
            browser: browser
        )
        #expect(forged.head.status == .badRequest)
        let out = await Self.get(
            issuer,
            "/oauth2/end_session?"
                + FormURLEncoding.encode([
                    ("id_token_hint", idToken), ("client_id", "@team/web"),
                    ("post_logout_redirect_uri", "https://app.test/bye"), ("state", "bye-1"),
                ]),
            browser: browser
        )
        #expect(out.head.status == .found)
        #expect(out.head.headerFields[.location] == "https://app.test/bye?state=bye-1")
        #expect(out.head.headerFields[.setCookie]?.contains("Max-Age=0") == true)
        // The session is gone: the next authorization asks for a sign-in again.
        let again = await Self.get(issuer, Self.authorizePath(), browser: browser)
        #expect(again.head.status == .ok)
        #expect(Self.hidden(again, "csrf") != nil)
    }

    /// Discovery lists each scope once and says what MCP clients look for: PKCE with S256 only,
    /// and the `iss` authorization response parameter (RFC 9207).
    @Test func discoveryListsEachScopeOnceAndWhatMCPClientsCheck() async throws {
        let issuer = try await Self.makeIssuer { options in
            options.apis.append(APIDefinition(audience: "@team/reports", scopes: ["@team/orders.read", "openid"]))
        }
        for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
            let discovery = try Self.json(await Self.get(issuer, path))
            let scopes = try #require(discovery["scopes_supported"]?.arrayValue).compactMap(\.stringValue)
            #expect(
                scopes == ["openid", "profile", "email", "offline_access", "@team/orders.read", "@team/billing.read"]
            )
            #expect(discovery["code_challenge_methods_supported"] == .array([.string("S256")]))
            #expect(discovery["authorization_response_iss_parameter_supported"] == .bool(true))
        }
    }
}
