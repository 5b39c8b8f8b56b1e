import HTTPTypes
import Testing
import TollgateCore

@testable import TollgateIssuer

/// The issuer's rules as plain functions of records, without any store: what redeems a code,
/// what a refresh token's reuse means, which audience a token may name, when a sign-in must
/// wait, what a device decision does, and the sealed retry answer.
@Suite struct GrantRulesTests {
    static let options: IssuerOptions = {
        var options = IssuerOptions(issuer: "https://idp.test")
        options.apis = [
            APIDefinition(audience: "orders", scopes: ["orders.read", "orders.write"]),
            APIDefinition(audience: "billing", scopes: ["billing.read"]),
        ]
        return options
    }()

    static let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    static let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    static let code = AuthorizationCodeRecord(
        digest: "c",
        clientID: "web",
        redirectURI: "https://app/cb",
        username: "ada",
        scopes: ["openid", "orders.read"],
        codeChallenge: challenge,
        authenticatedAt: 1,
        expiresAt: 100,
        redeemed: false,
        familyID: "g1"
    )

    static func request(
        client: String = "web",
        redirect: String? = "https://app/cb",
        verifier: String? = verifier,
        resource: String? = nil,
        now: Int = 50
    ) -> GrantRules.CodeRequest {
        GrantRules.CodeRequest(
            clientID: client,
            redirectURI: redirect,
            codeVerifier: verifier,
            resource: resource,
            now: now
        )
    }

    @Test func aCodeRedeemsOnlyForItsClientRedirectVerifierTimeAndResource() {
        func refusal(_ request: GrantRules.CodeRequest, _ code: AuthorizationCodeRecord = Self.code) -> String? {
            GrantRules.refusal(toRedeem: code, request, options: Self.options).map { "\($0.error): \($0.description)" }
        }
        #expect(refusal(Self.request()) == nil)
        #expect(refusal(Self.request(resource: "orders")) == nil, "the API its scopes name")
        #expect(refusal(Self.request(client: "other"))?.hasPrefix("invalid_grant: the code was issued to") == true)
        #expect(refusal(Self.request(now: 100))?.hasPrefix("invalid_grant: the code has expired") == true)
        #expect(refusal(Self.request(redirect: nil))?.contains("redirect_uri") == true)
        #expect(refusal(Self.request(redirect: "https://app/cb2"))?.contains("redirect_uri") == true)
        #expect(refusal(Self.request(verifier: nil))?.contains("verifier") == true)
        #expect(refusal(Self.request(verifier: String(repeating: "a", count: 43)))?.contains("verifier") == true)
        #expect(refusal(Self.request(resource: "billing"))?.hasPrefix("invalid_target") == true)
        var plain = Self.code
        plain.codeChallenge = nil
        #expect(refusal(Self.request(), plain)?.contains("no code challenge") == true)
        #expect(refusal(Self.request(verifier: nil), plain) == nil)
    }

