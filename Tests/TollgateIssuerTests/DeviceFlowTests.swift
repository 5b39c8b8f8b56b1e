import Foundation
import HTTPTypes
import Synchronization
import Testing
import TollgateCore
import TollgateIssuer

/// RFC 8628 as a device and a person drive it: the device authorization request, the
/// verification page with sign-in and confirmation, and the polls (`authorization_pending`,
/// `slow_down`, the tokens once, then `invalid_grant`).
@Suite struct DeviceFlowTests {
    typealias Flow = AuthorizationCodeFlowTests

    final class Clock: Sendable {
        let seconds = Mutex(1_800_000_000)
        func advance(_ by: Int) { seconds.withLock { $0 += by } }
        var now: Int { seconds.withLock { $0 } }
    }

    static func makeIssuer(clock: Clock, deviceGrant: Bool = true) async throws -> OAuthIssuer {
        var options = IssuerOptions(issuer: "https://idp.test")
        options.apis = [APIDefinition(audience: "@team/orders", scopes: ["@team/orders.read"])]
        if deviceGrant { options.grantTypes.insert(.deviceCode) }
        let store = MemoryIssuerStore()
        try await store.saveClient(
            RegisteredClient(
                id: "@team/tv",
                kind: .device,
                scopes: ["openid", "profile", "offline_access", "@team/orders.read"],
                skipConsent: true
            )
        )
        try await store.saveClient(
            RegisteredClient(id: "@team/other-tv", kind: .device, scopes: ["openid"])
        )
        try await store.saveUser(
            IssuerUser(
                username: "ada",
                passwordHash: try PasswordHash.make(Flow.password, rounds: 1 << 10),
                claims: ["name": .string("Ada Lovelace")]
            )
        )
        let keys = try await KeyRing.load(from: store, algorithm: .es256, now: clock.now)
        return OAuthIssuer(options: options, store: store, keys: keys, now: { clock.now })
    }

