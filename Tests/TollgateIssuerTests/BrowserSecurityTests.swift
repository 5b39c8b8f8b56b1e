import Foundation
import HTTPTypes
import Testing
import TollgateCore
import TollgateIssuer

/// The issuer's browser side tried as an attacker would (RFC 9700 §4.4, §4.11, OpenID Connect
/// Core §6, RP-Initiated Logout): forms bound to the browser that loaded them, consent to the
/// session, no sign-out by a cross-site link, no redirect to a URI anybody could register, and
/// the brute-force limits with the clock injected.
@Suite struct BrowserSecurityTests {
    typealias Flow = AuthorizationCodeFlowTests
    typealias Clock = DeviceFlowTests.Clock

    static func text(_ response: IssuerResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    // MARK: - Forms

    @Test func aSignInFormPostedFromAnotherBrowserIsRefused() async throws {
        let issuer = try await Flow.makeIssuer()
        let victim = Flow.Browser()
        // The attacker loads the form in their own browser and makes the victim's post it.
        let attacker = Flow.Browser()
        let page = await Flow.get(issuer, Flow.authorizePath(), browser: attacker)
        let forged = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(page, "request"))),
                ("csrf", try #require(Flow.hidden(page, "csrf"))), ("username", "ada"),
                ("password", Flow.password),
            ],
            browser: victim
        )
        #expect(forged.head.status == .forbidden)
        #expect(victim.cookies["tollgate_session"] == nil, "the victim's browser is not signed in")
    }

    @Test func theConsentFormIsAcceptedOnlyWithTheSessionThatSignedIn() async throws {
        let issuer = try await Flow.makeIssuer()
        let browser = Flow.Browser()
        let page = await Flow.get(issuer, Flow.authorizePath(), browser: browser)
        let consent = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(page, "request"))),
                ("csrf", try #require(Flow.hidden(page, "csrf"))), ("username", "ada"),
                ("password", Flow.password),
            ],
            browser: browser
        )
        // On https the pre-session cookie is a __Host- cookie: no sibling subdomain can set it.
        let preSession = try #require(browser.cookies["__Host-tollgate_browser"])
        #expect(
            page.head.headerFields[values: .setCookie].contains {
                $0.hasPrefix("__Host-tollgate_browser=") && $0.contains("Path=/;") && $0.contains("Secure")
            }
        )
        let withoutSession = Flow.Browser(cookie: "__Host-tollgate_browser=\(preSession)")
        let refused = await Flow.post(
            issuer,
            "/oauth2/authorize/consent",
            [
                ("request", try #require(Flow.hidden(consent, "request"))),
                ("csrf", try #require(Flow.hidden(consent, "csrf"))), ("decision", "allow"),
            ],
            browser: withoutSession
        )
        #expect(refused.head.status == .forbidden)
        #expect(refused.head.headerFields[.location] == nil)
    }

    // MARK: - Sign-out

    static func withBob(_ issuer: OAuthIssuer, store: MemoryIssuerStore) async throws {
        try await store.saveUser(
            IssuerUser(username: "bob", passwordHash: try PasswordHash.make(Flow.password, rounds: 1 << 10))
        )
    }

    @Test func endSessionSignsOutWithoutAskingOnlyForTheHintedUser() async throws {
        let store = MemoryIssuerStore()
        let issuer = try await Flow.makeIssuer(store: store)
        try await Self.withBob(issuer, store: store)
        let (query, browser) = try await Flow.signInAndConsent(issuer)
        let tokens = try Flow.json(try await Flow.exchange(issuer, code: try #require(query["code"])))
        let adaHint = try #require(tokens["id_token"]?.stringValue)
        // Bob's ID token, from another browser.
        let bobBrowser = Flow.Browser()
        let bobPage = await Flow.get(issuer, Flow.authorizePath(), browser: bobBrowser)
        let bobConsent = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(bobPage, "request"))),
                ("csrf", try #require(Flow.hidden(bobPage, "csrf"))), ("username", "bob"),
                ("password", Flow.password),
            ],
            browser: bobBrowser
        )
        let bobDone = await Flow.post(
            issuer,
            "/oauth2/authorize/consent",
            [
                ("request", try #require(Flow.hidden(bobConsent, "request"))),
                ("csrf", try #require(Flow.hidden(bobConsent, "csrf"))), ("decision", "allow"),
            ],
            browser: bobBrowser
        )
        let bobLocation = try #require(bobDone.head.headerFields[.location])
        let bobCode = try #require(Flow.query(bobLocation)["code"])
        let bobTokens = try Flow.json(try await Flow.exchange(issuer, code: bobCode))
        let bobHint = try #require(bobTokens["id_token"]?.stringValue)

        func stillSignedIn() async -> Bool {
            let again = await Flow.get(issuer, Flow.authorizePath(), browser: browser)
            return again.head.headerFields[.location]?.contains("code=") == true
        }
        // A bare link, and one with another person's hint: a confirmation page, still signed in.
        for path in [
            "/oauth2/end_session", "/oauth2/end_session?" + FormURLEncoding.encode([("id_token_hint", bobHint)]),
        ] {
            let asked = await Flow.get(issuer, path, browser: browser)
            #expect(asked.head.status == .ok)
            #expect(Self.text(asked).contains("Sign out?"))
            #expect(await stillSignedIn())
        }
        // client_id with a registered URI but no hint: no redirect at all.
        let open = await Flow.get(
            issuer,
            "/oauth2/end_session?"
                + FormURLEncoding.encode([
                    ("client_id", "@team/web"), ("post_logout_redirect_uri", "https://app.test/bye"),
                ]),
            browser: browser
        )
        #expect(open.head.headerFields[.location] == nil)
        #expect(await stillSignedIn())
        // The confirmation form, posted with the session, signs out; without it, nothing happens.
        let asked = await Flow.get(issuer, "/oauth2/end_session", browser: browser)
        let token = try #require(Flow.hidden(asked, "logout_csrf"))
        let forged = await Flow.post(
            issuer,
            "/oauth2/end_session",
            [("logout_csrf", "guess"), ("confirm", "yes")],
            browser: browser
        )
        #expect(Self.text(forged).contains("Sign out?"))
        #expect(await stillSignedIn())
        let confirmed = await Flow.post(
            issuer,
            "/oauth2/end_session",
            [("logout_csrf", token), ("confirm", "yes")],
            browser: browser
        )
        #expect(Self.text(confirmed).contains("You are signed out"))
        #expect(await stillSignedIn() == false)

        // Ada's own hint signs her out at once and returns to the registered URI.
        _ = try await Flow.signInAndConsent(issuer, browser: browser)
        let hinted = await Flow.get(
            issuer,
            "/oauth2/end_session?"
                + FormURLEncoding.encode([
                    ("id_token_hint", adaHint), ("post_logout_redirect_uri", "https://app.test/bye"),
                    ("state", "s1"),
                ]),
            browser: browser
        )
        #expect(hinted.head.headerFields[.location] == "https://app.test/bye?state=s1")
        #expect(await stillSignedIn() == false)
    }

    /// A client anybody could register gets no automatic post-logout redirect, even with an ID
    /// token of its own; and a JWT access token is not an ID token hint.
    @Test func endSessionDoesNotRedirectForADynamicClientNorTakeAnAccessTokenAsAHint() async throws {
        let issuer = try await RegistrationAndConsentTests.makeIssuer(registration: true)
        let registered = try RegistrationAndConsentTests.json(
            await Self.registered(
                issuer,
                """
                {"redirect_uris": ["https://evil.example/cb"], "post_logout_redirect_uris": ["https://evil.example/bye"],
                 "token_endpoint_auth_method": "none", "scope": "openid"}
                """
            )
        )
        let id = try #require(registered["client_id"] as? String)
        let path = Flow.authorizePath(client: id, redirect: "https://evil.example/cb", scope: "openid")
        let browser = Flow.Browser()
        let page = await Flow.get(issuer, path, browser: browser)
        let consent = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(page, "request"))),
                ("csrf", try #require(Flow.hidden(page, "csrf"))), ("username", "ada"),
                ("password", Flow.password),
            ],
            browser: browser
        )
        let done = await Flow.post(
            issuer,
            "/oauth2/authorize/consent",
            [
                ("request", try #require(Flow.hidden(consent, "request"))),
                ("csrf", try #require(Flow.hidden(consent, "csrf"))), ("decision", "allow"),
            ],
            browser: browser
        )
        let query = Flow.query(try #require(done.head.headerFields[.location]))
        let tokens = try Flow.json(
            await Flow.post(
                issuer,
                "/oauth2/token",
                [
                    ("grant_type", "authorization_code"), ("code", try #require(query["code"])),
                    ("redirect_uri", "https://evil.example/cb"), ("code_verifier", Flow.verifier), ("client_id", id),
                ]
            )
        )
        let hint = try #require(tokens["id_token"]?.stringValue)
        let response = await Flow.get(
            issuer,
            "/oauth2/end_session?"
                + FormURLEncoding.encode([
                    ("id_token_hint", hint), ("post_logout_redirect_uri", "https://evil.example/bye"),
                ])
        )
        #expect(response.head.headerFields[.location] == nil)

        let other = try await Flow.makeIssuer()
        let code = try #require(try await Flow.signInAndConsent(other).0["code"])
        let access = try #require(
            try Flow.json(try await Flow.exchange(other, code: code))["access_token"]?.stringValue
        )
        let asHint = await Flow.get(
            other,
            "/oauth2/end_session?"
                + FormURLEncoding.encode([
                    ("id_token_hint", access), ("post_logout_redirect_uri", "https://app.test/bye"),
                ])
        )
        #expect(asHint.head.status == .badRequest)
        #expect(asHint.head.headerFields[.location] == nil)
    }

    // MARK: - Redirects

    static func registered(_ issuer: OAuthIssuer, _ body: String) async -> IssuerResponse {
        await RegistrationAndConsentTests.postJSON(issuer, "/oauth2/register", body)
    }

    @Test func errorsForADynamicallyRegisteredClientAreShownNeverRedirected() async throws {
        let issuer = try await RegistrationAndConsentTests.makeIssuer(registration: true)
        let answer = try RegistrationAndConsentTests.json(
            await Self.registered(
                issuer,
                #"{"redirect_uris": ["https://evil.example/cb"], "token_endpoint_auth_method": "none"}"#
            )
        )
        let id = try #require(answer["client_id"] as? String)
        for extra in [
            [("response_type", "token")], [("scope", "no-such-scope")], [("code_challenge_method", "plain")],
        ] {
            var pairs = [
                ("client_id", id), ("redirect_uri", "https://evil.example/cb"), ("state", "x"),
                ("code_challenge", Flow.challenge),
            ]
            if !extra.contains(where: { $0.0 == "response_type" }) { pairs.append(("response_type", "code")) }
            let response = await Flow.get(issuer, "/oauth2/authorize?" + FormURLEncoding.encode(pairs + extra))
            #expect(response.head.status == .badRequest, "\(extra)")
            #expect(response.head.headerFields[.location] == nil, "\(extra)")
        }
        // A configured client still gets its errors at its redirect URI (RFC 6749 §4.1.2.1).
        let configured = await Flow.get(
            issuer,
            Flow.authorizePath(extra: [("code_challenge", Flow.challenge), ("code_challenge_method", "plain")])
        )
        #expect(configured.head.headerFields[.location]?.hasPrefix("https://app.test/callback?error=") == true)
    }

    @Test(arguments: [
        #"{"redirect_uris": ["http://127.0.0.1:1@evil.example/cb"]}"#,
        #"{"redirect_uris": ["https://app.example@evil.example/cb"]}"#,
        #"{"redirect_uris": ["http://localhost:80x/cb"]}"#,
        #"{"redirect_uris": ["https://app.example/cb"], "client_name": "\#(String(repeating: "n", count: 60_000))"}"#,
        #"{"redirect_uris": [\#((0..<11).map { "\"https://a.example/\($0)\"" }.joined(separator: ","))]}"#,
    ])
    func registrationRefusesUserInfoAndOversizedMetadata(_ body: String) async throws {
        let issuer = try await RegistrationAndConsentTests.makeIssuer(registration: true)
        let answer = await Self.registered(issuer, body)
        #expect(answer.head.status == .badRequest)
        let error = try RegistrationAndConsentTests.json(answer)["error"] as? String
        #expect(error == "invalid_redirect_uri" || error == "invalid_client_metadata")
    }

    @Test func requestObjectsAreRefusedWithTheirOIDCErrorsAndDiscoverySaysSo() async throws {
        let issuer = try await Flow.makeIssuer()
        let discovery = try Flow.json(await Flow.get(issuer, "/.well-known/openid-configuration"))
        #expect(discovery["request_parameter_supported"] == .bool(false))
        #expect(discovery["request_uri_parameter_supported"] == .bool(false))
        for (name, error) in [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")] {
            let response = await Flow.get(
                issuer,
                Flow.authorizePath(extra: [
                    ("code_challenge", Flow.challenge), ("code_challenge_method", "S256"), (name, "eyJ.e30."),
                ])
            )
            #expect(Flow.query(try #require(response.head.headerFields[.location]))["error"] == error)
        }
    }

    @Test func formPostAnswersWithAnEscapedSelfSubmittingFormAndOtherModesAreRefused() async throws {
        let issuer = try await Flow.makeIssuer()
        let path =
            "/oauth2/authorize?"
            + FormURLEncoding.encode([
                ("response_type", "code"), ("client_id", "@team/web"), ("redirect_uri", "https://app.test/callback"),
                ("scope", "openid"), ("state", "\"><script>alert(1)</script>"), ("response_mode", "form_post"),
                ("code_challenge", Flow.challenge), ("code_challenge_method", "S256"),
            ])
        let browser = Flow.Browser()
        let page = await Flow.get(issuer, path, browser: browser)
        let consent = await Flow.post(
            issuer,
            "/oauth2/authorize/login",
            [
                ("request", try #require(Flow.hidden(page, "request"))),
                ("csrf", try #require(Flow.hidden(page, "csrf"))), ("username", "ada"),
                ("password", Flow.password),
            ],
            browser: browser
        )
        let posted = await Flow.post(
            issuer,
            "/oauth2/authorize/consent",
            [
                ("request", try #require(Flow.hidden(consent, "request"))),
                ("csrf", try #require(Flow.hidden(consent, "csrf"))), ("decision", "allow"),
            ],
            browser: browser
        )
        #expect(posted.head.status == .ok)
        #expect(posted.head.headerFields[.location] == nil)
        let html = Self.text(posted)
        #expect(html.contains(#"<form method="post" action="https://app.test/callback">"#))
        #expect(Flow.hidden(posted, "code") != nil)
        #expect(Flow.hidden(posted, "iss") == "https://idp.test")
        #expect(html.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.contains("<script>alert"))
        let policy = try #require(posted.head.headerFields[.contentSecurityPolicy])
        let scripts = try #require(policy.split(separator: ";").first { $0.contains("script-src") })
        #expect(scripts.contains("'sha256-") && !scripts.contains("unsafe-inline"), "only the one script runs")

        let fragment = await Flow.get(
            issuer,
            Flow.authorizePath(extra: [
                ("code_challenge", Flow.challenge), ("code_challenge_method", "S256"), ("response_mode", "fragment"),
            ])
        )
        #expect(Flow.query(try #require(fragment.head.headerFields[.location]))["error"] == "invalid_request")
    }

    // MARK: - Brute force, with the clock injected

    static func signIn(
        _ issuer: OAuthIssuer,
        password: String,
        username: String = "ada",
        address: String = "192.0.2.1"
    ) async throws -> IssuerResponse {
        let browser = Flow.Browser()
        var page = HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: Flow.authorizePath())
        page.headerFields[.accept] = "text/html"
        let form = await issuer.handle(page, body: [], clientAddress: address)
        browser.absorb(form)
        var post = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: "/oauth2/authorize/login")
        post.headerFields[.contentType] = "application/x-www-form-urlencoded"
        post.headerFields[.cookie] = browser.cookie
        let fields = [
            ("request", try #require(Flow.hidden(form, "request"))), ("csrf", try #require(Flow.hidden(form, "csrf"))),
            ("username", username), ("password", password),
        ]
        return await issuer.handle(post, body: Array(FormURLEncoding.encode(fields).utf8), clientAddress: address)
    }

    @Test func failedSignInsOfAnAccountWaitLongerAndLongerThenSucceed() async throws {
        let clock = Clock()
        let issuer = try await Flow.makeIssuer(clock: clock)
        for attempt in 1...5 {
            let response = try await Self.signIn(issuer, password: "wrong", address: "192.0.2.\(attempt)")
            #expect(response.head.status == .unauthorized, "attempt \(attempt)")
        }
        // The sixth try, from yet another address, with the right password: it must wait.
        let blocked = try await Self.signIn(issuer, password: Flow.password, address: "192.0.2.6")
        #expect(blocked.head.status == .tooManyRequests)
        #expect(blocked.head.headerFields[.retryAfter] == "2")
        clock.advance(2)
        #expect(try await Self.signIn(issuer, password: "wrong").head.status == .unauthorized)
        let longer = try await Self.signIn(issuer, password: Flow.password)
        #expect(longer.head.headerFields[.retryAfter] == "4", "the wait doubles")
        clock.advance(4)
        let allowed = try await Self.signIn(issuer, password: Flow.password)
        #expect(allowed.head.status != .tooManyRequests && allowed.head.status != .unauthorized)
        // Success clears the account's count.
        #expect(try await Self.signIn(issuer, password: "wrong").head.status == .unauthorized)
        // Another account from other addresses is not affected.
        #expect(
            try await Self.signIn(issuer, password: "x", username: "nobody", address: "198.51.100.1").head.status
                == .unauthorized
        )
    }

    /// Attempts are counted before they are checked: a burst of twenty concurrent guesses at
    /// one account gets at most the five tries the limit allows, the rest 429.
    @Test func aBurstOfConcurrentGuessesGetsNoMoreTriesThanTheLimit() async throws {
        let clock = Clock()
        let issuer = try await Flow.makeIssuer(clock: clock)
        let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
            for index in 0..<20 {
                group.addTask {
                    try await Self.signIn(issuer, password: "guess \(index)", address: "192.0.2.\(index)").head.status
                }
            }
            var all: [HTTPResponse.Status] = []
            for try await status in group { all.append(status) }
            return all
        }
        #expect(statuses.filter { $0 == .unauthorized }.count <= 5)
        #expect(statuses.filter { $0 == .tooManyRequests }.count >= 15)
    }

    @Test func failedSignInsFromOneAddressAcrossAccountsWaitToo() async throws {
        let clock = Clock()
        let issuer = try await Flow.makeIssuer(clock: clock) { $0.limits.addressFailures = 3 }
        for index in 0..<3 {
            let response = try await Self.signIn(issuer, password: "x", username: "user\(index)")
            #expect(response.head.status == .unauthorized)
        }
        let blocked = try await Self.signIn(issuer, password: Flow.password)
        #expect(blocked.head.status == .tooManyRequests)
        let elsewhere = try await Self.signIn(issuer, password: Flow.password, address: "203.0.113.9")
        #expect(elsewhere.head.status != .tooManyRequests)
    }

    @Test func wrongDeviceUserCodesAreBoundedPerAddressAndInAll() async throws {
        let clock = Clock()
        let issuer = try await DeviceFlowTests.makeIssuer(clock: clock)
        func enter(_ code: String, address: String) async throws -> IssuerResponse {
            let browser = Flow.Browser()
            let page = await issuer.handle(
                HTTPRequest(method: .get, scheme: "https", authority: "idp.test", path: "/oauth2/device"),
                body: [],
                clientAddress: address
            )
            browser.absorb(page)
            var post = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: "/oauth2/device")
            post.headerFields[.contentType] = "application/x-www-form-urlencoded"
            post.headerFields[.cookie] = browser.cookie
            let fields = [
                ("csrf", try #require(Flow.hidden(page, "csrf"))), ("user_code", code), ("username", "ada"),
                ("password", Flow.password),
            ]
            return await issuer.handle(post, body: Array(FormURLEncoding.encode(fields).utf8), clientAddress: address)
        }
        let started = try await DeviceFlowTests.start(issuer)
        let userCode = try #require(started["user_code"] as? String)
        for attempt in 1...10 {
            #expect(
                try await enter(
                    "BBBB-BBB\(["B", "C", "D", "F", "G", "H", "J", "K", "L", "M"][attempt - 1])",
                    address: "192.0.2.1"
                ).head.status == .badRequest
            )
        }
        let blocked = try await enter(userCode, address: "192.0.2.1")
        #expect(blocked.head.status == .tooManyRequests)
        #expect(blocked.head.headerFields[.retryAfter] == "600")
        #expect(try await enter(userCode, address: "192.0.2.2").head.status == .ok, "another address may go on")
        clock.advance(601)
        #expect(try await enter("BBBB-BBBB", address: "192.0.2.1").head.status == .badRequest, "the window passed")
    }

    @Test func registrationsPerAddressAreLimited() async throws {
        let issuer = try await RegistrationAndConsentTests.makeIssuer(registration: true, registrationsPerHour: 2)
        func register(_ address: String) async -> HTTPResponse.Status {
            var request = HTTPRequest(method: .post, scheme: "https", authority: "idp.test", path: "/oauth2/register")
            request.headerFields[.contentType] = "application/json"
            let body = #"{"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none"}"#
            return await issuer.handle(request, body: Array(body.utf8), clientAddress: address).head.status
        }
        #expect(await register("192.0.2.1") == .created)
        #expect(await register("192.0.2.1") == .created)
        #expect(await register("192.0.2.1") == .tooManyRequests)
        #expect(await register("192.0.2.2") == .created)
    }

    @Test func theDummyHashHasTheCostItIsAskedFor() throws {
        let parameters = try #require(PasswordHash.parameters(of: try PasswordHash.make("pw", rounds: 1 << 10)))
        #expect(parameters == "scrypt$1024$8$1")
        let dummy = try PasswordHash.dummy(parameters: parameters)
        #expect(PasswordHash.parameters(of: dummy) == parameters)
        #expect(!PasswordHash.verify("pw", against: dummy))
    }
}
