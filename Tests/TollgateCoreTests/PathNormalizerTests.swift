import Testing

@testable import TollgateCore

@Suite struct PathNormalizerTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let target: String
        let path: String?
        var testDescription: String { target }
    }

    /// Normalised forms, and the bypass attempts that must be refused (path `nil`).
    static let table: [Case] = [
        Case(target: "/orders", path: "/orders"),
        Case(target: "/orders/", path: "/orders/"),
        Case(target: "//orders///42", path: "/orders/42"),
        Case(target: "/public/../admin", path: "/admin"),
        Case(target: "/public/./../admin/", path: "/admin/"),
        Case(target: "/../../admin", path: "/admin"),
        Case(target: "/public/%2e%2e/admin", path: "/admin"),
        Case(target: "/public/%2E%2E/admin", path: "/admin"),
        Case(target: "/public/.%2e/admin", path: "/admin"),
        Case(target: "/%61dmin", path: "/admin"),
        Case(target: "/orders/%7e42", path: "/orders/~42"),
        Case(target: "/a/b/..", path: "/a/"),
        Case(target: "/search?q=../admin#frag", path: "/search"),
        Case(target: "/files/report%20final.pdf", path: "/files/report%20final.pdf"),
        Case(target: "/files/caf%c3%a9", path: "/files/caf%C3%A9"),
        Case(target: "/public%2F..%2Fadmin", path: nil),
        Case(target: "/public%2f..%2fadmin", path: nil),
        Case(target: "/public%5C..%5Cadmin", path: nil),
        Case(target: "/public\\..\\admin", path: nil),
        Case(target: "/admin;foo=bar", path: nil),
        Case(target: "/admin%3Bfoo", path: nil),
        Case(target: "/admin%00.json", path: nil),
        Case(target: "/admin%zz", path: nil),
        Case(target: "/admin%2", path: nil),
        Case(target: "admin", path: nil),
        Case(target: "*", path: nil),
        Case(target: "/adm in", path: nil),
        Case(target: "/caf\u{e9}", path: nil),
        Case(target: "/admin\u{0}", path: nil),
    ]

    @Test(arguments: table)
    func normalisesOrRefuses(_ row: Case) {
        switch PathNormalizer.normalize(row.target) {
        case .success(let normalised):
            #expect(normalised.path == row.path, "\(row.target) → \(normalised.path)")
        case .failure(let rejection):
            #expect(row.path == nil, "\(row.target) was refused: \(rejection)")
        }
    }

    /// The shortcut for targets that are normal already gives exactly what the full rules give,
    /// for every target built from the characters the rules care about.
    @Test func theShortcutAgreesWithTheFullRules() {
        let alphabet: [String] = ["a", "Z", "/", ".", "%", "2", "e", "F", "?", "#", ";", "\\", "~", " ", "é", "-", "="]
        var random = SystemRandomNumberGenerator()
        var shortcuts = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...10, using: &random)
            var target = Bool.random(using: &random) ? "/" : ""
            for _ in 0..<length { target += alphabet.randomElement(using: &random)! }
            let full = PathNormalizer.normalizeInFull(target, options: .init())
            if let shortcut = PathNormalizer.alreadyNormal(target) {
                shortcuts += 1
                #expect(full == .success(shortcut), "\(target.debugDescription)")
            }
            #expect(PathNormalizer.normalize(target) == full, "\(target.debugDescription)")
        }
        #expect(shortcuts > 400, "the shortcut is taken for plain targets")
        #expect(PathNormalizer.alreadyNormal("/orders/42?x=1#f") == .init(path: "/orders/42", query: "x=1"))
        #expect(PathNormalizer.alreadyNormal("/") == .init(path: "/", query: nil))
    }

    @Test func theQueryIsKeptForForwardingButNotMatched() throws {
        let normalised = try PathNormalizer.normalize("/a/../orders?id=1&x=%2F").get()
        #expect(normalised.path == "/orders")
        #expect(normalised.query == "id=1&x=%2F")
        #expect(normalised.requestTarget == "/orders?id=1&x=%2F")
    }

    @Test func encodedSlashAndSemicolonCanBeAllowedExplicitly() throws {
        var options = PathNormalizer.Options()
        options.allowEncodedSlash = true
        options.allowSemicolon = true
        #expect(try PathNormalizer.normalize("/a%2fb;v=1", options: options).get().path == "/a%2Fb;v=1")
    }

    /// None of the bypass attempts reaches the protected prefix with an unprotected route in front.
    @Test func bypassAttemptsCannotReachAProtectedRoute() {
        let table = RouteTable(routes: [
            Route(name: "admin", pattern: .prefix("/admin"), scopes: ScopeRequirement(all: ["admin"])),
            Route(name: "public", pattern: .prefix("/public"), authentication: .none),
        ])
        let attempts = [
            "/public/../admin", "/public/%2e%2e/admin", "/public%2F..%2Fadmin", "/public/..%5Cadmin",
            "/public/..;/admin", "/public;/../admin", "//admin", "/./admin", "/public/.%2E/admin/users",
        ]
        for attempt in attempts {
            switch PathNormalizer.normalize(attempt) {
            case .failure: continue
            case .success(let normalised):
                let route = table.match(method: "GET", path: normalised.path)
                #expect(route?.name != "public", "\(attempt) reached the public route as \(normalised.path)")
            }
        }
    }
}

