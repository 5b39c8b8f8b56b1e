import Synchronization

/// A bounded map from token digest to a value with a deadline, split into independently locked
/// shards so concurrent requests rarely contend.
///
/// Eviction is CLOCK (second chance), an approximation of least-recently-used that costs no
/// list maintenance on a hit: each entry has a slot on a ring and a referenced bit set by every
/// hit; when a full shard needs room, its hand sweeps the ring, clearing referenced bits and
/// taking the first entry not referenced since the hand last passed (or an expired one). A hot
/// token therefore survives a flood of tokens seen once.
public final class ExpiringCache<Value: Sendable>: Sendable {
    /// A reference, so a dictionary bucket holds 40 bytes instead of the whole value (buckets are
    /// mostly empty after a resize), and a hit sets its bit without writing to the dictionary.
    /// Only touched under its shard's lock.
    private final class Entry {
        let value: Value
        let evictAt: Double
        let slot: Int
        var referenced: Bool

        init(value: Value, evictAt: Double, slot: Int, referenced: Bool) {
            self.value = value
            self.evictAt = evictAt
            self.slot = slot
            self.referenced = referenced
        }
    }

    private struct Shard {
        var entries: [TokenDigest: Entry] = [:]
        /// The ring the hand sweeps: a slot per entry (nil: free).
        var ring: [TokenDigest?] = []
        var free: [Int] = []
        var hand = 0

        /// Takes a slot for a new entry, evicting one when the shard holds `limit` entries.
        mutating func slot(limit: Int, now: Double) -> Int {
            if entries.count >= limit {
                // At most two turns: the first clears every referenced bit.
                for _ in 0..<(2 * ring.count) {
                    let index = hand
                    hand = (hand + 1) % ring.count
                    guard let digest = ring[index], let entry = entries[digest] else { continue }
                    if entry.referenced && entry.evictAt > now {
                        entry.referenced = false
                        continue
                    }
                    entries[digest] = nil
                    ring[index] = nil
                    return index
                }
            }
            if let index = free.popLast() { return index }
            ring.append(nil)
            return ring.count - 1
        }

        mutating func remove(_ digest: TokenDigest) {
            guard let entry = entries.removeValue(forKey: digest) else { return }
            ring[entry.slot] = nil
            free.append(entry.slot)
        }
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
                shard.remove(digest)
                return nil
            }
            if !entry.referenced { entry.referenced = true }
            return entry.value
        }
    }

    public func store(_ value: Value, for digest: TokenDigest, until evictAt: Double, now: Double) {
        guard perShardLimit > 0, evictAt > now else { return }
        let limit = perShardLimit
        shards[digest.shardIndex].shard.withLock { shard in
            if let existing = shard.entries[digest] {
                shard.entries[digest] = Entry(value: value, evictAt: evictAt, slot: existing.slot, referenced: true)
                return
            }
            let slot = shard.slot(limit: limit, now: now)
            shard.ring[slot] = digest
            shard.entries[digest] = Entry(value: value, evictAt: evictAt, slot: slot, referenced: false)
        }
    }

    public func removeAll() {
        for locked in shards { locked.shard.withLock { $0 = Shard() } }
    }

    public var count: Int {
        shards.reduce(0) { total, locked in total + locked.shard.withLock { $0.entries.count } }
    }
}
