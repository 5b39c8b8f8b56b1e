import Synchronization
import TollgateCore

/// The issuer's state in memory, for tests and for a throwaway demo: nothing survives a restart.
public final class MemoryIssuerStore: IssuerStore {
    fileprivate struct State {
        var clients: [String: RegisteredClient] = [:]
        var keys: [StoredSigningKey] = []
        var tokens: [String: TokenRecord] = [:]
        var users: [String: IssuerUser] = [:]
        var sessions: [String: LoginSession] = [:]
        var pending: [String: PendingAuthorization] = [:]
        var consents: [String: Set<String>] = [:]
        var codes: [String: AuthorizationCodeRecord] = [:]
        var refreshTokens: [String: RefreshTokenRecord] = [:]
        var devices: [String: DeviceAuthorizationRecord] = [:]
        /// User code → device code digest.
        var userCodes: [String: String] = [:]
        var revokedGrants: [String: RevokedGrant] = [:]
        var counts: [String: (count: EventCount, expiresAt: Int)] = [:]

        func grantRevoked(_ grantID: String?) -> Bool { grantID.map { revokedGrants[$0] != nil } ?? false }
    }

    fileprivate let state = Mutex(State())
    private let gate = SerialGate()

    public init() {}

    public func client(id: String) async throws -> RegisteredClient? { state.withLock { $0.clients[id] } }

    public func saveClient(_ client: RegisteredClient) async throws {
        state.withLock { $0.clients[client.id] = client }
    }

    public func clients() async throws -> [RegisteredClient] {
        state.withLock { Array($0.clients.values) }.sorted { $0.id < $1.id }
    }

    public func signingKeys() async throws -> [StoredSigningKey] { state.withLock { $0.keys } }

    public func saveSigningKey(_ key: StoredSigningKey) async throws {
        state.withLock { state in
            if let index = state.keys.firstIndex(where: { $0.keyID == key.keyID }) {
                state.keys[index] = key
            } else {
                state.keys.append(key)
            }
        }
    }

    public func deleteSigningKey(keyID: String) async throws {
        state.withLock { $0.keys.removeAll { $0.keyID == keyID } }
    }

    public func saveToken(_ token: TokenRecord) async throws {
        state.withLock { $0.tokens[token.digest] = token }
    }

    public func token(digest: String) async throws -> TokenRecord? {
        state.withLock { state in
            guard var token = state.tokens[digest] else { return nil }
            if state.grantRevoked(token.familyID) { token.revoked = true }
            return token
        }
    }

    public func revokeToken(digest: String) async throws -> Bool {
        state.withLock { state in
            guard state.tokens[digest] != nil else { return false }
            state.tokens[digest]?.revoked = true
            return true
        }
    }

    public func close() async throws {}

    public func deleteExpired(before now: Int, answersSpentBefore: Int) async throws -> Int {
        state.withLock { state in
            for (digest, token) in state.refreshTokens where (token.spentAt ?? now) < answersSpentBefore {
                state.refreshTokens[digest]?.successorAnswer = nil
            }
            for (key, value) in state.revokedGrants where value.until < now {
                state.revokedGrants.removeValue(forKey: key)
            }
            for (key, value) in state.counts where value.expiresAt < now { state.counts.removeValue(forKey: key) }
            let expired = state.tokens.filter { $0.value.expiresAt < now }.map(\.key)
            for digest in expired { state.tokens.removeValue(forKey: digest) }
            var count = expired.count
            for (key, value) in state.codes where value.expiresAt < now {
                state.codes.removeValue(forKey: key)
                count += 1
            }
            for (key, value) in state.pending where value.expiresAt < now {
                state.pending.removeValue(forKey: key)
                count += 1
            }
            for (key, value) in state.sessions where value.expiresAt < now {
                state.sessions.removeValue(forKey: key)
                count += 1
            }
            for (key, value) in state.refreshTokens where value.expiresAt < now {
                state.refreshTokens.removeValue(forKey: key)
                count += 1
            }
            for (key, value) in state.devices where value.expiresAt < now {
                state.devices.removeValue(forKey: key)
                state.userCodes.removeValue(forKey: value.userCode)
                count += 1
            }
            return count
        }
    }

