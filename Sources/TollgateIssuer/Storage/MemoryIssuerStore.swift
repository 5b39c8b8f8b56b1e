import Synchronization

/// The issuer's state in memory, for tests and for a throwaway demo: nothing survives a restart.
public final class MemoryIssuerStore: IssuerStore {
    private struct State {
        var clients: [String: RegisteredClient] = [:]
        var keys: [StoredSigningKey] = []
        var tokens: [String: TokenRecord] = [:]
    }

    private let state = Mutex(State())

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

    public func saveToken(_ token: TokenRecord) async throws {
        state.withLock { $0.tokens[token.digest] = token }
    }

    public func token(digest: String) async throws -> TokenRecord? { state.withLock { $0.tokens[digest] } }

    public func revokeToken(digest: String) async throws -> Bool {
        state.withLock { state in
            guard state.tokens[digest] != nil else { return false }
            state.tokens[digest]?.revoked = true
            return true
        }
    }

    public func deleteExpired(before now: Int) async throws -> Int {
        state.withLock { state in
            let expired = state.tokens.filter { $0.value.expiresAt < now }.map(\.key)
            for digest in expired { state.tokens.removeValue(forKey: digest) }
            return expired.count
        }
    }
}
