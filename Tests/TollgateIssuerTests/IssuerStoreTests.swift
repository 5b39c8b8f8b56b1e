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
    }

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
        }
    }

    /// Runs `body` on a fresh store of `backend`, and closes it whatever happens.
    static func with(_ backend: Backend, _ body: (any IssuerStore) async throws -> Void) async throws {
        let store = try await open(backend)
        do {
            try await body(store)
        } catch {
            try? await (store as? SQLiteIssuerStore)?.close()
            throw error
        }
        try await (store as? SQLiteIssuerStore)?.close()
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

    @Test(arguments: Backend.allCases)
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

    @Test(arguments: Backend.allCases)
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

    @Test(arguments: Backend.allCases)
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

    @Test(arguments: Backend.allCases)
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

    @Test(arguments: Backend.allCases)
    func expiredRecordsAreSwept(_ backend: Backend) async throws {
        try await Self.with(backend) { store in
            try await store.saveRefreshToken(Self.refresh("old", expiresAt: 10))
            try await store.saveRefreshToken(Self.refresh("new", expiresAt: 4_000_000_000))
            #expect(try await store.deleteExpired(before: 100) >= 1)
            #expect(try await store.refreshToken(digest: "old") == nil)
            #expect(try await store.refreshToken(digest: "new") != nil)
        }
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
