import Synchronization
import TollgateCore

/// The grants this issuer (any replica of it) has revoked, in memory, for the gate in the same
/// process: a JWT access token carries its grant (`grant_id`), so it is refused as soon as its
/// grant is here instead of at its `exp`.
///
/// Filled at once by this process's own revocations and, for other replicas' (and the
/// administration commands'), by `OAuthIssuer.refreshRevokedGrants()` every
/// `OAuthIssuer.revocationPollInterval` seconds. An entry is kept for one access-token lifetime
/// after the revocation (plus a minute): by then every JWT of the grant has expired, since the
/// store refuses to mint live tokens for a revoked grant. So the set holds at most the
/// revocations of one access-token lifetime.
public final class RevokedGrantSet: GrantRevocationSource {
    private let entries = Mutex<[String: Int]>([:])

    public init() {}

    public func isRevoked(grantID: String) -> Bool {
        entries.withLock { $0[grantID] != nil }
    }

    /// Remembers `grantID` until `until` (Unix seconds).
    func insert(_ grantID: String, until: Int) {
        entries.withLock { entries in entries[grantID] = max(until, entries[grantID] ?? until) }
    }

    /// Drops what is past its time; returns how many are kept.
    @discardableResult
    func prune(now: Int) -> Int {
        entries.withLock { entries in
            entries = entries.filter { $0.value >= now }
            return entries.count
        }
    }

    public var count: Int { entries.withLock { $0.count } }
}
