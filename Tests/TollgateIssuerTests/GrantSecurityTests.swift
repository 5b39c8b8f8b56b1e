import Crypto
import Foundation
import HTTPTypes
import SQLiteNIO
import Testing
import TollgateCore
import TollgateIssuer

/// The issuer tried as an attacker would (RFC 9700, RFC 7009, RFC 7662, RFC 8707): refresh
/// tokens revoked and introspected, grants revoked as units, audiences only with their scopes,
/// codes spent only by their owner, nothing live at rest.
@Suite struct GrantSecurityTests {
    typealias Flow = AuthorizationCodeFlowTests

    static let machineSecret = "machine-secret-0123456789abcdef01"
    static let resourceServerSecret = "rs-secret-0123456789abcdef0123456"

    static var machineBasic: String {
        FormURLEncoding.basicAuthorization(clientID: "@team/svc", clientSecret: machineSecret)
    }
    static var resourceServerBasic: String {
        FormURLEncoding.basicAuthorization(clientID: "@team/rs", clientSecret: resourceServerSecret)
    }

    /// The code flow's issuer, with a machine client allowed only `@team/orders.read` and a
    /// resource server allowed to introspect.
    static func makeIssuer(
        reuseInterval: Int = 0,
        store: any IssuerStore = MemoryIssuerStore()
    ) async throws -> OAuthIssuer {
        let issuer = try await Flow.makeIssuer(reuseInterval: reuseInterval, store: store)
        try await store.saveClient(
            RegisteredClient(
                id: "@team/svc",
                kind: .machine,
                secret: .hashing(machineSecret),
                scopes: ["@team/orders.read"]
            )
        )
        try await store.saveClient(
            RegisteredClient(
                id: "@team/rs",
                kind: .machine,
                secret: .hashing(resourceServerSecret),
                scopes: [],
                mayIntrospect: true
            )
        )
        return issuer
    }

    /// A code flow's tokens for `@team/web`.
    static func tokens(_ issuer: OAuthIssuer) async throws -> (access: String, refresh: String) {
        let code = try #require(try await Flow.signInAndConsent(issuer).0["code"])
        let answer = try Flow.json(try await Flow.exchange(issuer, code: code))
        return (try #require(answer["access_token"]?.stringValue), try #require(answer["refresh_token"]?.stringValue))
    }

    static func refresh(_ issuer: OAuthIssuer, _ token: String) async throws -> JSONValue {
        try Flow.json(
            await Flow.post(
                issuer,
                "/oauth2/token",
                [("grant_type", "refresh_token"), ("refresh_token", token)],
                authorization: Flow.webBasic
            )
        )
    }

    static func introspect(
        _ issuer: OAuthIssuer,
        _ token: String,
        as basic: String = Flow.webBasic
    ) async throws
        -> JSONValue
    {
        try Flow.json(await Flow.post(issuer, "/oauth2/introspect", [("token", token)], authorization: basic))
    }

    // MARK: - RFC 7009 / 7662

    @Test func revokingARefreshTokenRevokesItsGrantAndItsAccessTokens() async throws {
        let issuer = try await Self.makeIssuer()
        let (access, refresh) = try await Self.tokens(issuer)
        #expect(try await Self.introspect(issuer, refresh)["active"] == .bool(true))
        let revoked = await Flow.post(
            issuer,
            "/oauth2/revoke",
            [("token", refresh), ("token_type_hint", "refresh_token")],
            authorization: Flow.webBasic
        )
        #expect(revoked.head.status == .ok)
        #expect(try await Self.refresh(issuer, refresh)["error"]?.stringValue == "invalid_grant")
        #expect(try await Self.introspect(issuer, refresh)["active"] == .bool(false))
        #expect(try await Self.introspect(issuer, access)["active"] == .bool(false))
    }

    @Test func aPublicClientRevokesWithItsClientIDAndNoOtherClientCan() async throws {
        let issuer = try await Self.makeIssuer()
        let path = Flow.authorizePath(
            client: "@team/spa",
            redirect: "https://spa.test/cb",
            scope: "openid offline_access"
        )
        let code = try #require(try await Flow.signInAndConsent(issuer, path: path).0["code"])
        let answer = try Flow.json(
            await Flow.post(
                issuer,
                "/oauth2/token",
                [
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", "https://spa.test/cb"),
                    ("code_verifier", Flow.verifier), ("client_id", "@team/spa"),
                ]
            )
        )
        let refresh = try #require(answer["refresh_token"]?.stringValue)
        // Another client's revocation is answered 200 and does nothing (RFC 7009 §2.1).
        let foreign = await Flow.post(issuer, "/oauth2/revoke", [("token", refresh)], authorization: Flow.webBasic)
        #expect(foreign.head.status == .ok)
        #expect(try await Self.introspect(issuer, refresh, as: Self.resourceServerBasic)["active"] == .bool(true))
        let own = await Flow.post(issuer, "/oauth2/revoke", [("token", refresh), ("client_id", "@team/spa")])
        #expect(own.head.status == .ok)
        #expect(try await Self.introspect(issuer, refresh, as: Self.resourceServerBasic)["active"] == .bool(false))
    }

    @Test func introspectionAnswersOnlyTheTokensClientAndResourceServers() async throws {
        let issuer = try await Self.makeIssuer()
        let (access, refresh) = try await Self.tokens(issuer)
        let own = try await Self.introspect(issuer, refresh)
        #expect(own["active"] == .bool(true))
        #expect(own["token_type"]?.stringValue == "refresh_token")
        #expect(own["client_id"]?.stringValue == "@team/web")
        #expect(own["sub"]?.stringValue == "ada")
        for token in [access, refresh] {
            // Any confidential client (one anybody could register) learns nothing of another's.
            #expect(
                try await Self.introspect(issuer, token, as: Self.machineBasic) == .object(["active": .bool(false)])
            )
            #expect(try await Self.introspect(issuer, token, as: Self.resourceServerBasic)["active"] == .bool(true))
        }
        // Introspection neither spends nor rotates.
        #expect(try await Self.refresh(issuer, refresh)["refresh_token"] != nil)
        #expect(try await Self.introspect(issuer, refresh)["active"] == .bool(false), "spent by the rotation")
    }