    @Test func aTokenNamesOnlyAnAudienceOneOfItsScopesBelongsTo() throws {
        #expect(try GrantRules.audience(forResource: nil, scopes: ["openid"], options: Self.options) == nil)
        #expect(
            try GrantRules.audience(forResource: nil, scopes: ["openid", "billing.read"], options: Self.options)?
                .audience == "billing"
        )
        #expect(
            try GrantRules.audience(forResource: "orders", scopes: ["orders.write"], options: Self.options)?.audience
                == "orders"
        )
        for (resource, scopes) in [("billing", ["orders.read"]), ("elsewhere", ["orders.read"]), ("orders", [])] {
            #expect(throws: IssuerError.self) {
                try GrantRules.audience(forResource: resource, scopes: scopes, options: Self.options)
            }
        }
    }

    static func refresh(spentAt: Int?, revoked: Bool = false, answer: String? = "sealed") -> RefreshTokenRecord {
        RefreshTokenRecord(
            digest: "r",
            familyID: "g1",
            generation: 0,
            clientID: "web",
            username: "ada",
            scopes: [],
            authenticatedAt: 1,
            expiresAt: 1000,
            spentAt: spentAt,
            successorAnswer: answer,
            revoked: revoked
        )
    }

    @Test func aRefreshTokensReuseIsARetryOnlyWithinTheIntervalAndOtherwiseRevokesTheGrant() {
        func reuse(
            _ token: RefreshTokenRecord?,
            by client: String = "web",
            used: Bool = false,
            now: Int = 110,
            interval: Int = 30
        )
            -> GrantRules.Reuse
        {
            GrantRules.reuse(of: token, by: client, successorUsed: used, now: now, reuseInterval: interval)
        }
        #expect(reuse(nil) == .refuse)
        #expect(reuse(Self.refresh(spentAt: 100), by: "other") == .refuse, "another client learns nothing")
        #expect(reuse(Self.refresh(spentAt: nil, revoked: true)) == .refuse, "revoked, never spent")
        #expect(reuse(Self.refresh(spentAt: 100)) == .replay("sealed"))
        #expect(reuse(Self.refresh(spentAt: 100), now: 131) == .revokeGrant, "after the interval")
        #expect(reuse(Self.refresh(spentAt: 100), used: true) == .revokeGrant, "the successor is in use")
        #expect(reuse(Self.refresh(spentAt: 100, revoked: true)) == .revokeGrant)
        #expect(reuse(Self.refresh(spentAt: 100, answer: nil), interval: 0) == .revokeGrant, "strict rotation")
        #expect(GrantRules.grantToRevoke(onReplayOf: Self.code) == nil)
        var spent = Self.code
        spent.redeemed = true
        #expect(GrantRules.grantToRevoke(onReplayOf: spent) == "g1")
    }

    @Test func aRefreshNarrowsAndNeverWidens() throws {
        #expect(try GrantRules.refreshScopes(requested: nil, granted: ["a", "b"]) == ["a", "b"])
        #expect(try GrantRules.refreshScopes(requested: "b", granted: ["a", "b"]) == ["b"])
        #expect(throws: IssuerError.self) { try GrantRules.refreshScopes(requested: "a c", granted: ["a", "b"]) }
    }

    @Test func signInWaitsDoubleFromTheThresholdUpToTheMaximum() {
        var limits = LocalIssuerSettings.Limits()
        limits.waitIncrement = 2
        limits.maxWait = 10
        func wait(_ count: Int, last: Int = 100, now: Int = 100) -> Int? {
            AttemptLimits.wait(failures: EventCount(count: count, last: last), threshold: 5, limits: limits, now: now)
        }
        #expect(AttemptLimits.wait(failures: nil, threshold: 5, limits: limits, now: 1) == nil)
        #expect(wait(4) == nil)
        #expect(wait(5) == 2)
        #expect(wait(6) == 4)
        #expect(wait(7) == 8)
        #expect(wait(8) == 10, "at most max_wait")
        #expect(wait(40) == 10)
        #expect(wait(6, now: 103) == 1)
        #expect(wait(6, now: 104) == nil)
        #expect(AttemptLimits.windowWait(count: EventCount(count: 3, last: 10), limit: 3, window: 600, now: 20) == 590)
        #expect(AttemptLimits.windowWait(count: EventCount(count: 2, last: 10), limit: 3, window: 600, now: 20) == nil)
    }

    @Test func aDeviceIsDecidedOnceWhilePendingAndAPollSpendsItsApproval() {
        let pending = DeviceAuthorizationRecord(
            digest: "d",
            userCode: "BCDFGHJK",
            clientID: "tv",
            scopes: [],
            interval: 5,
            expiresAt: 100
        )
        let approved = pending.decided(by: "ada", authenticatedAt: 10, now: 10)
        #expect(approved?.status == .approved && approved?.username == "ada")
        #expect(pending.decided(by: nil, authenticatedAt: 10, now: 10)?.status == .denied)
        #expect(approved?.decided(by: "mallory", authenticatedAt: 11, now: 11) == nil, "decided once")
        #expect(pending.decided(by: "ada", authenticatedAt: 100, now: 100) == nil, "expired")
        #expect(approved?.polled(at: 12).status == .redeemed)
        let early = pending.polled(at: 20).polled(at: 22)
        #expect(early.interval == 10, "polled too soon: the interval grows by 5")
    }

    /// An IPv6 client holds its whole /64: its addresses share one counter; IPv4 as it is.
    @Test func addressCountersCoverAnIPv6ClientsWholeSlash64() {
        #expect(OAuthIssuer.addressBlock("2001:db8:1:2::1") == OAuthIssuer.addressBlock("2001:db8:1:2:ffff::9"))
        #expect(OAuthIssuer.addressBlock("2001:db8:1:2::1") != OAuthIssuer.addressBlock("2001:db8:1:3::1"))
        #expect(OAuthIssuer.addressBlock("192.0.2.7") == "192.0.2.7")
        #expect(OAuthIssuer.accountKey(String(repeating: "x", count: 65_536)).utf8.count < 64, "a fixed-size key")
    }

    @Test func theRetryAnswerOpensOnlyWithTheSpentToken() throws {
        let sealed = try RetryAnswer.seal(#"{"access_token":"live"}"#, refreshToken: "spent-token")
        #expect(!sealed.contains("live"))
        #expect(RetryAnswer.open(sealed, refreshToken: "spent-token") == #"{"access_token":"live"}"#)
        #expect(RetryAnswer.open(sealed, refreshToken: "another-token") == nil)
        #expect(RetryAnswer.open("not sealed", refreshToken: "spent-token") == nil)
    }
}

