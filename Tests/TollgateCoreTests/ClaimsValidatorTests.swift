import Testing
import TollgateTestSupport

@testable import TollgateCore

@Suite struct ClaimsValidatorTests {
    static let now: Double = 1_800_000_000
    static let policy = TestTokens.policy()

    static func validate(
        _ json: String,
        type: String? = "at+jwt",
        policy: IssuerPolicy = policy
    ) -> VerificationFailure.Code? {
        let claims = try! JSONParser.parse(json)
        switch ClaimsValidator.validate(claims: claims, headerType: type, policy: policy, now: now, encodedClaims: "") {
        case .success: return nil
        case .failure(let failure): return failure.code
        }
    }

    static let iss = #""iss":"https://idp.example.com/team","aud":"@team/api""#

    @Test func leewayAppliesToExpNbfAndIat() {
        #expect(Self.validate("{\(Self.iss),\"exp\":\(Int(Self.now) - 29)}") == nil)
        #expect(Self.validate("{\(Self.iss),\"exp\":\(Int(Self.now) - 30)}") == .expired)
        #expect(Self.validate("{\(Self.iss),\"exp\":\(Int(Self.now) + 60),\"nbf\":\(Int(Self.now) + 29)}") == nil)
        #expect(
            Self.validate("{\(Self.iss),\"exp\":\(Int(Self.now) + 60),\"nbf\":\(Int(Self.now) + 31)}") == .notYetValid
        )
        #expect(
            Self.validate("{\(Self.iss),\"exp\":\(Int(Self.now) + 60),\"iat\":\(Int(Self.now) + 31)}")
                == .issuedInFuture
        )
    }

    @Test func audienceMayBeAStringOrAnArray() {
        let exp = "\"exp\":\(Int(Self.now) + 60)"
        let iss = #""iss":"https://idp.example.com/team""#
        #expect(Self.validate("{\(iss),\(exp),\"aud\":\"@team/api\"}") == nil)
        #expect(Self.validate("{\(iss),\(exp),\"aud\":[\"x\",\"@team/api\"]}") == nil)
        #expect(Self.validate("{\(iss),\(exp),\"aud\":[\"x\"]}") == .audienceMismatch)
        #expect(Self.validate("{\(iss),\(exp)}") == .audienceMismatch)
    }

    @Test func tokenTypeIsCheckedOnlyWhenRequired() {
        let claims = "{\(Self.iss),\"exp\":\(Int(Self.now) + 60)}"
        var strict = Self.policy
        strict.requiredTokenType = "at+jwt"
        #expect(Self.validate(claims, type: "at+jwt", policy: strict) == nil)
        #expect(Self.validate(claims, type: "application/AT+JWT", policy: strict) == nil)
        #expect(Self.validate(claims, type: "JWT", policy: strict) == .tokenTypeMismatch)
        #expect(Self.validate(claims, type: nil, policy: strict) == .tokenTypeMismatch)
        #expect(Self.validate(claims, type: "JWT") == nil)
    }
}

@Suite struct VerifiedTokenCacheTests {
    static func token(expiresAt: Double) -> VerifiedToken {
        VerifiedToken(
            issuerName: "main",
            claims: .object([:]),
            subject: nil,
            scopes: [],
            expiresAt: expiresAt,
            leeway: 0,
            encodedClaims: ""
        )
    }

    @Test func entriesExpireAtTheirDeadline() {
        let cache = VerifiedTokenCache(maximumEntries: 100, admitOnSecondSighting: false)
        let digest = TokenDigest(token: "a")
        cache.store(Self.token(expiresAt: 110), for: digest, until: 110, now: 100)
        #expect(cache.lookup(digest, now: 109) != nil)
        #expect(cache.lookup(digest, now: 110) == nil)
        #expect(cache.count == 0)
    }

    @Test func theCacheStaysWithinItsBound() {
        let cache = VerifiedTokenCache(maximumEntries: 160, admitOnSecondSighting: false)
        for index in 0..<5000 {
            cache.store(Self.token(expiresAt: 1000), for: TokenDigest(token: "token-\(index)"), until: 1000, now: 0)
        }
        #expect(cache.count <= 160)
    }

    @Test func aTokenSeenOnceIsNotCachedAndOneSeenTwiceIs() {
        let cache = VerifiedTokenCache(maximumEntries: 1000)
        for index in 0..<500 {
            cache.store(Self.token(expiresAt: 1000), for: TokenDigest(token: "once-\(index)"), until: 1000, now: 0)
        }
        #expect(cache.count == 0, "a flood of tokens seen once inserts nothing")
        let twice = TokenDigest(token: "twice")
        cache.store(Self.token(expiresAt: 1000), for: twice, until: 1000, now: 0)
        #expect(cache.lookup(twice, now: 1) == nil)
        cache.store(Self.token(expiresAt: 1000), for: twice, until: 1000, now: 1)
        #expect(cache.lookup(twice, now: 2) != nil)
    }