    public func user(username: String) async throws -> IssuerUser? { state.withLock { $0.users[username] } }

    public func saveUser(_ user: IssuerUser) async throws { state.withLock { $0.users[user.username] = user } }

    public func saveSession(_ session: LoginSession) async throws {
        state.withLock { $0.sessions[session.digest] = session }
    }

    public func session(digest: String) async throws -> LoginSession? { state.withLock { $0.sessions[digest] } }

    public func deleteSession(digest: String) async throws {
        _ = state.withLock { $0.sessions.removeValue(forKey: digest) }
    }

    public func savePendingAuthorization(_ pending: PendingAuthorization) async throws {
        state.withLock { $0.pending[pending.id] = pending }
    }

    public func pendingAuthorization(id: String) async throws -> PendingAuthorization? {
        state.withLock { $0.pending[id] }
    }

    public func deletePendingAuthorization(id: String) async throws {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    public func consentedScopes(username: String, clientID: String) async throws -> Set<String> {
        state.withLock { $0.consents[username + "\u{0}" + clientID] ?? [] }
    }

    public func saveCode(_ code: AuthorizationCodeRecord) async throws {
        state.withLock { $0.codes[code.digest] = code }
    }

    public func saveRefreshToken(_ token: RefreshTokenRecord) async throws {
        state.withLock { $0.refreshTokens[token.digest] = token }
    }

    public func refreshToken(digest: String) async throws -> RefreshTokenRecord? {
        state.withLock { state in
            guard var token = state.refreshTokens[digest] else { return nil }
            if state.grantRevoked(token.familyID) { token.revoked = true }
            return token
        }
    }

    fileprivate static func revokeGrant(_ grantID: String, until: Int, now: Int, in state: inout State) {
        let previous = state.revokedGrants[grantID]
        state.revokedGrants[grantID] = RevokedGrant(
            grantID: grantID,
            revokedAt: previous?.revokedAt ?? now,
            until: max(until, previous?.until ?? until)
        )
        for (digest, token) in state.refreshTokens where token.familyID == grantID {
            state.refreshTokens[digest]?.revoked = true
            state.refreshTokens[digest]?.successorAnswer = nil
        }
        for (digest, token) in state.tokens where token.familyID == grantID {
            state.tokens[digest]?.revoked = true
        }
    }

    public func revokedGrants(since: Int, now: Int) async throws -> [RevokedGrant] {
        state.withLock { state in
            state.revokedGrants.values.filter { $0.revokedAt >= since && $0.until >= now }
        }
    }

    public func countEvent(key: String, now: Int, expiresAt: Int) async throws -> EventCount {
        state.withLock { state in
            var count = EventCount(count: 1, last: now)
            if let previous = state.counts[key], previous.expiresAt > now { count.count = previous.count.count + 1 }
            state.counts[key] = (count, expiresAt)
            return count
        }
    }

    public func eventCount(key: String, now: Int) async throws -> EventCount? {
        state.withLock { state in
            guard let entry = state.counts[key], entry.expiresAt > now else { return nil }
            return entry.count
        }
    }

    public func uncountEvent(key: String) async throws {
        state.withLock { state in
            if let entry = state.counts[key], entry.count.count > 0 {
                state.counts[key] = (EventCount(count: entry.count.count - 1, last: entry.count.last), entry.expiresAt)
            }
        }
    }

    public func resetEvents(key: String) async throws {
        _ = state.withLock { $0.counts.removeValue(forKey: key) }
    }

    // MARK: - Transactions

    /// Transactions run one at a time; each primitive takes the state's lock. A rule's body
    /// never fails midway here (nothing in memory throws), so none is left half done.
    public func transaction<T: Sendable>(_ body: @Sendable (any IssuerTransaction) async throws -> T) async throws -> T
    {
        try await gate.run { try await body(Transaction(store: self)) }
    }

    struct Transaction: IssuerTransaction {
        let store: MemoryIssuerStore

        func find<T: Decodable & Sendable>(_ type: T.Type, _ kind: RecordKind, _ key: String) async throws -> T? {
            store.state.withLock { state -> Any? in
                switch kind {
                case .client: state.clients[key]
                case .code: state.codes[key]
                case .device: state.devices[key]
                case .userCode: state.userCodes[key]
                }
            } as? T
        }

        func put<T: Encodable & Sendable>(_ value: T, _ kind: RecordKind, _ key: String, expiresAt: Int?) async throws {
            store.state.withLock { state in
                switch kind {
                case .client: state.clients[key] = value as? RegisteredClient
                case .code: state.codes[key] = value as? AuthorizationCodeRecord
                case .device: state.devices[key] = value as? DeviceAuthorizationRecord
                case .userCode: state.userCodes[key] = value as? String
                }
            }
        }

        func insertNew<T: Encodable & Sendable>(
            _ value: T,
            _ kind: RecordKind,
            _ key: String,
            expiresAt: Int?
        )
            async throws -> Bool
        {
            let taken = store.state.withLock { state -> Bool in
                switch kind {
                case .client: state.clients[key] != nil
                case .code: state.codes[key] != nil
                case .device: state.devices[key] != nil
                case .userCode: state.userCodes[key] != nil
                }
            }
            if taken { return false }
            try await put(value, kind, key, expiresAt: expiresAt)
            return true
        }

        func consent(username: String, clientID: String) async throws -> Set<String>? {
            store.state.withLock { $0.consents[username + "\u{0}" + clientID] }
        }

        func putConsent(username: String, clientID: String, scopes: Set<String>) async throws {
            store.state.withLock { $0.consents[username + "\u{0}" + clientID] = scopes }
        }

        func refreshToken(digest: String) async throws -> (token: RefreshTokenRecord, successorUsed: Bool)? {
            store.state.withLock { state in
                guard var token = state.refreshTokens[digest] else { return nil }
                if state.grantRevoked(token.familyID) { token.revoked = true }
                let used = token.successorDigest.map { state.refreshTokens[$0]?.spentAt != nil } ?? false
                return (token, used)
            }
        }

        func spendRefreshToken(
            digest: String,
            clientID: String,
            now: Int,
            successorDigest: String,
            answer: String?
        ) async throws -> Bool {
            store.state.withLock { state in
                guard let current = state.refreshTokens[digest], current.clientID == clientID, current.spentAt == nil,
                    !current.revoked, !state.grantRevoked(current.familyID), current.expiresAt > now
                else { return false }
                state.refreshTokens[digest]?.spentAt = now
                state.refreshTokens[digest]?.successorAnswer = answer
                state.refreshTokens[digest]?.successorDigest = successorDigest
                return true
            }
        }

        func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
            store.state.withLock { $0.refreshTokens[token.digest] = token }
        }

        func revokeGrant(_ grantID: String, until: Int, now: Int) async throws {
            store.state.withLock { MemoryIssuerStore.revokeGrant(grantID, until: until, now: now, in: &$0) }
        }

        func revokeTokens(ofClient clientID: String, now: Int) async throws {
            store.state.withLock { state in
                var grants: [String: Int] = [:]
                for token in state.tokens.values where token.clientID == clientID {
                    if let grant = token.familyID { grants[grant] = max(grants[grant] ?? 0, token.expiresAt) }
                }
                for token in state.refreshTokens.values where token.clientID == clientID {
                    grants[token.familyID] = max(grants[token.familyID] ?? 0, token.expiresAt)
                }
                for (grant, until) in grants {
                    MemoryIssuerStore.revokeGrant(grant, until: until, now: now, in: &state)
                }
                for (digest, token) in state.tokens where token.clientID == clientID {
                    state.tokens[digest]?.revoked = true
                }
                for (digest, token) in state.refreshTokens where token.clientID == clientID {
                    state.refreshTokens[digest]?.revoked = true
                    state.refreshTokens[digest]?.successorAnswer = nil
                }
            }
        }
    }
}
