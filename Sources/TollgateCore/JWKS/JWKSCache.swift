import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One issuer's key set: fetched, refreshed in the background, refetched on an unknown `kid`, and
/// served stale for a bounded time when the endpoint fails.
///
/// Reading the keys is a lock-protected snapshot copy, so verification never waits on a fetch.
/// Fetches are single-flight: whoever finds none in progress performs it, everybody else
/// (background refresh, any number of requests with an unknown `kid`) waits for that one result.
public final class JWKSCache: Sendable {
    public let issuerName: String
    public let source: KeySetSource
    public let policy: KeySetRefreshPolicy
    private let client: HTTPClient?
    /// Keys from the configuration (HMAC secrets) merged into every loaded set.
    private let additionalKeys: [VerificationKey]
    private let logger: Logger
    private let now: @Sendable () -> Double

    private struct State {
        var keySet: JSONWebKeySet?
        var loadedAt: Double?
        var lastAttempt: Double?
        var nextRefresh: Double = 0
        var consecutiveFailures = 0
        var lastError: String?
        var discoveredJWKSURI: String?
        var waiters: [CheckedContinuation<Void, Never>]?
        var fetchCount = 0
        var fetchFailures = 0
    }

    private let state: Mutex<State>

    public init(
        issuerName: String,
        source: KeySetSource,
        policy: KeySetRefreshPolicy = KeySetRefreshPolicy(),
        additionalKeys: [VerificationKey] = [],
        client: HTTPClient?,
        logger: Logger = Logger(label: "tollgate.jwks"),
        now: @escaping @Sendable () -> Double = wallClockSeconds
    ) {
        self.issuerName = issuerName
        self.source = source
        self.policy = policy
        self.client = client
        self.additionalKeys = additionalKeys
        self.logger = logger
        self.now = now
        var initial = State()
        if case .fixed(let box) = source {
            initial.keySet = box.keySet.adding(additionalKeys)
            initial.loadedAt = .infinity
            initial.nextRefresh = .infinity
        }
        state = Mutex(initial)
    }

    /// The keys to verify with, or `nil` when none were ever loaded or the last good set is older
    /// than `maximumStale` (then verification must fail closed as "keys unavailable").
    public func currentKeys() -> JSONWebKeySet? {
        let time = now()
        let maximumStale = policy.maximumStale
        return state.withLock { state in
            guard let keySet = state.keySet, let loadedAt = state.loadedAt else { return nil }
            return time - loadedAt <= maximumStale ? keySet : nil
        }
    }

    /// True once the first key set has loaded (the issuer's readiness signal).
    public var isReady: Bool { state.withLock { $0.keySet != nil } }

    /// When the background loop will next fetch (seconds since 1970).
    public var nextRefreshAt: Double { state.withLock { $0.nextRefresh } }

    /// How many fetches have been performed (successful or not).
    public var fetchCount: Int { state.withLock { $0.fetchCount } }

    public var lastError: String? { state.withLock { $0.lastError } }

    /// Finished fetches by result.
    public var fetchResults: (succeeded: Int, failed: Int) {
        state.withLock { state in
            let finished = state.fetchCount - (state.waiters == nil ? 0 : 1)
            return (finished - state.fetchFailures, state.fetchFailures)
        }
    }

    /// Called when a token names a `kid` the current set lacks (or no set is loaded). Refetches
    /// unless one happened within the cool-down; joins a fetch already in flight.
    /// - Returns: true if a fetch completed (successfully or not) so a retry may see new keys.
    @discardableResult
    public func refreshForUnknownKey() async -> Bool {
        if case .fixed = source { return false }
        let time = now()
        let cooldown = policy.unknownKeyCooldown
        let allowed = state.withLock { state -> Bool in
            if state.waiters != nil { return true }
            guard let lastAttempt = state.lastAttempt else { return true }
            return time - lastAttempt >= cooldown
        }
        guard allowed else { return false }
        await refresh()
        return true
    }

