import Foundation
import Testing
import TollgateIssuer

/// The storage protocol's promises, held by every backend: records round-trip, a code redeems
/// once, a refresh token rotates once however many ask at the same moment, reuse revokes the
/// family, expired records are swept, and (SQLite) everything survives a reopen.
@Suite struct IssuerStoreTests {
    enum Backend: String, CaseIterable, Sendable {
        case memory
        case sqlite
        case postgres
    }

    /// PostgreSQL joins when the test server is there (always under scripts/test.sh, where its
    /// absence fails `thePostgresServerIsThereWhenTheTestScriptRuns`).
    static let backends: [Backend] = [.memory, .sqlite] + (PostgresTestDatabase.isConfigured ? [.postgres] : [])

    static func open(_ backend: Backend, path: String? = nil) async throws -> any IssuerStore {
        switch backend {
        case .memory: MemoryIssuerStore()
        case .sqlite:
            try await SQLiteIssuerStore.open(
                path: path
                    ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                        "issuer-\(UUID().uuidString).sqlite"
                    ).path
            )
        case .postgres:
            try await PostgresIssuerStore.open(try await PostgresTestDatabase.create())
        }
    }

    static func close(_ store: any IssuerStore) async throws {
        try await (store as? SQLiteIssuerStore)?.close()
        await (store as? PostgresIssuerStore)?.close()
    }

    /// Runs `body` on a fresh store of `backend`, and closes it whatever happens.
    static func with(_ backend: Backend, _ body: (any IssuerStore) async throws -> Void) async throws {
        let store = try await open(backend)
        do {
            try await body(store)
        } catch {
            try? await close(store)
            throw error
        }
        try await close(store)
    }

    @Test func thePostgresServerIsThereWhenTheTestScriptRuns() {
        #expect(!PostgresTestDatabase.isRequired || PostgresTestDatabase.isConfigured)
    }

    static func refresh(
        _ digest: String,
        family: String = "family-1",
        generation: Int = 0,
        expiresAt: Int = 4_000_000_000
    )
        -> RefreshTokenRecord
    {
        RefreshTokenRecord(
            digest: digest,
            familyID: family,
            generation: generation,
            clientID: "@team/web",
            username: "ada",
            scopes: ["openid", "offline_access"],
            resource: nil,
            authenticatedAt: 1,
            expiresAt: expiresAt,
            spentAt: nil,
            successorAnswer: nil,
            successorDigest: nil,
            revoked: false
        )
    }

    @Test(arguments: backends)
    func recordsRoundTrip(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            let client = RegisteredClient(
                id: "@team/web",
                kind: .web,
                secret: .hashing("s"),
                redirectURIs: ["https://a/cb"],
                scopes: ["openid"]
            )
            try await store.saveClient(client)
            #expect(try await store.client(id: "@team/web") == client)
            #expect(try await store.client(id: "nobody") == nil)
            let token = TokenRecord(
                digest: "d1",
                kind: .access,
                clientID: "@team/web",
                subject: "ada",
                scope: ["openid"],
                audience: nil,
                issuedAt: 1,
                expiresAt: 4_000_000_000,
                familyID: "f"
            )
            try await store.saveToken(token)
            #expect(try await store.token(digest: "d1") == token)
            #expect(try await store.revokeToken(digest: "d1"))
            #expect(try await store.token(digest: "d1")?.revoked == true)
            #expect(try await store.revokeToken(digest: "nothing") == false)
            try await store.saveConsent(username: "ada", clientID: "@team/web", scopes: ["openid"])
            try await store.saveConsent(username: "ada", clientID: "@team/web", scopes: ["email"])
            #expect(try await store.consentedScopes(username: "ada", clientID: "@team/web") == ["openid", "email"])
        }
    }

    @Test(arguments: backends)
    func fiftyConcurrentRedemptionsOfACodeHaveOneWinner(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveCode(
                AuthorizationCodeRecord(
                    digest: "code",
                    clientID: "@team/web",
                    redirectURI: "https://a/cb",
                    username: "ada",
                    scopes: ["openid"],
                    authenticatedAt: 1,
                    expiresAt: 4_000_000_000,
                    redeemed: false,
                    issuedTokenDigests: []
                )
            )
            let fresh = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 { group.addTask { try await store.redeemCode(digest: "code")?.redeemed == false } }
                var count = 0
                for try await won in group where won { count += 1 }
                return count
            }
            #expect(fresh == 1)
        }
    }

    @Test(arguments: backends)
    func fiftyConcurrentRotationsHaveOneWinnerAndTheRestGetItsAnswer(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveRefreshToken(Self.refresh("r0"))
            let outcomes = try await withThrowingTaskGroup(of: RefreshRotation.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await store.rotateRefreshToken(
                            digest: "r0",
                            clientID: "@team/web",
                            successor: Self.refresh("r1-\(index)", generation: 1),
                            answer: "answer-\(index)",
                            now: 100,
                            grace: 30
                        )
                    }
                }
                var all: [RefreshRotation] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            let rotated = outcomes.filter { $0 == .rotated }.count
            #expect(rotated == 1)
            var replays = Set<String>()
            for case .replayWithinGrace(let answer) in outcomes { replays.insert(answer) }
            #expect(replays.count == 1, "every loser gets the one answer the winner gave")
            #expect(outcomes.count == 50)
        }
    }

    @Test(arguments: backends)
    func reuseAfterTheGraceWindowRevokesTheFamilyAndItsAccessTokens(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveRefreshToken(Self.refresh("r0"))
            try await store.saveToken(
                TokenRecord(
                    digest: "a0",
                    kind: .access,
                    clientID: "@team/web",
                    subject: "ada",
                    scope: [],
                    audience: nil,
                    issuedAt: 1,
                    expiresAt: 4_000_000_000,
                    familyID: "family-1"
                )
            )
            let first = try await store.rotateRefreshToken(
                digest: "r0",
                clientID: "@team/web",
                successor: Self.refresh("r1", generation: 1),
                answer: "a",
                now: 100,
                grace: 30
            )
            #expect(first == .rotated)
            let other = try await store.rotateRefreshToken(
                digest: "r0",
                clientID: "@team/other",
                successor: Self.refresh("x", generation: 1),
                answer: "x",
                now: 101,
                grace: 30
            )
            #expect(other == .refused(familyRevoked: false), "another client's attempt reveals nothing")
            let late = try await store.rotateRefreshToken(
                digest: "r0",
                clientID: "@team/web",
                successor: Self.refresh("r2", generation: 1),
                answer: "b",
                now: 200,
                grace: 30
            )
            #expect(late == .refused(familyRevoked: true))
            #expect(try await store.refreshToken(digest: "r1")?.revoked == true)
            #expect(try await store.token(digest: "a0")?.revoked == true)
        }
    }

    @Test(arguments: backends)
    func expiredRecordsAreSwept(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveRefreshToken(Self.refresh("old", expiresAt: 10))
            try await store.saveRefreshToken(Self.refresh("new", expiresAt: 4_000_000_000))
            #expect(try await store.deleteExpired(before: 100) >= 1)
            #expect(try await store.refreshToken(digest: "old") == nil)
            #expect(try await store.refreshToken(digest: "new") != nil)
        }
    }

    @Test(arguments: backends)
    func anApprovedDeviceCodeIsSpentByExactlyOneOfFiftyPolls(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            let record = DeviceAuthorizationRecord(
                digest: "device-1",
                userCode: "BCDFGHJK",
                clientID: "@team/tv",
                scopes: ["openid"],
                interval: 5,
                expiresAt: 4_000_000_000
            )
            #expect(try await store.saveDeviceAuthorization(record))
            var collision = record
            collision.digest = "device-2"
            #expect(try await !store.saveDeviceAuthorization(collision), "a user code in use is never taken over")
            #expect(try await store.deviceAuthorization(userCode: "BCDFGHJK") == record)
            #expect(
                try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/other", now: 10) == nil
            )
            #expect(
                try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/tv", now: 10)?.status
                    == .pending
            )
            #expect(
                try await store.decideDeviceAuthorization(
                    userCode: "BCDFGHJK",
                    username: "ada",
                    authenticatedAt: 11,
                    now: 11
                )
            )
            #expect(
                try await !store.decideDeviceAuthorization(
                    userCode: "BCDFGHJK",
                    username: nil,
                    authenticatedAt: 12,
                    now: 12
                ),
                "a decided request cannot be decided again"
            )
            let approvals = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/tv", now: 30)?
                            .status == .approved
                    }
                }
                var count = 0
                for try await approved in group where approved { count += 1 }
                return count
            }
            #expect(approvals == 1)
            #expect(try await store.deviceAuthorization(userCode: "BCDFGHJK")?.status == .redeemed)
            #expect(try await store.deleteExpired(before: 4_000_000_001) >= 1)
            #expect(try await store.deviceAuthorization(userCode: "BCDFGHJK") == nil)
        }
    }

    @Test(arguments: backends)
    func revokingAClientRevokesItsTokensAndNoOneElses(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveClient(RegisteredClient(id: "@team/web", kind: .web, secret: .hashing("s")))
            for (digest, client) in [("mine", "@team/web"), ("theirs", "@team/other")] {
                try await store.saveToken(
                    TokenRecord(
                        digest: digest,
                        kind: .access,
                        clientID: client,
                        subject: "ada",
                        scope: [],
                        audience: nil,
                        issuedAt: 1,
                        expiresAt: 4_000_000_000
                    )
                )
            }
            try await store.saveRefreshToken(Self.refresh("r0"))
            #expect(try await store.revokeClient(id: "@team/web"))
            #expect(try await !store.revokeClient(id: "nobody"))
            #expect(try await store.client(id: "@team/web")?.revoked == true)
            #expect(try await store.token(digest: "mine")?.revoked == true)
            #expect(try await store.token(digest: "theirs")?.revoked == false)
            #expect(try await store.refreshToken(digest: "r0")?.revoked == true)
        }
    }

    @Test(arguments: backends)
    func signingKeysAreSavedReplacedAndDeleted(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            var key = StoredSigningKey(
                keyID: "k1",
                algorithm: "ES256",
                privateKeyDER: [1, 2],
                stage: .next,
                createdAt: 1
            )
            try await store.saveSigningKey(key)
            key.stage = .active
            try await store.saveSigningKey(key)
            #expect(try await store.signingKeys() == [key])
            try await store.deleteSigningKey(keyID: "k1")
            #expect(try await store.signingKeys().isEmpty)
        }
    }

    /// Two issuer replicas on one PostgreSQL database: fifty refreshes of one token, spread
    /// over both, rotate it exactly once.
    @Test(.enabled(if: PostgresTestDatabase.isConfigured))
    func twoReplicasOnOneDatabaseRotateATokenOnce() async throws {
        let database = try await PostgresTestDatabase.create()
        let first = try await PostgresIssuerStore.open(database)
        let second = try await PostgresIssuerStore.open(database)
        try await first.saveRefreshToken(Self.refresh("r0"))
        let outcomes = try await withThrowingTaskGroup(of: RefreshRotation.self) { group in
            for index in 0..<50 {
                let store = index % 2 == 0 ? first : second
                group.addTask {
                    try await store.rotateRefreshToken(
                        digest: "r0",
                        clientID: "@team/web",
                        successor: Self.refresh("r1-\(index)", generation: 1),
                        answer: "answer-\(index)",
                        now: 100,
                        grace: 30
                    )
                }
            }
            var all: [RefreshRotation] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes.filter { $0 == .rotated }.count == 1)
        var replays = Set<String>()
        for case .replayWithinGrace(let answer) in outcomes { replays.insert(answer) }
        #expect(replays.count == 1)
        await first.close()
        await second.close()
        try await PostgresTestDatabase.drop(database)
    }

    @Test func sqliteKeepsEverythingAcrossAReopen() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issuer-\(UUID().uuidString).sqlite")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try await SQLiteIssuerStore.open(path: path)
        try await first.saveClient(RegisteredClient(id: "@team/svc", kind: .machine, secret: .hashing("s")))
        try await first.saveUser(IssuerUser(username: "ada", passwordHash: "scrypt$x", claims: ["name": "Ada"]))
        try await first.saveConsent(username: "ada", clientID: "@team/svc", scopes: ["openid"])
        let keys = try await KeyRing.load(from: first, algorithm: .es256, now: 1)
        try await first.saveRefreshToken(Self.refresh("r0"))
        try await first.close()
        let second = try await SQLiteIssuerStore.open(path: path)
        #expect(try await second.client(id: "@team/svc")?.kind == .machine)
        #expect(try await second.user(username: "ada")?.claims["name"] == "Ada")
        #expect(try await second.consentedScopes(username: "ada", clientID: "@team/svc") == ["openid"])
        #expect(try await second.refreshToken(digest: "r0") != nil)
        let reloaded = try await KeyRing.load(from: second, algorithm: .es256, now: 2)
        #expect(reloaded.snapshot.active.keyID == keys.snapshot.active.keyID, "no new key on restart")
        try await second.close()
    }
}