    /// CLOCK: a token used between the inserts of a flood keeps its place; arbitrary eviction
    /// lost it within a few hundred inserts.
    @Test func aTokenInUseSurvivesAFloodOfNewOnes() {
        let cache = VerifiedTokenCache(maximumEntries: 160, admitOnSecondSighting: false)
        let hot = TokenDigest(token: "hot")
        cache.store(Self.token(expiresAt: 1000), for: hot, until: 1000, now: 0)
        var survived = true
        for index in 0..<5000 {
            cache.store(Self.token(expiresAt: 1000), for: TokenDigest(token: "cold-\(index)"), until: 1000, now: 0)
            if cache.lookup(hot, now: 1) == nil { survived = false }
        }
        #expect(survived)
        #expect(cache.count <= 160)
        // Expired entries are taken before live ones.
        let expiring = VerifiedTokenCache(maximumEntries: 16, admitOnSecondSighting: false)
        let live = TokenDigest(token: "live")
        expiring.store(Self.token(expiresAt: 1000), for: live, until: 1000, now: 0)
        for index in 0..<200 {
            expiring.store(Self.token(expiresAt: 5), for: TokenDigest(token: "short-\(index)"), until: 5, now: 0)
        }
        #expect(expiring.count <= 16)
    }

    @Test func aCachedTokenIsRecheckedForExpiryAndIssuer() async {
        let clock = ManualClock()
        let verifier = TestTokens.verifier(now: clock.function)
        let token = TestTokens.rs256(now: clock.now, ["exp": Int(clock.now) + 10])
        #expect((try? await verifier.verify(token).get()) != nil)
        #expect(verifier.cache.count == 0, "a token is cached on its second sighting")
        #expect((try? await verifier.verify(token).get()) != nil)
        #expect(verifier.cache.count == 1)
        #expect(await verifier.verify(token, acceptedIssuers: ["other"]).failureCode == .untrustedIssuer)
        clock.advance(by: 41)
        #expect(await verifier.verify(token).failureCode == .expired)
    }
}

@Suite struct JSONParserTests {
    @Test func parsesNestedDocuments() throws {
        let value = try JSONParser.parse(#" {"a":[1,-2.5e2,true,false,null,"x\u00e9\ud83d\ude00\n"],"b":{"c":{}}} "#)
        #expect(value["a"]?.arrayValue?[1] == .number(-250))
        #expect(value["a"]?.arrayValue?[5] == .string("xé😀\n"))
        #expect(value.value(atPath: "b.c") == .object([:]))
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":1,}"#, #"[1,]"#, #"{"a":01}"#, #"{"a":"\ud800"}"#, #"{"a":"x"} x"#, "\"\u{1}\"",
        #"{"a":NaN}"#, #"{'a':1}"#, String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
    ])
    func refusesInvalidOrAmbiguousJSON(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    /// Members that are not kept are checked as strictly as kept ones: each of these is refused
    /// with `b` kept and the offending member `a` skipped.
    @Test(arguments: [
        #"{"a":"\ud800","b":1}"#, #"{"a":"\q","b":1}"#, "{\"a\":\"\u{1}\",\"b\":1}", #"{"a":[1,],"b":1}"#,
        #"{"a":{"x":1,},"b":1}"#, #"{"a":01,"b":1}"#, #"{"a":1e999,"b":1}"#, #"{"a":tru,"b":1}"#,
        #"{"a":"unterminated"#, #"{"a":{"x" 1},"b":1}"#, #"{"a":1,"a":2,"b":1}"#, #"{"a":1,"b":1,"a":2}"#,
        #"{"b":1,"a":1} x"#, #"{"a":"x","b":1,"b":2}"#,
        "{\"a\":" + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + ",\"b\":1}",
    ])
    func skippedMembersAreRefusedAsStrictlyAsKeptOnes(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parseObject(Array(text.utf8), keeping: ["b"]) }
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    @Test func invalidUTF8InASkippedMemberIsRefused() {
        let bytes = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#"","b":1}"#.utf8)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parseObject(bytes, keeping: ["b"]) }
    }

    @Test func onlyTheKeptMembersAreBuiltAndTheyEqualAWholeParse() throws {
        let text = #"""
            {"iss":"https://idp","sub":"u1","aud":["a","b"],"exp":1.5e9,"name":"Zo\u00eb","groups":["x","y"],
             "realm_access":{"roles":["r1"],"nested":{"deep":[1,{"k":"v"}]}},"email":"a@b","n":-0.25,"t":true,
             "e":null,"esc":"a\"b\\c\/d"}
            """#
        let whole = try JSONParser.parse(text)
        let kept: Set<String> = ["iss", "sub", "aud", "exp", "realm_access", "missing"]
        let parsed = try JSONParser.parseObject(Array(text.utf8), keeping: kept)
        guard case .object(let members) = whole, case .object(let keptMembers) = parsed else {
            Issue.record("not objects")
            return
        }
        #expect(keptMembers == members.filter { kept.contains($0.key) })
        #expect(keptMembers.count == 5)
    }

    @Test func aDuplicateInsideASkippedMemberIsNotLookedFor() throws {
        let parsed = try JSONParser.parseObject(Array(#"{"a":{"x":1,"x":2},"b":1}"#.utf8), keeping: ["b"])
        #expect(parsed == .object(["b": .number(1)]))
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(#"{"a":{"x":1,"x":2},"b":1}"#) }
    }

    @Test func base64URLIsStrict() {
        #expect(Base64URL.decode("aGk") == Array("hi".utf8))
        #expect(Base64URL.decode("aGk=") == nil)
        #expect(Base64URL.decode("aGl") == nil, "non-zero trailing bits")
        #expect(Base64URL.decode("a+k") == nil)
        #expect(Base64URL.encode(Array("hi".utf8)) == "aGk")
    }
}
