import Synchronization
import TollgateCore

/// The issuer's signing keys: loaded from storage, one generated on first start, the active one
/// signing, every published one (next, active, retired) in the JWKS. Immutable snapshots, swapped
/// whole, so signing and publishing never take more than a short lock.
public final class KeyRing: Sendable {
    public struct Snapshot: Sendable {
        public let active: SigningKey
        public let published: [SigningKey]
        /// The JWKS document, serialised once per change.
        public let document: String
        /// The same keys as the verifier reads them.
        public let keySet: JSONWebKeySet
    }

    private let current: Mutex<Snapshot>

    private init(snapshot: Snapshot) {
        current = Mutex(snapshot)
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Loads the keys from `store`, generating and storing an active `algorithm` key when none is.
    public static func load(
        from store: any IssuerStore,
        algorithm: SigningKey.Algorithm,
        now: Int
    ) async throws
        -> KeyRing
    {
        var stored = try await store.signingKeys()
        if !stored.contains(where: { $0.stage == .active }) {
            let key = try SigningKey.generate(algorithm)
            let record = StoredSigningKey(
                keyID: key.keyID,
                algorithm: key.algorithm.rawValue,
                privateKeyDER: key.privateKeyDER,
                stage: .active,
                createdAt: now
            )
            try await store.saveSigningKey(record)
            stored.append(record)
        }
        return KeyRing(snapshot: try makeSnapshot(stored))
    }

    static func makeSnapshot(_ stored: [StoredSigningKey]) throws -> Snapshot {
        var published: [SigningKey] = []
        var active: SigningKey?
        for record in stored.sorted(by: { $0.createdAt > $1.createdAt }) {
            guard let algorithm = SigningKey.Algorithm(rawValue: record.algorithm) else { continue }
            let key = try SigningKey(algorithm: algorithm, der: record.privateKeyDER)
            published.append(key)
            if record.stage == .active && active == nil { active = key }
        }
        guard let active else { throw IssuerError.noActiveKey }
        let document = JSONValue.object(["keys": .array(published.map(\.publicJWK))]).serialized()
        let keySet = try JSONWebKeySet.parse(Array(document.utf8))
        return Snapshot(active: active, published: published, document: document, keySet: keySet)
    }
}

enum IssuerError: Error {
    case noActiveKey
}
