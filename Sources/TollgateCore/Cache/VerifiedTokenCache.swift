import Synchronization

/// Verified claims by token digest, bounded in entries and expiring at each token's `exp`.
///
/// Sixteen independently locked shards keep concurrent requests from queueing on one lock. When a
/// shard is full, expired entries go first, then arbitrary ones: the cache is an accelerator, and
/// a miss only costs one more verification.
public final class VerifiedTokenCache: Sendable {
    private struct Entry {
        let token: VerifiedToken
        let evictAt: Double
    }

    private final class Shard: Sendable {
        let entries = Mutex<[TokenDigest: Entry]>([:])
    }

    private static let shardCount = 16
    private let shards: [Shard]
    private let perShardLimit: Int
    private let hitCounter = Atomic<Int>(0)
    private let missCounter = Atomic<Int>(0)

    /// - Parameter maximumEntries: the bound on cached tokens (spread over shards); 0 disables.
    public init(maximumEntries: Int) {
        perShardLimit = max(0, (maximumEntries + Self.shardCount - 1) / Self.shardCount)
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    /// The cached claims, if present and not expired at `now` (an expired entry is dropped).
    public func lookup(_ digest: TokenDigest, now: Double) -> VerifiedToken? {
        let found: VerifiedToken? = shards[digest.shardIndex].entries.withLock { entries in
            guard let entry = entries[digest] else { return nil }
            if entry.evictAt <= now {
                entries[digest] = nil
                return nil
            }
            return entry.token
        }
        if found == nil {
            missCounter.add(1, ordering: .relaxed)
        } else {
            hitCounter.add(1, ordering: .relaxed)
        }
        return found
    }

    /// Stores verified claims until `evictAt` (at most the token's expiry plus leeway).
    public func store(_ token: VerifiedToken, for digest: TokenDigest, until evictAt: Double, now: Double) {
        guard perShardLimit > 0, evictAt > now else { return }
        let limit = perShardLimit
        shards[digest.shardIndex].entries.withLock { entries in
            if entries.count >= limit, entries[digest] == nil {
                entries = entries.filter { $0.value.evictAt > now }
                if entries.count >= limit, let victim = entries.keys.first {
                    entries[victim] = nil
                }
            }
            entries[digest] = Entry(token: token, evictAt: evictAt)
        }
    }

    public func removeAll() {
        for shard in shards { shard.entries.withLock { $0.removeAll() } }
    }

    public var count: Int {
        shards.reduce(0) { total, shard in total + shard.entries.withLock { $0.count } }
    }

    public var hits: Int { hitCounter.load(ordering: .relaxed) }
    public var misses: Int { missCounter.load(ordering: .relaxed) }
}