    // MARK: - RFC 8707

    @Test func aResourceIsGrantedOnlyWithAScopeOfItThatTheClientMayHave() async throws {
        let issuer = try await Self.makeIssuer()
        func clientCredentials(_ form: [(String, String)]) async throws -> (HTTPResponse.Status, JSONValue) {
            let response = await Flow.post(
                issuer,
                "/oauth2/token",
                [("grant_type", "client_credentials")] + form,
                authorization: Self.machineBasic
            )
            return (response.head.status, try Flow.json(response))
        }
        let other = try await clientCredentials([("resource", "@team/billing")])
        #expect(other.0 == .badRequest && other.1["error"]?.stringValue == "invalid_target")
        let unknown = try await clientCredentials([("resource", "https://evil.test/api")])
        #expect(unknown.1["error"]?.stringValue == "invalid_target")
        let own = try await clientCredentials([("resource", "@team/orders")])
        #expect(own.0 == .ok)
        let claims = try Flow.claims(ofJWT: try #require(own.1["access_token"]?.stringValue))
        #expect(claims["aud"]?.stringValue == "@team/orders")
        #expect(claims["scope"]?.stringValue == "@team/orders.read")
    }

    @Test func aCodeIsRedeemedOnlyForTheResourceAuthorisedWithIt() async throws {
        let issuer = try await Self.makeIssuer()
        let code = try #require(try await Flow.signInAndConsent(issuer).0["code"])
        let widened = await Flow.post(
            issuer,
            "/oauth2/token",
            [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", "https://app.test/callback"),
                ("code_verifier", Flow.verifier), ("resource", "@team/billing"),
            ],
            authorization: Flow.webBasic
        )
        #expect(try Flow.json(widened)["error"]?.stringValue == "invalid_target")
        let answer = try Flow.json(try await Flow.exchange(issuer, code: code))
        let claims = try Flow.claims(ofJWT: try #require(answer["access_token"]?.stringValue))
        #expect(claims["aud"]?.stringValue == "@team/orders")
        #expect(claims["grant_id"]?.stringValue != nil)
        // At /authorize, an API none of whose scopes are asked for is refused too.
        let path = Flow.authorizePath(extra: [
            ("code_challenge", Flow.challenge), ("code_challenge_method", "S256"), ("resource", "@team/billing"),
        ])
        let refused = await Flow.get(issuer, path)
        #expect(Flow.query(try #require(refused.head.headerFields[.location]))["error"] == "invalid_target")
    }

    // MARK: - Grants as units

    @Test func fourConcurrentRedemptionsOfACodeLeaveNoLiveToken() async throws {
        for _ in 0..<5 {
            let issuer = try await Self.makeIssuer()
            let code = try #require(try await Flow.signInAndConsent(issuer).0["code"])
            let answers = await withTaskGroup(of: (HTTPResponse.Status, JSONValue?).self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let response = try? await Flow.exchange(issuer, code: code)
                        return (response?.head.status ?? .internalServerError, response.flatMap { try? Flow.json($0) })
                    }
                }
                var all: [(HTTPResponse.Status, JSONValue?)] = []
                for await answer in group { all.append(answer) }
                return all
            }
            let winners = answers.filter { $0.0 == .ok }
            #expect(winners.count <= 1)
            for (_, body) in winners {
                for name in ["access_token", "refresh_token"] {
                    let token = try #require(body?[name]?.stringValue)
                    #expect(try await Self.introspect(issuer, token)["active"] == .bool(false), "\(name)")
                }
            }
        }
    }