    static func json(_ response: IssuerResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    static func start(
        _ issuer: OAuthIssuer,
        scope: String = "openid offline_access @team/orders.read"
    ) async throws
        -> [String: Any]
    {
        let answer = await Flow.post(
            issuer,
            "/oauth2/device_authorization",
            [("client_id", "@team/tv"), ("scope", scope)]
        )
        #expect(answer.head.status == .ok)
        #expect(answer.head.headerFields[.cacheControl] == "no-store")
        return try json(answer)
    }

    static func poll(_ issuer: OAuthIssuer, _ deviceCode: String, client: String = "@team/tv") async -> IssuerResponse {
        await Flow.post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode),
                ("client_id", client),
            ]
        )
    }

    static func error(_ response: IssuerResponse) throws -> String? {
        try json(response)["error"] as? String
    }

    /// Opens the verification page, enters `userCode` with the credentials, and answers the
    /// confirmation with `decision`.
    static func confirm(
        _ issuer: OAuthIssuer,
        userCode: String,
        decision: String = "allow",
        pagePath: String = "/oauth2/device"
    ) async throws -> IssuerResponse {
        let browser = Flow.Browser()
        let page = await Flow.get(issuer, pagePath, browser: browser)
        #expect(page.head.status == .ok)
        let confirmation = await Flow.post(
            issuer,
            "/oauth2/device",
            [
                ("csrf", try #require(Flow.hidden(page, "csrf"))), ("user_code", userCode), ("username", "ada"),
                ("password", Flow.password),
            ],
            browser: browser
        )
        #expect(confirmation.head.status == .ok)
        let html = String(decoding: confirmation.body, as: UTF8.self)
        #expect(html.contains("@team/orders.read"))
        return await Flow.post(
            issuer,
            "/oauth2/authorize/consent",
            [
                ("request", try #require(Flow.hidden(confirmation, "request"))),
                ("csrf", try #require(Flow.hidden(confirmation, "csrf"))), ("decision", decision),
            ],
            browser: browser
        )
    }

    @Test func theDeviceGetsItsTokensOnceAfterThePersonConfirms() async throws {
        let clock = Clock()
        let issuer = try await Self.makeIssuer(clock: clock)
        let started = try await Self.start(issuer)
        let deviceCode = try #require(started["device_code"] as? String)
        let userCode = try #require(started["user_code"] as? String)
        #expect(userCode.count == 9 && userCode.contains("-"))
        #expect(started["verification_uri"] as? String == "https://idp.test/oauth2/device")
        let complete = try #require(started["verification_uri_complete"] as? String)
        #expect(complete.hasPrefix("https://idp.test/oauth2/device?user_code="))
        #expect(started["interval"] as? Int == 5)
        #expect(started["expires_in"] as? Int == 600)

        #expect(try Self.error(await Self.poll(issuer, deviceCode)) == "authorization_pending")
        // Polling again within the interval: slow down (RFC 8628 §3.5), and the interval grows.
        clock.advance(1)
        #expect(try Self.error(await Self.poll(issuer, deviceCode)) == "slow_down")
        clock.advance(6)
        #expect(try Self.error(await Self.poll(issuer, deviceCode)) == "slow_down")
        // Each slow_down added 5 seconds: the interval is now 15.
        clock.advance(14)
        #expect(try Self.error(await Self.poll(issuer, deviceCode)) == "slow_down")
        clock.advance(20)
        #expect(try Self.error(await Self.poll(issuer, deviceCode)) == "authorization_pending")

        // The person types the code in lower case without the dash, as people do.
        let typed = userCode.lowercased().replacingOccurrences(of: "-", with: "")
        let done = try await Self.confirm(issuer, userCode: typed)
        #expect(done.head.status == .ok)
        #expect(String(decoding: done.body, as: UTF8.self).contains("Device connected"))

        // Another client's poll of the same device code learns nothing and spends nothing.
        clock.advance(20)
        #expect(try Self.error(await Self.poll(issuer, deviceCode, client: "@team/other-tv")) == "invalid_grant")
        // A resource never authorised is refused and spends nothing (RFC 8707).
        let widened = await Flow.post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", GrantType.deviceCode.rawValue), ("device_code", deviceCode), ("client_id", "@team/tv"),
                ("resource", "https://elsewhere.example"),
            ]
        )
        #expect(try Self.error(widened) == "invalid_target")
        let tokens = await Self.poll(issuer, deviceCode)
        #expect(tokens.head.status == .ok)
        let answer = try Self.json(tokens)
        #expect(answer["access_token"] is String)
        #expect(answer["id_token"] is String)
        #expect(answer["refresh_token"] is String)
        // The refresh token works like any other.
        let refreshed = await Flow.post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", "refresh_token"), ("refresh_token", try #require(answer["refresh_token"] as? String)),
                ("client_id", "@team/tv"),
            ]
        )
        #expect(refreshed.head.status == .ok)
        let successor = try #require(try Self.json(refreshed)["refresh_token"] as? String)
        // Single use: the next poll is refused, and as a replay it revokes the grant.
        clock.advance(20)
        #expect(try Self.error(await Self.poll(issuer, deviceCode)) == "invalid_grant")
        let afterReplay = await Flow.post(
            issuer,
            "/oauth2/token",
            [("grant_type", "refresh_token"), ("refresh_token", successor), ("client_id", "@team/tv")]
        )
        #expect(try Self.error(afterReplay) == "invalid_grant")
    }

    @Test func aDeniedRequestIsAccessDeniedAndAnExpiredOneExpiredToken() async throws {
        let clock = Clock()
        let issuer = try await Self.makeIssuer(clock: clock)
        let denied = try await Self.start(issuer)
        let done = try await Self.confirm(
            issuer,
            userCode: try #require(denied["user_code"] as? String),
            decision: "deny"
        )
        #expect(String(decoding: done.body, as: UTF8.self).contains("denied"))
        #expect(
            try Self.error(await Self.poll(issuer, try #require(denied["device_code"] as? String))) == "access_denied"
        )

        let late = try await Self.start(issuer)
        clock.advance(601)
        #expect(
            try Self.error(await Self.poll(issuer, try #require(late["device_code"] as? String))) == "expired_token"
        )
        // The code cannot be confirmed any more either.
        let browser = Flow.Browser()
        let page = await Flow.get(issuer, "/oauth2/device", browser: browser)
        let refused = await Flow.post(
            issuer,
            "/oauth2/device",
            [
                ("csrf", try #require(Flow.hidden(page, "csrf"))),
                ("user_code", try #require(late["user_code"] as? String)), ("username", "ada"),
                ("password", Flow.password),
            ],
            browser: browser
        )
        #expect(refused.head.status == .badRequest)
        #expect(String(decoding: refused.body, as: UTF8.self).contains("not valid or has expired"))
    }

    @Test func theVerificationPageRefusesForgedFormsWrongCodesAndWrongPasswords() async throws {
        let clock = Clock()
        let issuer = try await Self.makeIssuer(clock: clock)
        let started = try await Self.start(issuer)
        let userCode = try #require(started["user_code"] as? String)
        // verification_uri_complete pre-fills the code, escaped.
        let page = await Flow.get(issuer, "/oauth2/device?user_code=%22%3E%3Cscript%3E")
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(html.contains("value=\"&quot;&gt;&lt;script&gt;\""))
        #expect(!html.contains("<script>"))

        // A made-up anti-forgery token, or a form posted from another browser: refused.
        let browser = Flow.Browser()
        let entry = await Flow.get(issuer, "/oauth2/device", browser: browser)
        let csrf = try #require(Flow.hidden(entry, "csrf"))
        let forged = await Flow.post(
            issuer,
            "/oauth2/device",
            [("csrf", "guess"), ("user_code", userCode), ("username", "ada"), ("password", Flow.password)],
            browser: browser
        )
        #expect(forged.head.status == .forbidden)
        let elsewhere = await Flow.post(
            issuer,
            "/oauth2/device",
            [("csrf", csrf), ("user_code", userCode), ("username", "ada"), ("password", Flow.password)],
            browser: Flow.Browser()
        )
        #expect(elsewhere.head.status == .forbidden)

        // A wrong code is refused (and counted: see the limits' tests).
        let wrong = await Flow.post(
            issuer,
            "/oauth2/device",
            [("csrf", csrf), ("user_code", "BBBB-BBBB"), ("username", "ada"), ("password", Flow.password)],
            browser: browser
        )
        #expect(wrong.head.status == .badRequest)
        #expect(String(decoding: wrong.body, as: UTF8.self).contains("not valid or has expired"))

        // A wrong password is asked again, and the device stays pending.
        let badPassword = await Flow.post(
            issuer,
            "/oauth2/device",
            [("csrf", csrf), ("user_code", userCode), ("username", "ada"), ("password", "wrong")],
            browser: browser
        )
        #expect(String(decoding: badPassword.body, as: UTF8.self).contains("not right"))
        #expect(
            try Self.error(await Self.poll(issuer, try #require(started["device_code"] as? String)))
                == "authorization_pending"
        )
    }

    @Test func theGrantIsOnlyForClientsAndIssuersThatHaveIt() async throws {
        let clock = Clock()
        let without = try await Self.makeIssuer(clock: clock, deviceGrant: false)
        let refused = await Flow.post(
            without,
            "/oauth2/device_authorization",
            [("client_id", "@team/tv"), ("scope", "openid")]
        )
        #expect(refused.head.status == .badRequest)
        #expect(try Self.error(refused) == "unauthorized_client")
        let discovery = try Self.json(await Flow.get(without, "/.well-known/openid-configuration"))
        #expect(discovery["device_authorization_endpoint"] == nil)

        let with = try await Self.makeIssuer(clock: clock)
        let document = try Self.json(await Flow.get(with, "/.well-known/openid-configuration"))
        #expect(document["device_authorization_endpoint"] as? String == "https://idp.test/oauth2/device_authorization")
        #expect((document["grant_types_supported"] as? [String])?.contains(GrantType.deviceCode.rawValue) == true)
        // An unknown client is invalid_client, 401.
        let unknown = await Flow.post(with, "/oauth2/device_authorization", [("client_id", "nobody")])
        #expect(unknown.head.status == .unauthorized)
        // An unknown device code is invalid_grant.
        #expect(try Self.error(await Self.poll(with, "no-such-code")) == "invalid_grant")
    }
}