    /// Fetches now, or waits for the fetch already in flight.
    public func refresh() async {
        if case .fixed = source { return }
        let isLeader = state.withLock { state -> Bool in
            if state.waiters == nil {
                state.waiters = []
                state.lastAttempt = now()
                state.fetchCount += 1
                return true
            }
            return false
        }
        guard isLeader else {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let finished = state.withLock { state -> Bool in
                    guard state.waiters != nil else { return true }
                    state.waiters!.append(continuation)
                    return false
                }
                if finished { continuation.resume() }
            }
            return
        }
        let result = await fetch()
        let time = now()
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            switch result {
            case .success(let fetched):
                state.keySet = fetched.keySet.adding(additionalKeys)
                state.loadedAt = time
                state.consecutiveFailures = 0
                state.lastError = nil
                state.nextRefresh = time + policy.refreshInterval(maxAge: fetched.maxAge)
            case .failure(let failure):
                state.consecutiveFailures += 1
                state.fetchFailures += 1
                state.lastError = failure.reason
                state.discoveredJWKSURI = nil
                // Retry soon after a failure, backing off up to the minimum refresh interval.
                let backoff = min(policy.minimumRefresh, pow2(state.consecutiveFailures - 1))
                state.nextRefresh = time + backoff
            }
            let waiting = state.waiters ?? []
            state.waiters = nil
            return waiting
        }
        switch result {
        case .success(let fetched):
            for skipped in fetched.keySet.skipped {
                logger.warning(
                    "skipped a key in the key set",
                    metadata: [
                        "issuer": "\(issuerName)", "index": "\(skipped.index)",
                        "kid": "\(skipped.keyID ?? "-")", "reason": "\(skipped.reason)",
                    ]
                )
            }
            logger.debug(
                "key set loaded",
                metadata: ["issuer": "\(issuerName)", "keys": "\(fetched.keySet.keys.count)"]
            )
        case .failure(let failure):
            logger.error(
                "key set fetch failed; serving the last good set if it is not too old",
                metadata: ["issuer": "\(issuerName)", "reason": "\(failure.reason)"]
            )
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Refreshes at each deadline until the task is cancelled.
    public func run() async {
        if case .fixed = source { return }
        while !Task.isCancelled {
            let delay = nextRefreshAt - now()
            if delay > 0 {
                do {
                    try await Task.sleep(for: .milliseconds(Int64(min(delay, 86400) * 1000)))
                } catch {
                    return
                }
                continue
            }
            await refresh()
        }
    }

    private struct Fetched {
        let keySet: JSONWebKeySet
        let maxAge: Double?
    }

    private func fetch() async -> Result<Fetched, OutboundHTTP.Failure> {
        guard let client else { return .failure(OutboundHTTP.Failure(reason: "no HTTP client")) }
        do throws(OutboundHTTP.Failure) {
            let url = try await jwksURI(client: client)
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/jwk-set+json, application/json")
            let response = try await OutboundHTTP.execute(
                request,
                client: client,
                timeout: .milliseconds(Int64(policy.timeout * 1000)),
                maximumBodyBytes: policy.maximumBodyBytes
            )
            guard response.status == .ok else {
                throw OutboundHTTP.Failure(reason: "the key set endpoint answered \(response.status.code)")
            }
            let keySet: JSONWebKeySet
            do {
                keySet = try JSONWebKeySet.parse(response.body.readableBytesView)
            } catch {
                throw OutboundHTTP.Failure(reason: error.reason)
            }
            if keySet.keys.isEmpty {
                throw OutboundHTTP.Failure(reason: "the key set has no usable key")
            }
            let maxAge = OutboundHTTP.maxAge(fromCacheControl: response.headers.first(name: "cache-control"))
            return .success(Fetched(keySet: keySet, maxAge: maxAge))
        } catch {
            return .failure(error)
        }
    }

    private func jwksURI(client: HTTPClient) async throws(OutboundHTTP.Failure) -> String {
        switch source {
        case .jwksURI(let url):
            if let problem = OutboundHTTP.checkScheme(of: url, allowInsecureHTTP: policy.allowInsecureHTTP) {
                throw problem
            }
            return url
        case .discovery(let issuer):
            if let known = state.withLock({ $0.discoveredJWKSURI }) { return known }
            let discovered = try await Discovery.jwksURI(
                issuer: issuer,
                client: client,
                policy: policy
            )
            state.withLock { $0.discoveredJWKSURI = discovered }
            return discovered
        case .fixed, .inProcess:
            throw OutboundHTTP.Failure(reason: "fixed key sets are not fetched")
        }
    }
}

private func pow2(_ exponent: Int) -> Double {
    Double(1 << min(max(exponent, 0), 20))
}