    @Test func strictRotationRevokesTheGrantOnAnyReuse() async throws {
        let issuer = try await Self.makeIssuer()
        let (_, original) = try await Self.tokens(issuer)
        let second = try await Self.refresh(issuer, original)
        let successor = try #require(second["refresh_token"]?.stringValue)
        let access = try #require(second["access_token"]?.stringValue)
        #expect(try await Self.refresh(issuer, original)["error"]?.stringValue == "invalid_grant")
        #expect(try await Self.refresh(issuer, successor)["error"]?.stringValue == "invalid_grant")
        #expect(try await Self.introspect(issuer, access)["active"] == .bool(false))
    }

    // MARK: - At rest

    /// With a reuse interval, the answer kept for the retry is sealed under the spent token:
    /// the SQLite file holds none of the live tokens, and the retry still gets its answer.
    @Test func theRetryAnswerAtRestHoldsNoUsableToken() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issuer-\(UUID().uuidString).sqlite")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try await SQLiteIssuerStore.open(path: path)
        let issuer = try await Self.makeIssuer(reuseInterval: 30, store: store)
        let (_, original) = try await Self.tokens(issuer)
        let second = try await Self.refresh(issuer, original)
        let live = [
            try #require(second["refresh_token"]?.stringValue), try #require(second["access_token"]?.stringValue),
            try #require(second["id_token"]?.stringValue), original,
        ]
        let connection = try await SQLiteConnection.open(storage: .file(path: path))
        var stored = ""
        for table in ["records", "tokens", "refresh_tokens", "revoked_grants", "event_counts"] {
            for row in try await connection.query("SELECT * FROM \(table)") {
                for column in row.columns { stored += (column.data.string ?? "") + "\n" }
            }
        }
        let answers = try await connection.query(
            "SELECT successor_answer FROM refresh_tokens WHERE spent_at IS NOT NULL"
        )
        try await connection.close()
        #expect(answers.first?.column("successor_answer")?.string != nil, "the sealed answer is kept")
        for token in live { #expect(!stored.contains(token)) }
        let retry = try await Self.refresh(issuer, original)
        #expect(retry["refresh_token"] == second["refresh_token"])
        try await store.close()
    }

