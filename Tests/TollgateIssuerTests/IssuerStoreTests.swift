import Foundation
import Testing
import TollgateCore
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
        try await store.close()
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
                    familyID: "grant-1"
                )
            )
            let fresh = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let outcome = try await store.redeemCode(digest: "code", now: 100, grantUntil: 5000) { _ in true
                        }
                        if case .redeemed = outcome { return true }
                        return false
                    }
                }
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
                            reuseInterval: 30,
                            grantUntil: 5000
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
                reuseInterval: 30,
                grantUntil: 5000
            )
            #expect(first == .rotated)
            let other = try await store.rotateRefreshToken(
                digest: "r0",
                clientID: "@team/other",
                successor: Self.refresh("x", generation: 1),
                answer: "x",
                now: 101,
                reuseInterval: 30,
                grantUntil: 5000
            )
            #expect(other == .refused(familyRevoked: false), "another client's attempt reveals nothing")
            let late = try await store.rotateRefreshToken(
                digest: "r0",
                clientID: "@team/web",
                successor: Self.refresh("r2", generation: 1),
                answer: "b",
                now: 200,
                reuseInterval: 30,
                grantUntil: 5000
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
            #expect(try await store.deleteExpired(before: 100, answersSpentBefore: 0) >= 1)
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
                try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/other", now: 10) { _ in
                    true
                } == nil
            )
            #expect(
                try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/tv", now: 10) { _ in true
                }?.status
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
            // A poll the rules refuse changes nothing: the approval is still there to spend.
            let refused = try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/tv", now: 29) {
                _ in false
            }
            #expect(refused?.status == .approved)
            let approvals = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        try await store.pollDeviceAuthorization(digest: "device-1", clientID: "@team/tv", now: 30) {
                            _ in true
                        }?.status == .approved
                    }
                }
                var count = 0
                for try await approved in group where approved { count += 1 }
                return count
            }
            #expect(approvals == 1)
            #expect(try await store.deviceAuthorization(userCode: "BCDFGHJK")?.status == .redeemed)
            #expect(try await store.deleteExpired(before: 4_000_000_001, answersSpentBefore: 0) >= 1)
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
            #expect(try await store.revokeClient(id: "@team/web", now: 50))
            #expect(try await !store.revokeClient(id: "nobody", now: 50))
            #expect(try await store.revokedGrants(since: 0, now: 50).map(\.grantID) == ["family-1"])
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
                        reuseInterval: 30,
                        grantUntil: 5000
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
        try await first.close()
        try await second.close()
        try await PostgresTestDatabase.drop(database)
    }

    @Test func sqliteKeepsEverythingAcrossAReopen() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issuer-\(UUID().uuidString).sqlite")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try await SQLiteIssuerStore.open(path: path)
        try await first.saveClient(RegisteredClient(id: "@team/svc", kind: .machine, secret: .hashing("s")))
        try await first.saveUser(
            IssuerUser(username: "ada", passwordHash: "scrypt$x", claims: ["name": .string("Ada")])
        )
        try await first.saveConsent(username: "ada", clientID: "@team/svc", scopes: ["openid"])
        let keys = try await KeyRing.load(from: first, algorithm: .es256, now: 1)
        try await first.saveRefreshToken(Self.refresh("r0"))
        try await first.close()
        let second = try await SQLiteIssuerStore.open(path: path)
        #expect(try await second.client(id: "@team/svc")?.kind == .machine)
        #expect(try await second.user(username: "ada")?.claims["name"] == .string("Ada"))
        #expect(try await second.consentedScopes(username: "ada", clientID: "@team/svc") == ["openid"])
        #expect(try await second.refreshToken(digest: "r0") != nil)
        let reloaded = try await KeyRing.load(from: second, algorithm: .es256, now: 2)
        #expect(reloaded.snapshot.active.keyID == keys.snapshot.active.keyID, "no new key on restart")
        try await second.close()
    }

    static func code(_ digest: String, grant: String? = "grant-1") -> AuthorizationCodeRecord {
        AuthorizationCodeRecord(
            digest: digest,
            clientID: "@team/web",
            redirectURI: "https://a/cb",
            username: "ada",
            scopes: ["openid"],
            authenticatedAt: 1,
            expiresAt: 4_000_000_000,
            redeemed: false,
            familyID: grant
        )
    }

    static func access(_ digest: String, grant: String?) -> TokenRecord {
        TokenRecord(
            digest: digest,
            kind: .access,
            clientID: "@team/web",
            subject: "ada",
            scope: [],
            audience: nil,
            issuedAt: 1,
            expiresAt: 4_000_000_000,
            familyID: grant
        )
    }

    /// A redemption the rules refuse leaves the code unspent; a second redemption revokes the
    /// grant, and so every token stamped with it, even one saved after the replay was seen
    /// (the first redemption's tokens racing the replay).
    @Test(arguments: backends)
    func aRefusedRedemptionSpendsNothingAndAReplayRevokesTheGrantBeforeAndAfter(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveCode(Self.code("c1"))
            let refused = try await store.redeemCode(digest: "c1", now: 10, grantUntil: 5000) { _ in false }
            #expect(refused == .refused(Self.code("c1")))
            #expect(try await store.redeemCode(digest: "nothing", now: 10, grantUntil: 5000) { _ in true } == .unknown)
            let first = try await store.redeemCode(digest: "c1", now: 11, grantUntil: 5000) { _ in true }
            #expect(first == .redeemed(Self.code("c1")))
            try await store.saveToken(Self.access("before", grant: "grant-1"))
            try await store.saveToken(Self.access("other", grant: "grant-2"))
            let replay = try await store.redeemCode(digest: "c1", now: 12, grantUntil: 5000) { _ in true }
            guard case .replayed = replay else {
                Issue.record("expected a replay, got \(replay)")
                return
            }
            try await store.saveToken(Self.access("after", grant: "grant-1"))
            try await store.saveRefreshToken(Self.refresh("r-after", family: "grant-1"))
            #expect(try await store.token(digest: "before")?.revoked == true)
            #expect(try await store.token(digest: "after")?.revoked == true)
            #expect(try await store.refreshToken(digest: "r-after")?.revoked == true)
            #expect(try await store.token(digest: "other")?.revoked == false)
            let rotation = try await store.rotateRefreshToken(
                digest: "r-after",
                clientID: "@team/web",
                successor: Self.refresh("r-next", family: "grant-1", generation: 1),
                answer: nil,
                now: 13,
                reuseInterval: 0,
                grantUntil: 5000
            )
            #expect(rotation == .refused(familyRevoked: false), "a revoked grant's refresh token does not rotate")
            #expect(
                try await store.revokedGrants(since: 0, now: 13)
                    == [RevokedGrant(grantID: "grant-1", revokedAt: 12, until: 5000)]
            )
            #expect(try await store.revokedGrants(since: 13, now: 13).isEmpty)
            #expect(try await store.revokedGrants(since: 0, now: 5001).isEmpty, "past its last token, forgotten")
        }
    }

    /// Strict rotation (no retry answer kept): any reuse revokes the grant; with a window, the
    /// answer is kept until the sweep past the window drops it.
    @Test(arguments: backends)
    func strictRotationRevokesOnAnyReuseAndTheSweepDropsRetryAnswers(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveRefreshToken(Self.refresh("s0", family: "strict"))
            let first = try await store.rotateRefreshToken(
                digest: "s0",
                clientID: "@team/web",
                successor: Self.refresh("s1", family: "strict", generation: 1),
                answer: nil,
                now: 100,
                reuseInterval: 0,
                grantUntil: 5000
            )
            #expect(first == .rotated)
            let again = try await store.rotateRefreshToken(
                digest: "s0",
                clientID: "@team/web",
                successor: Self.refresh("s2", family: "strict", generation: 1),
                answer: nil,
                now: 100,
                reuseInterval: 0,
                grantUntil: 5000
            )
            #expect(again == .refused(familyRevoked: true))
            #expect(try await store.refreshToken(digest: "s1")?.revoked == true)

            try await store.saveRefreshToken(Self.refresh("w0", family: "window"))
            _ = try await store.rotateRefreshToken(
                digest: "w0",
                clientID: "@team/web",
                successor: Self.refresh("w1", family: "window", generation: 1),
                answer: "sealed",
                now: 100,
                reuseInterval: 30,
                grantUntil: 5000
            )
            _ = try await store.deleteExpired(before: 120, answersSpentBefore: 90)
            let kept = try await store.rotateRefreshToken(
                digest: "w0",
                clientID: "@team/web",
                successor: Self.refresh("w2", family: "window", generation: 1),
                answer: nil,
                now: 120,
                reuseInterval: 30,
                grantUntil: 5000
            )
            #expect(kept == .replayWithinGrace("sealed"))
            _ = try await store.deleteExpired(before: 131, answersSpentBefore: 101)
            let dropped = try await store.rotateRefreshToken(
                digest: "w0",
                clientID: "@team/web",
                successor: Self.refresh("w3", family: "window", generation: 1),
                answer: nil,
                now: 125,
                reuseInterval: 30,
                grantUntil: 5000
            )
            #expect(dropped == .refused(familyRevoked: true), "once swept, the answer is gone and reuse revokes")
        }
    }

    /// Event counts (the brute-force limits) add up across calls, restart after they expire and
    /// are reset on demand; concurrent counts are not lost.
    @Test(arguments: backends)
    func eventCountsAddUpExpireAndReset(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            #expect(try await store.eventCount(key: "k", now: 1) == nil)
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await store.countEvent(key: "k", now: 10, expiresAt: 100).count }
                }
                var all: [Int] = []
                for try await count in group { all.append(count) }
                return all.sorted()
            }
            #expect(counts == Array(1...20))
            #expect(try await store.eventCount(key: "k", now: 50) == EventCount(count: 20, last: 10))
            #expect(try await store.eventCount(key: "k", now: 100) == nil)
            #expect(try await store.countEvent(key: "k", now: 100, expiresAt: 200) == EventCount(count: 1, last: 100))
            try await store.resetEvents(key: "k")
            #expect(try await store.eventCount(key: "k", now: 101) == nil)
        }
    }

    /// A database written by the previous release (schema version 1, the retry answer kept in
    /// clear) opens with its data, and the clear answers are gone.
    @Test func aVersionOneSQLiteDatabaseIsMigratedWithItsData() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("issuer-\(UUID().uuidString).sqlite")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await SQLiteVersionOne.write(path: path)
        let store = try await SQLiteIssuerStore.open(path: path)
        #expect(try await store.client(id: "@team/svc")?.kind == .machine)
        #expect(try await store.signingKeys().map(\.keyID) == ["kid-1"])
        let refresh = try #require(try await store.refreshToken(digest: "r-spent"))
        #expect(refresh.familyID == "fam-1" && refresh.spentAt == 90)
        #expect(try await store.token(digest: "a-1")?.subject == "ada")
        let code = try #require(try await store.redeemCode(digest: "c-1", now: 1, grantUntil: 10) { _ in false })
        #expect(code == .refused(Self.code("c-1", grant: nil)), "a version 1 code, without a grant, still decodes")
        try await store.revokeGrant("fam-1", until: 5000, now: 100)
        #expect(try await store.token(digest: "a-1")?.revoked == true)
        try await store.close()
        #expect(
            try await SQLiteVersionOne.count(
                path: path,
                "SELECT 1 FROM refresh_tokens WHERE successor_answer IS NOT NULL"
            )
                == 0,
            "no answer kept in clear survives the migration"
        )
        let reopened = try await SQLiteIssuerStore.open(path: path)
        #expect(try await reopened.revokedGrants(since: 0, now: 100).map(\.grantID) == ["fam-1"])
        try await reopened.close()
    }

    /// A PostgreSQL database written by the previous release opens with its data (the consent
    /// keyed as it keyed it), and the retry answer kept in clear is gone.
    @Test(.enabled(if: PostgresTestDatabase.isConfigured))
    func aVersionOnePostgresDatabaseIsMigratedWithItsData() async throws {
        let database = try await PostgresTestDatabase.create()
        try await PostgresVersionOne.write(database)
        let store = try await PostgresIssuerStore.open(database)
        #expect(try await store.client(id: "@team/svc")?.kind == .machine)
        #expect(try await store.signingKeys().map(\.keyID) == ["kid-1"])
        #expect(try await store.consentedScopes(username: "ada", clientID: "@team/web") == ["openid"])
        let refresh = try #require(try await store.refreshToken(digest: "r-spent"))
        #expect(refresh.familyID == "fam-1" && refresh.spentAt == 90)
        #expect(refresh.successorAnswer == nil, "no answer kept in clear survives the migration")
        #expect(try await store.token(digest: "a-1")?.subject == "ada")
        #expect(try await store.revokeClient(id: "@team/svc", now: 100))
        try await store.revokeGrant("fam-1", until: 5000, now: 100)
        #expect(try await store.token(digest: "a-1")?.revoked == true)
        try await store.close()
        try await PostgresTestDatabase.drop(database)
    }

    /// The transaction primitives the rules are written over: find and put, insert only when
    /// new, the refresh token's compare-and-set (one winner of fifty), revoke by grant.
    @Test(arguments: backends)
    func theTransactionPrimitivesHoldTheirPromises(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            let code = Self.code("p1")
            try await store.transaction { tx in
                #expect(try await tx.find(AuthorizationCodeRecord.self, .code, "p1") == nil)
                try await tx.put(code, .code, "p1", expiresAt: code.expiresAt)
                #expect(try await tx.find(AuthorizationCodeRecord.self, .code, "p1") == code)
                #expect(try await tx.insertNew("d1", .userCode, "BCDFGHJK", expiresAt: 100))
                #expect(try await !tx.insertNew("d2", .userCode, "BCDFGHJK", expiresAt: 100), "taken")
                #expect(try await tx.find(String.self, .userCode, "BCDFGHJK") == "d1")
                try await tx.putConsent(username: "ada", clientID: "@team/web", scopes: ["openid"])
                #expect(try await tx.consent(username: "ada", clientID: "@team/web") == ["openid"])
            }
            try await store.saveRefreshToken(Self.refresh("s0", family: "g-p"))
            let spends = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        try await store.transaction { tx in
                            try await tx.spendRefreshToken(
                                digest: "s0",
                                clientID: "@team/web",
                                now: 10,
                                successorDigest: "s1-\(index)",
                                answer: nil
                            )
                        }
                    }
                }
                var won = 0
                for try await spent in group where spent { won += 1 }
                return won
            }
            #expect(spends == 1)
            let spent = try await store.transaction { tx in try await tx.refreshToken(digest: "s0") }
            #expect(spent?.token.spentAt == 10 && spent?.successorUsed == false)
            try await store.transaction { tx in try await tx.revokeGrant("g-p", until: 500, now: 11) }
            #expect(try await store.refreshToken(digest: "s0")?.revoked == true)
        }
    }
}
