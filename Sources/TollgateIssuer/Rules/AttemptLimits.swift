import TollgateCore

/// The brute-force rules, as plain functions of a count of failures: like Keycloak's brute
/// force detection, each failure past a threshold doubles the wait before the next try.
enum AttemptLimits {
    /// Seconds to wait after `failures` failures (the last at `last`) before trying again at
    /// `now`, or `nil` when a try is allowed: none below `threshold` failures, then
    /// `waitIncrement`, doubling per further failure, at most `maxWait`.
    static func wait(
        failures: EventCount?,
        threshold: Int,
        limits: LocalIssuerSettings.Limits,
        now: Int
    ) -> Int? {
        guard let failures, failures.count >= threshold else { return nil }
        let doublings = min(failures.count - threshold, 30)
        let wait = min(limits.waitIncrement << doublings, limits.maxWait)
        let remaining = failures.last + wait - now
        return remaining > 0 ? remaining : nil
    }

    /// Seconds until a fixed-window count (`limit` events per `window`) allows another event, or
    /// `nil` when it does.
    static func windowWait(count: EventCount?, limit: Int, window: Int, now: Int) -> Int? {
        guard let count, count.count >= limit else { return nil }
        let remaining = count.last + window - now
        return remaining > 0 ? remaining : nil
    }
}
