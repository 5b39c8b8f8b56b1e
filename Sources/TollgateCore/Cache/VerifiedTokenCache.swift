import Synchronization

/// Verified claims by token digest, bounded in entries and expiring at each token's `exp`.
///
/// It holds claims, never a verdict: whoever reads it re-checks expiry, issuer and the route's
/// rules on every request.
public final class VerifiedTokenCache: Sendable {
    private let entries: ExpiringCache<VerifiedToken>
    private let hitCounter = Atomic<Int>(0)
    private let missCounter = Atomic<Int>(0)

    /// - Parameter maximumEntries: the bound on cached tokens; 0 disables.
    public init(maximumEntries: Int) {
        entries = ExpiringCache(maximumEntries: maximumEntries)
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

    /// Stores verified claims until `evictAt` (at most the token's expiry plus leeway).
    public func store(_ token: VerifiedToken, for digest: TokenDigest, until evictAt: Double, now: Double) {
        entries.store(token, for: digest, until: evictAt, now: now)
    }

    public func removeAll() { entries.removeAll() }
    public var count: Int { entries.count }
    public var hits: Int { hitCounter.load(ordering: .relaxed) }
    public var misses: Int { missCounter.load(ordering: .relaxed) }
}
