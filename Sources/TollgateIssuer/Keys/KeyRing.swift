import Synchronization
import TollgateCore

/// The issuer's signing keys: loaded from storage, one generated on first start, the active one
/// signing, every published one (next, active, retired) in the JWKS. Immutable snapshots, swapped
/// whole, so signing and publishing never take more than a short lock.
///
/// Rotation is staged so that no verifier ever sees a token signed by a key it has not fetched:
/// `rotate` stores a `next` key, published at once but not signing until it has been in the JWKS
/// for longer than the JWKS max-age plus one refresh interval (so every replica and every cache
/// has it); `advance` — run by every replica every refresh interval — then makes it active and
/// retires the old active key, which stays published until the last token it signed has expired,
/// and is then dropped.
public final class KeyRing: Sendable {
    public struct Snapshot: Sendable {
        /// The key of the issuer's own algorithm (`signing_algorithm`): access tokens, and ID
        /// tokens of clients that ask for no other.
        public let active: SigningKey
        /// The active key of each algorithm in use (a client's `id_token_signed_response_alg`).
        public let activeByAlgorithm: [SigningKey.Algorithm: SigningKey]
        public let published: [SigningKey]
        /// The JWKS document, serialised once per change.
        public let document: String
        /// The same keys as the verifier reads them.
        public let keySet: JSONWebKeySet
        /// The stored records this snapshot was made from.
        public let stored: [StoredSigningKey]
    }

    /// How a ring times its stages.
    public struct Timing: Sendable {
        /// The JWKS `Cache-Control: max-age`.
        public var jwksMaxAge: Int
        /// How long a signed token can live (the longest of access and ID tokens).
        public var tokenLifetime: Int

        public init(jwksMaxAge: Int, tokenLifetime: Int) {
            self.jwksMaxAge = jwksMaxAge
            self.tokenLifetime = tokenLifetime
        }

        /// How often replicas re-read the keys from storage.
        public var refreshInterval: Int { max(1, min(15, jwksMaxAge)) }

        /// How long a `next` key is published before it signs.
        public var publishedBeforeSigning: Int { jwksMaxAge + refreshInterval }

        /// How long a retired key stays published: past the last token it signed on any replica
        /// (one refresh interval after the rotation), plus a verifier's clock leeway.
        public var retiredFor: Int { tokenLifetime + refreshInterval + 60 }
    }

    private let current: Mutex<Snapshot>
    /// The issuer's own algorithm.
    public let algorithm: SigningKey.Algorithm
    /// Every algorithm the issuer signs with (its own and its clients'): an active key of any
    /// other retires once the issuer's own algorithm has an active key.
    public let inUse: Set<SigningKey.Algorithm>

    private init(snapshot: Snapshot, algorithm: SigningKey.Algorithm, inUse: Set<SigningKey.Algorithm>) {
        current = Mutex(snapshot)
        self.algorithm = algorithm
        self.inUse = inUse
    }

    public var snapshot: Snapshot { current.withLock { $0 } }

    /// Loads the keys from `store`, generating and storing a key of `algorithm` and of each of
    /// `others` that has none. One key serves one algorithm (RFC 8725 §3.1), so each is rotated
    /// on its own. When `signing_algorithm` changed (another algorithm's key is active) and
    /// `timing` is given, the new algorithm's key is staged as `next`, published before it signs,
    /// and the old key signs until then.
    public static func load(
        from store: any IssuerStore,
        algorithm: SigningKey.Algorithm,
        others: Set<SigningKey.Algorithm> = [],
        timing: Timing? = nil,
        now: Int
    ) async throws
        -> KeyRing
    {
        var stored = try await store.signingKeys()
        func has(_ algorithm: SigningKey.Algorithm, _ stages: Set<StoredSigningKey.Stage>) -> Bool {
            stored.contains { stages.contains($0.stage) && $0.algorithm == algorithm.rawValue }
        }
        for needed in others.union([algorithm]).sorted() where !has(needed, [.active]) {
            let replacing = needed == algorithm && !others.contains(needed) && stored.contains { $0.stage == .active }
            if replacing && has(needed, [.next]) { continue }
            let record =
                if replacing, let timing {
                    try makeRecord(needed, stage: .next, now: now, until: now + timing.publishedBeforeSigning)
                } else {
                    try makeRecord(needed, stage: .active, now: now)
                }
            try await store.saveSigningKey(record)
            stored.append(record)
        }
        return KeyRing(
            snapshot: try makeSnapshot(stored, algorithm: algorithm, clientsOnly: others.subtracting([algorithm])),
            algorithm: algorithm,
            inUse: others.union([algorithm])
        )
    }

    static func makeRecord(
        _ algorithm: SigningKey.Algorithm,
        stage: StoredSigningKey.Stage,
        now: Int,
        until: Int? = nil
    ) throws -> StoredSigningKey {
        let key = try SigningKey.generate(algorithm)
        return StoredSigningKey(
            keyID: key.keyID,
            algorithm: key.algorithm.rawValue,
            privateKeyDER: key.privateKeyDER,
            stage: stage,
            createdAt: now,
            stageUntil: until
        )
    }

    /// Starts a rotation: stores a `next` key of `algorithm` that signs from
    /// `now + timing.publishedBeforeSigning`. Returns it. Works on the store alone, so
    /// `tollgate issuer rotate-keys` can run beside the serving processes.
    @discardableResult
    public static func rotate(
        store: any IssuerStore,
        algorithm: SigningKey.Algorithm,
        timing: Timing,
        now: Int
    ) async throws -> StoredSigningKey {
        let record = try makeRecord(algorithm, stage: .next, now: now, until: now + timing.publishedBeforeSigning)
        try await store.saveSigningKey(record)
        return record
    }