@Suite struct RouteTableTests {
    static let table = RouteTable(routes: [
        Route(name: "health", methods: ["GET"], pattern: .exact("/healthz"), authentication: .none),
        Route(name: "order-write", methods: ["PUT", "DELETE"], pattern: .path("/orders/{id}")),
        Route(name: "orders-read", methods: ["GET", "HEAD"], pattern: .prefix("/orders")),
        Route(name: "reports", pattern: PathPattern.globPattern("/reports/*.pdf")),
        Route(name: "deep", pattern: PathPattern.globPattern("/files/**/meta")),
        Route(name: "root-prefix", methods: ["OPTIONS"], pattern: .prefix("/")),
    ])

    @Test(
        arguments: [
            ("GET", "/healthz", "health"),
            ("POST", "/healthz", nil),
            ("PUT", "/orders/42", "order-write"),
            ("PUT", "/orders/42/items", nil),
            ("PUT", "/orders", nil),
            ("GET", "/orders", "orders-read"),
            ("GET", "/orders/42/items", "orders-read"),
            ("GET", "/ordersx", nil),
            ("HEAD", "/orders/", "orders-read"),
            ("GET", "/reports/q3.pdf", "reports"),
            ("GET", "/reports/q3.pdf/x", nil),
            ("GET", "/reports/q3.txt", nil),
            ("GET", "/files/meta", "deep"),
            ("GET", "/files/a/b/c/meta", "deep"),
            ("GET", "/files/a/b/c/meta2", nil),
            ("OPTIONS", "/anything", "root-prefix"),
        ] as [(String, String, String?)]
    )
    func firstMatchingRouteWins(method: String, path: String, expected: String?) {
        #expect(Self.table.match(method: method, path: path)?.name == expected)
    }

    @Test func aPrefixMatchesWholeSegmentsOnly() {
        let table = RouteTable(routes: [Route(name: "admin", pattern: .prefix("/admin"))])
        #expect(table.match(method: "GET", path: "/admin")?.name == "admin")
        #expect(table.match(method: "GET", path: "/admin/x")?.name == "admin")
        #expect(table.match(method: "GET", path: "/administrator") == nil)
    }
}

@Suite struct AuthorizationTests {
    static func token(_ claims: JSONValue) -> VerifiedToken {
        VerifiedToken(
            issuerName: "main",
            claims: claims,
            subject: claims["sub"]?.stringValue,
            scopes: ClaimsValidator.scopes(in: claims, claimPath: nil),
            expiresAt: 2_000_000_000,
            leeway: 30,
            encodedClaims: ""
        )
    }

    static let claims = try! JSONParser.parse(
        #"{"sub":"u1","scope":"@team/orders.read openid","roles":["viewer","auditor"],"actor":{"national_id":"1234","level":3}}"#
    )

    @Test func allAndAnyScopeRules() {
        let token = Self.token(Self.claims)
        #expect(ScopeRequirement(all: ["@team/orders.read"]).isSatisfied(by: token.scopes))
        #expect(!ScopeRequirement(all: ["@team/orders.read", "@team/orders.write"]).isSatisfied(by: token.scopes))
        #expect(ScopeRequirement(any: ["@team/orders.write", "openid"]).isSatisfied(by: token.scopes))
        #expect(!ScopeRequirement(any: ["@team/orders.write", "@team/admin"]).isSatisfied(by: token.scopes))
        #expect(!ScopeRequirement(all: ["@team/Orders.read"]).isSatisfied(by: token.scopes), "case-sensitive")
    }

