import Synchronization

/// Verified claims by token digest, bounded in entries and expiring at each token's `exp`.
///
/// It holds claims, never a verdict: whoever reads it re-checks expiry, issuer and the route's
/// rules on every request.
///
/// A token is admitted on its second sighting: a doorkeeper — a small table of digests seen
/// once — sits in front of the cache, so a flood of tokens each seen once (distinct-token load,
/// or an attacker's) pays neither the insert nor the eviction of a useful entry. The doorkeeper
/// forgets everything when it fills, which only costs a repeated token one more verification.
public final class VerifiedTokenCache: Sendable {
    private let entries: ExpiringCache<VerifiedToken>
    private let doorkeeper: Doorkeeper?
    private let hitCounter = Atomic<Int>(0)
    private let missCounter = Atomic<Int>(0)

    /// - Parameters:
    ///   - maximumEntries: the bound on cached tokens; 0 disables.
    ///   - admitOnSecondSighting: the doorkeeper; off, every verified token is stored.
    public init(maximumEntries: Int, admitOnSecondSighting: Bool = true) {
        entries = ExpiringCache(maximumEntries: maximumEntries)
        doorkeeper = admitOnSecondSighting && maximumEntries > 0 ? Doorkeeper(capacity: maximumEntries) : nil
    }

    /// The cached claims, if present and not past their deadline at `now`.
    public func lookup(_ digest: TokenDigest, now: Double) -> VerifiedToken? {
        let found = entries.value(for: digest, now: now)
        if found == nil {
            missCounter.add(1, ordering: .relaxed)
        } else {
            hitCounter.add(1, ordering: .relaxed)
        }
        return found
    }

    /// Stores verified claims until `evictAt` (at most the token's expiry plus leeway) — on the
    /// token's second sighting, when the doorkeeper is on.
    public func store(_ token: VerifiedToken, for digest: TokenDigest, until evictAt: Double, now: Double) {
        if let doorkeeper, !doorkeeper.seenBefore(digest) { return }
        entries.store(token, for: digest, until: evictAt, now: now)
    }

    public func removeAll() {
        entries.removeAll()
        doorkeeper?.removeAll()
    }

    public var count: Int { entries.count }
    public var hits: Int { hitCounter.load(ordering: .relaxed) }
    public var misses: Int { missCounter.load(ordering: .relaxed) }
}

/// Digests seen once, as 64-bit fingerprints in sharded sets; cleared shard by shard when full.
final class Doorkeeper: Sendable {
    private final class LockedSet: Sendable {
        let set = Mutex(Set<UInt64>())
    }

    private static var shardCount: Int { 16 }
    private let shards: [LockedSet]
    private let perShardLimit: Int

    init(capacity: Int) {
        perShardLimit = max(1, capacity / Self.shardCount)
        shards = (0..<Self.shardCount).map { _ in LockedSet() }
    }

    /// Whether `digest` was seen before; records it when it was not.
    func seenBefore(_ digest: TokenDigest) -> Bool {
        let limit = perShardLimit
        return shards[digest.shardIndex].set.withLock { set in
            if set.remove(digest.fingerprint) != nil { return true }
            if set.count >= limit { set.removeAll(keepingCapacity: true) }
            set.insert(digest.fingerprint)
            return false
        }
    }

    func removeAll() {
        for shard in shards { shard.set.withLock { $0.removeAll() } }
    }
}