/// The one table of the issuer's errors: every code's wire value, status, challenge and
/// presentation, and the answers built from it.
@Suite struct IssuerErrorTableTests {
    @Test func everyCodeHasItsRegisteredValueStatusAndChallenge() {
        let expected: [IssuerError.Code: (String, Int)] = [
            .invalidRequest: ("invalid_request", 400), .invalidClient: ("invalid_client", 401),
            .invalidGrant: ("invalid_grant", 400), .unauthorizedClient: ("unauthorized_client", 400),
            .unsupportedGrantType: ("unsupported_grant_type", 400), .invalidScope: ("invalid_scope", 400),
            .invalidTarget: ("invalid_target", 400), .authorizationPending: ("authorization_pending", 400),
            .slowDown: ("slow_down", 400), .expiredToken: ("expired_token", 400),
            .invalidToken: ("invalid_token", 401), .insufficientScope: ("insufficient_scope", 403),
            .registrationDisabled: ("access_denied", 403), .tooManyRequests: ("invalid_request", 429),
            .serverError: ("server_error", 500), .requestNotSupported: ("request_not_supported", 400),
            .requestURINotSupported: ("request_uri_not_supported", 400), .formExpired: ("invalid_request", 403),
            .invalidDPoPProof: ("invalid_dpop_proof", 400), .useDPoPNonce: ("use_dpop_nonce", 400),
            .useDPoPNonceAtResource: ("use_dpop_nonce", 401),
        ]
        for (code, (error, status)) in expected {
            let entry = IssuerError.entry(code)
            #expect(entry.error == error, "\(code)")
            #expect(entry.status.code == status, "\(code)")
        }
        #expect(IssuerError.entry(.invalidClient).challenge == .basic)
        for code in [IssuerError.Code.missingToken, .invalidToken, .insufficientScope] {
            #expect(IssuerError.entry(code).challenge == .bearer)
        }
        for code in [IssuerError.Code.useDPoPNonceAtResource, .invalidDPoPProofAtResource] {
            #expect(IssuerError.entry(code).challenge == .dpop)
        }
        for code in IssuerError.Code.allCases
        where ![
            .invalidClient, .missingToken, .invalidToken, .insufficientScope, .useDPoPNonceAtResource,
            .invalidDPoPProofAtResource,
        ].contains(code) {
            #expect(IssuerError.entry(code).challenge == nil, "\(code)")
        }
        for code in [IssuerError.Code.unknownClient, .unregisteredRedirect, .formExpired, .badSignOutRequest] {
            #expect(IssuerError.entry(code).presentation == .page, "never sent to a client: \(code)")
        }
    }

    @Test func aNonceAnswerCarriesTheNonceAndADPoPChallengeAtAResource() {
        var atTokenEndpoint = IssuerError(.useDPoPNonce, "x")
        atTokenEndpoint.dpopNonce = "n-1"
        let answer = atTokenEndpoint.response(realm: "r")
        #expect(answer.head.status.code == 400)
        #expect(answer.head.headerFields[HTTPField.Name("DPoP-Nonce")!] == "n-1")
        #expect(answer.head.headerFields[.wwwAuthenticate] == nil)
        var atResource = IssuerError(.useDPoPNonceAtResource, "x")
        atResource.dpopNonce = "n-2"
        let challenged = atResource.response(realm: "r")
        #expect(challenged.head.status.code == 401)
        #expect(challenged.head.headerFields[.wwwAuthenticate] == "DPoP realm=\"r\", error=\"use_dpop_nonce\"")
        #expect(challenged.head.headerFields[HTTPField.Name("DPoP-Nonce")!] == "n-2")
    }

    @Test func theJSONAnswerCarriesTheChallengeAndRetryAfter() throws {
        let basic = IssuerError.invalidClient.response(realm: "https://idp.test")
        #expect(basic.head.headerFields[.wwwAuthenticate] == "Basic realm=\"https://idp.test\"")
        #expect(basic.head.headerFields[.cacheControl] == "no-store")
        let bearer = IssuerError(.insufficientScope, "x").response(realm: "r")
        #expect(bearer.head.headerFields[.wwwAuthenticate] == "Bearer realm=\"r\", error=\"insufficient_scope\"")
        #expect(
            IssuerError(.missingToken, "x").response(realm: "r").head.headerFields[.wwwAuthenticate]
                == "Bearer realm=\"r\""
        )
        let waiting = IssuerError(.tooManyRequests, "wait", retryAfter: 7).response(realm: "r")
        #expect(waiting.head.status == .tooManyRequests && waiting.head.headerFields[.retryAfter] == "7")
        let body = try JSONParser.parse(waiting.body)
        #expect(body["error"]?.stringValue == "invalid_request" && body["error_description"]?.stringValue == "wait")
    }
}