    @Test func scopesComeFromScopeScpOrAConfiguredPath() throws {
        #expect(ClaimsValidator.scopes(in: try JSONParser.parse(#"{"scp":["a","b"]}"#), claimPath: nil) == ["a", "b"])
        #expect(ClaimsValidator.scopes(in: try JSONParser.parse(#"{"scp":"a b"}"#), claimPath: nil) == ["a", "b"])
        let keycloak = try JSONParser.parse(#"{"realm_access":{"roles":["x","y"]}}"#)
        #expect(ClaimsValidator.scopes(in: keycloak, claimPath: "realm_access.roles") == ["x", "y"])
    }

    @Test func routeDecisionIsRecomputedFromClaims() {
        let route = Route(
            name: "orders",
            pattern: .prefix("/orders"),
            scopes: ScopeRequirement(all: ["@team/orders.write"]),
            conditions: []
        )
        #expect(route.authorize(Self.token(Self.claims)) == .insufficientScope("@team/orders.write"))
    }

    @Test func claimConditionsOnDottedPaths() {
        let claims = Self.claims
        #expect(ClaimCondition(claim: "actor.national_id", test: .equals(.string("1234"))).isSatisfied(by: claims))
        #expect(!ClaimCondition(claim: "actor.national_id", test: .equals(.string("9999"))).isSatisfied(by: claims))
        #expect(ClaimCondition(claim: "actor.level", test: .oneOf([.number(2), .number(3)])).isSatisfied(by: claims))
        #expect(ClaimCondition(claim: "roles", test: .contains("auditor")).isSatisfied(by: claims))
        #expect(ClaimCondition(claim: "scope", test: .contains("openid")).isSatisfied(by: claims))
        #expect(!ClaimCondition(claim: "actor.missing", test: .contains("x")).isSatisfied(by: claims))
        let route = Route(
            name: "r",
            pattern: .prefix("/"),
            conditions: [ClaimCondition(claim: "actor.level", test: .equals(.number(5)))]
        )
        guard case .conditionFailed = route.authorize(Self.token(claims)) else {
            Issue.record("the condition should fail")
            return
        }
    }

    @Test func claimHeadersAreMappedAndSpoofedCopiesStripped() throws {
        let mapping = ClaimHeaderMapping(
            entries: [
                .init(header: "X-Auth-Subject", claim: "sub"),
                .init(header: "X-Auth-Roles", claim: "roles"),
                .init(header: "X-Auth-Actor", claim: "actor.national_id"),
                .init(header: "X-Auth-Level", claim: "actor.level"),
                .init(header: "X-Auth-Missing", claim: "nope"),
            ],
            payloadHeader: "X-Auth-Claims"
        )
        let headers = try mapping.headers(for: Self.token(Self.claims)).get()
        #expect(
            headers.map(\.name) == ["X-Auth-Subject", "X-Auth-Roles", "X-Auth-Actor", "X-Auth-Level", "X-Auth-Claims"]
        )
        #expect(headers.map(\.value).prefix(4) == ["u1", "viewer,auditor", "1234", "3"])
        for spoof in ["x-auth-subject", "X-AUTH-SUBJECT", "x_auth_subject", "X_Auth-Claims", "x-auth-missing"] {
            #expect(mapping.mustStrip(spoof), "\(spoof)")
        }
        #expect(!mapping.mustStrip("X-Request-Id"))
    }

    @Test func claimValuesWithControlCharactersAreRefused() throws {
        let mapping = ClaimHeaderMapping(entries: [.init(header: "X-Auth-Name", claim: "name")])
        let claims = try JSONParser.parse(#"{"name":"eve\r\nX-Admin: true"}"#)
        #expect(mapping.headers(for: Self.token(claims)) == .failure(.unsafeValue(header: "X-Auth-Name")))
    }
}

extension Result where Success == [(name: String, value: String)], Failure == ClaimHeaderMapping.Failure {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.failure(let a), .failure(let b)): a == b
        default: false
        }
    }
}