    /// `store_tokens: plain` keeps the tokens as they are (beside their digests), as it says;
    /// the default keeps none of them.
    @Test(arguments: [IssuerOptions.StorageForm.plain, .hashed])
    func storeTokensDoesWhatItSays(_ form: IssuerOptions.StorageForm) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issuer-\(UUID().uuidString).sqlite")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try await SQLiteIssuerStore.open(path: path)
        let issuer = try await Flow.makeIssuer(store: store) { $0.storeTokens = form }
        let (access, refresh) = try await Self.tokens(issuer)
        let connection = try await SQLiteConnection.open(storage: .file(path: path))
        var stored = ""
        for table in ["tokens", "refresh_tokens"] {
            for row in try await connection.query("SELECT body FROM \(table)") {
                stored += (row.column("body")?.string ?? "") + "\n"
            }
        }
        try await connection.close()
        #expect(stored.contains(access) == (form == .plain))
        #expect(stored.contains(refresh) == (form == .plain))
        try await store.close()
    }

    // MARK: - The gate in the same process

    /// A JWT access token of a revoked grant is refused by the in-process verifier at once, even
    /// when the verified token is cached; a restarted or other replica learns it from the store.
    @Test func theInProcessGateRefusesAJWTOfARevokedGrantAtOnce() async throws {
        let store = MemoryIssuerStore()
        let issuer = try await Self.makeIssuer(store: store)
        let source = IssuerVerificationSource(issuer: issuer, issuerName: "local", audiences: ["@team/orders"])
        func verifier(_ source: IssuerVerificationSource) -> TokenVerifier {
            TokenVerifier(issuers: [
                IssuerVerifier(
                    policy: IssuerPolicy(name: "local", issuer: "https://idp.test", audiences: ["@team/orders"]),
                    keys: source,
                    introspection: source,
                    revocations: source
                )
            ])
        }
        let gate = verifier(source)
        let (access, refresh) = try await Self.tokens(issuer)
        let before = await gate.verify(access)
        #expect((try? before.get())?.grantID != nil, "the JWT names its grant")
        #expect((try? await gate.verify(access).get()) != nil, "and is cached")
        _ = await Flow.post(issuer, "/oauth2/revoke", [("token", refresh)], authorization: Flow.webBasic)
        guard case .failure(let failure) = await gate.verify(access) else {
            Issue.record("a JWT of a revoked grant passed")
            return
        }
        #expect(failure.code == .inactive)

        // Another replica on the same store learns it on its next read of the revoked grants.
        let replica = try await OAuthIssuer.start(options: issuer.options, store: store)
        let replicaGate = verifier(IssuerVerificationSource(issuer: replica, issuerName: "local", audiences: []))
        #expect((try? await replicaGate.verify(access).get()) != nil, "before the replica has read the store")
        try await replica.refreshRevokedGrants()
        #expect((try? await replicaGate.verify(access).get()) == nil, "after it has")
    }

    /// OpenID Connect Core §3.1.3.6: `at_hash` is the left half of the hash of the ID token's
    /// `alg`: SHA-256, SHA-384 or SHA-512 as the algorithm's name says, SHA-512 for EdDSA
    /// (Ed25519).
    @Test(arguments: SigningKey.Algorithm.allCases)
    func atHashUsesTheHashOfTheSigningAlgorithm(_ algorithm: SigningKey.Algorithm) async throws {
        let issuer = try await Flow.makeIssuer(algorithm: algorithm)
        let code = try #require(try await Flow.signInAndConsent(issuer).0["code"])
        let answer = try Flow.json(try await Flow.exchange(issuer, code: code))
        let access = Array(try #require(answer["access_token"]?.stringValue).utf8)
        let claims = try Flow.claims(ofJWT: try #require(answer["id_token"]?.stringValue))
        let digest: [UInt8] =
            switch algorithm {
            case .eddsa, .rs512, .ps512, .es512: Array(SHA512.hash(data: access))
            case .rs384, .ps384, .es384: Array(SHA384.hash(data: access))
            case .rs256, .ps256, .es256: Array(SHA256.hash(data: access))
            }
        #expect(claims["at_hash"]?.stringValue == Base64URL.encode(digest.prefix(digest.count / 2)))
    }

    /// Revoking one JWT access token (RFC 7009) reaches the gate in the process too, by its
    /// `jti`; the client's other tokens keep working.
    @Test func theInProcessGateRefusesARevokedJWTAccessTokenAtOnce() async throws {
        let issuer = try await Self.makeIssuer()
        let source = IssuerVerificationSource(issuer: issuer, issuerName: "local", audiences: ["@team/orders"])
        let gate = TokenVerifier(issuers: [
            IssuerVerifier(
                policy: IssuerPolicy(name: "local", issuer: "https://idp.test", audiences: ["@team/orders"]),
                keys: source,
                introspection: source,
                revocations: source
            )
        ])
        func mint() async throws -> String {
            let answer = await Flow.post(
                issuer,
                "/oauth2/token",
                [("grant_type", "client_credentials")],
                authorization: Self.machineBasic
            )
            return try #require(try Flow.json(answer)["access_token"]?.stringValue)
        }
        let first = try await mint()
        let second = try await mint()
        #expect((try? await gate.verify(first).get()) != nil)
        let revoked = await Flow.post(issuer, "/oauth2/revoke", [("token", first)], authorization: Self.machineBasic)
        #expect(revoked.head.status == .ok)
        guard case .failure(let failure) = await gate.verify(first) else {
            Issue.record("a revoked JWT passed")
            return
        }
        #expect(failure.code == .inactive)
        #expect((try? await gate.verify(second).get()) != nil, "the client's other token still passes")
    }
}
