import Synchronization

/// A bounded map from token digest to a value with a deadline, split into independently locked
/// shards so concurrent requests rarely contend.
///
/// When a shard is full it drops expired entries, but sweeps at most once a second; otherwise it
/// evicts an arbitrary entry. A cache is an accelerator: a miss only costs one more verification,
/// while an O(n) sweep on every insert would put the whole shard on the request path.
public final class ExpiringCache<Value: Sendable>: Sendable {
    private struct Entry {
        let value: Value
        let evictAt: Double
    }

    private struct Shard {
        var entries: [TokenDigest: Entry] = [:]
        var lastSweep: Double = -.infinity
    }

    private final class LockedShard: Sendable {
        let shard = Mutex(Shard())
    }

    private static var shardCount: Int { 16 }
    private let shards: [LockedShard]
    private let perShardLimit: Int

    /// - Parameter maximumEntries: the bound on entries (spread over shards); 0 disables caching.
    public init(maximumEntries: Int) {
        perShardLimit = max(0, (maximumEntries + Self.shardCount - 1) / Self.shardCount)
        shards = (0..<Self.shardCount).map { _ in LockedShard() }
    }

    /// The value, if present and its deadline is after `now` (an expired entry is dropped).
    public func value(for digest: TokenDigest, now: Double) -> Value? {
        shards[digest.shardIndex].shard.withLock { shard in
            guard let entry = shard.entries[digest] else { return nil }
            if entry.evictAt <= now {
                shard.entries[digest] = nil
                return nil
            }
            return entry.value
        }
    }

    public func store(_ value: Value, for digest: TokenDigest, until evictAt: Double, now: Double) {
        guard perShardLimit > 0, evictAt > now else { return }
        let limit = perShardLimit
        shards[digest.shardIndex].shard.withLock { shard in
            if shard.entries.count >= limit, shard.entries[digest] == nil {
                if now - shard.lastSweep >= 1 {
                    shard.lastSweep = now
                    shard.entries = shard.entries.filter { $0.value.evictAt > now }
                }
                if shard.entries.count >= limit, let victim = shard.entries.keys.first {
                    shard.entries[victim] = nil
                }
            }
            shard.entries[digest] = Entry(value: value, evictAt: evictAt)
        }
    }

    public func removeAll() {
        for locked in shards { locked.shard.withLock { $0.entries.removeAll() } }
    }

    public var count: Int {
        shards.reduce(0) { total, locked in total + locked.shard.withLock { $0.entries.count } }
    }
}