    /// Re-reads the keys from `store`, moves every key whose stage is over to the next one
    /// (next → active, the old active → retired until its tokens have expired, retired → gone),
    /// stores the moves and swaps the snapshot. Idempotent: replicas running it together agree.
    ///
    /// `alsoInUse`: algorithms clients registered outside the configuration (registration,
    /// `create-client`) sign with, whose keys must not retire either.
    public func advance(
        store: any IssuerStore,
        timing: Timing,
        now: Int,
        alsoInUse: Set<SigningKey.Algorithm> = []
    ) async throws {
        let stored = try await store.signingKeys()
        let moved = Self.advanced(
            stored,
            timing: timing,
            now: now,
            inUse: inUse.union(alsoInUse),
            algorithm: algorithm
        )
        for record in moved.changed { try await store.saveSigningKey(record) }
        for keyID in moved.dropped { try await store.deleteSigningKey(keyID: keyID) }
        let next = try Self.makeSnapshot(
            moved.kept,
            algorithm: algorithm,
            clientsOnly: inUse.union(alsoInUse).subtracting([algorithm])
        )
        current.withLock { $0 = next }
    }

    /// The stage moves due at `now`, as a pure function of the stored keys.
    static func advanced(
        _ stored: [StoredSigningKey],
        timing: Timing,
        now: Int,
        inUse: Set<SigningKey.Algorithm>? = nil,
        algorithm: SigningKey.Algorithm? = nil
    ) -> (kept: [StoredSigningKey], changed: [StoredSigningKey], dropped: [String]) {
        var keys = stored
        var changed: [StoredSigningKey] = []
        // Per algorithm, the newest due `next` key becomes active; every other active key of that
        // algorithm retires.
        var superseded: [String] = []
        for algorithm in Set(keys.map(\.algorithm)).sorted() {
            let due = keys.indices.filter {
                keys[$0].algorithm == algorithm && keys[$0].stage == .next && (keys[$0].stageUntil ?? 0) <= now
            }
            guard let promoted = due.max(by: { keys[$0].createdAt < keys[$1].createdAt }) else { continue }
            // The promoted key is stored first: a crash between the moves leaves two active keys
            // (the newest signs), never none.
            keys[promoted].stage = .active
            keys[promoted].stageUntil = nil
            changed.append(keys[promoted])
            for index in keys.indices
            where index != promoted && keys[index].stage == .active && keys[index].algorithm == algorithm {
                keys[index].stage = .retired
                keys[index].stageUntil = now + timing.retiredFor
                changed.append(keys[index])
            }
            // Older due `next` keys never signed and never will.
            superseded += due.filter { $0 != promoted }.map { keys[$0].keyID }
        }
        // An algorithm no longer in use (`signing_algorithm` changed, a client's algorithm
        // removed): its active key retires once the issuer's own algorithm has one.
        if let inUse, let algorithm, keys.contains(where: { $0.stage == .active && $0.algorithm == algorithm.rawValue })
        {
            for index in keys.indices where keys[index].stage == .active {
                guard let own = SigningKey.Algorithm(rawValue: keys[index].algorithm), !inUse.contains(own) else {
                    continue
                }
                keys[index].stage = .retired
                keys[index].stageUntil = now + timing.retiredFor
                changed.append(keys[index])
            }
        }
        let dropped =
            keys.filter { $0.stage == .retired && ($0.stageUntil ?? 0) <= now }.map(\.keyID) + superseded
        keys.removeAll { dropped.contains($0.keyID) }
        return (keys, changed, dropped)
    }

    /// `clientsOnly`: algorithms only clients' ID tokens use, whose keys never stand in for the
    /// issuer's own.
    static func makeSnapshot(
        _ stored: [StoredSigningKey],
        algorithm: SigningKey.Algorithm,
        clientsOnly: Set<SigningKey.Algorithm> = []
    ) throws -> Snapshot {
        var published: [SigningKey] = []
        var activeByAlgorithm: [SigningKey.Algorithm: SigningKey] = [:]
        for record in stored.sorted(by: { $0.createdAt > $1.createdAt }) {
            guard let algorithm = SigningKey.Algorithm(rawValue: record.algorithm) else { continue }
            let key = try SigningKey(algorithm: algorithm, der: record.privateKeyDER)
            published.append(key)
            if record.stage == .active && activeByAlgorithm[algorithm] == nil { activeByAlgorithm[algorithm] = key }
        }
        // The issuer's algorithm, or (after `signing_algorithm` changed, until a key of it may
        // sign) the newest active key of the previous one — never a key only a client's ID tokens
        // use, whose algorithm relying parties of the issuer's tokens did not pin.
        let isActive = { (key: SigningKey) in activeByAlgorithm[key.algorithm]?.keyID == key.keyID }
        guard
            let active = activeByAlgorithm[algorithm]
                ?? published.first(where: { isActive($0) && !clientsOnly.contains($0.algorithm) })
                ?? published.first(where: isActive)
        else { throw KeyRingError.noActiveKey }
        let document = JSONValue.object(["keys": .array(published.map(\.publicJWK))]).serialized()
        let keySet = try JSONWebKeySet.parse(Array(document.utf8))
        return Snapshot(
            active: active,
            activeByAlgorithm: activeByAlgorithm,
            published: published,
            document: document,
            keySet: keySet,
            stored: stored
        )
    }
}

enum KeyRingError: Error {
    case noActiveKey
}
