import Glibc
import HTTPTypes
import Synchronization
import TollgateCore

/// The brute-force and abuse limits of the sign-in form, the device verification page and
/// dynamic registration (`limits:`), counted in the store so every replica sees the same counts.
/// An attempt is counted before it runs, one at a time in the store, so a burst of concurrent
/// tries cannot all slip in under the same count.
extension OAuthIssuer {
    /// The client's address for the request being answered, when the server that mounts the
    /// issuer knows it (`handle(_:body:clientAddress:)`).
    @TaskLocal static var clientAddress: String?

    static let waitMessage = "Too many failed attempts. Wait a moment, then try again."

    /// An account's counter: the name's digest, so an attacker's long or odd names cost the
    /// store a fixed-size key.
    static func accountKey(_ username: String) -> String { "signin:account:" + RandomToken.digest(username) }

    /// An address's counter: an IPv4 address, or an IPv6 address's /64 (which one client holds
    /// whole); `nil` when the address is not known.
    static func addressKey(_ prefix: String) -> String? {
        clientAddress.map { prefix + ":address:" + addressBlock($0) }
    }

    static func addressBlock(_ address: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard address.contains(":"), inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        return bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: ".") + "/64"
    }

    /// Counts one sign-in attempt for `username` from this client's address before it is
    /// checked; the seconds to wait when it may not run: one of the counts is in its wait, or a
    /// concurrent attempt took the one try the wait allows.
    func reserveSignIn(username: String) async throws -> Int? {
        let at = now()
        let limits = options.limits
        var counters = [(key: Self.accountKey(username), threshold: limits.accountFailures)]
        if let key = Self.addressKey("signin") { counters.append((key, limits.addressFailures)) }
        var before: [Int] = []
        for counter in counters {
            let seen = try await store.eventCount(key: counter.key, now: at)
            if let wait = AttemptLimits.wait(failures: seen, threshold: counter.threshold, limits: limits, now: at) {
                return wait
            }
            before.append(seen?.count ?? 0)
        }
        var refused = false
        for (counter, seen) in zip(counters, before) {
            let counted = try await store.countEvent(key: counter.key, now: at, expiresAt: at + limits.failureReset)
            if counted.count > counter.threshold && counted.count != seen + 1 { refused = true }
        }
        return refused ? limits.waitIncrement : nil
    }

    /// A successful sign-in clears the account's failures and takes its attempt back from the
    /// address's count (which is not cleared: one account of the attacker's own must not reset
    /// the count of its guesses at others).
    func signInSucceeded(username: String) async throws {
        try await store.resetEvents(key: Self.accountKey(username))
        if let key = Self.addressKey("signin") { try await store.uncountEvent(key: key) }
    }

    /// The user for `username` when `password` is theirs. An unknown user is checked against a
    /// dummy hash of the same cost, so the answer takes as long either way (no enumeration by
    /// timing).
    func verifiedUser(username: String, password: String) async throws -> IssuerUser? {
        let user = try await store.user(username: username)
        if let user, let parameters = PasswordHash.parameters(of: user.passwordHash) {
            knownPasswordCost.withLock { $0 = parameters }
        }
        let hash = try user?.passwordHash ?? dummyPasswordHash()
        guard PasswordHash.verify(password, against: hash), let user else { return nil }
        return user
    }

    /// A hash of a random password with the cost of the users' hashes seen so far (the default
    /// cost before any), made once per cost.
    func dummyPasswordHash() throws -> String {
        let parameters = knownPasswordCost.withLock { $0 } ?? "scrypt$32768$8$1"
        if let cached = dummyHashes.withLock({ $0[parameters] }) { return cached }
        let made = try PasswordHash.dummy(parameters: parameters)
        dummyHashes.withLock { $0[parameters] = made }
        return made
    }

    /// The device user code counters: this address's and everyone's, each at most
    /// `user_code_failures_per_address` / `user_code_failures_total` wrong codes per device code
    /// lifetime.
    func userCodeCounters() -> [(key: String, limit: Int)] {
        var counters = [(key: "usercode:all", limit: options.limits.userCodeFailuresTotal)]
        if let key = Self.addressKey("usercode") { counters.append((key, options.limits.userCodeFailuresPerAddress)) }
        return counters
    }

    /// Counts one user code entry before it is checked; the seconds to wait when a counter is
    /// full (the entry is not counted then, so waiting is not prolonged).
    func reserveUserCode() async throws -> Int? {
        let at = now()
        let window = options.codeTTL
        for counter in userCodeCounters() {
            if let wait = AttemptLimits.windowWait(
                count: try await store.eventCount(key: counter.key, now: at),
                limit: counter.limit,
                window: window,
                now: at
            ) {
                return wait
            }
        }
        var full = false
        for counter in userCodeCounters() {
            let counted = try await store.countEvent(key: counter.key, now: at, expiresAt: at + window)
            if counted.count > counter.limit { full = true }
        }
        return full ? window : nil
    }

    /// A right code takes its entry back.
    func userCodeAccepted() async throws {
        for counter in userCodeCounters() { try await store.uncountEvent(key: counter.key) }
    }

    /// Counts a registration from this address; the seconds to wait when it is over the hourly
    /// limit.
    func registrationWait() async throws -> Int? {
        guard let key = Self.addressKey("register") else { return nil }
        let at = now()
        let count = try await store.countEvent(key: key, now: at, expiresAt: at + 3600)
        return count.count > options.limits.registrationsPerHour ? 3600 - (at - count.last) : nil
    }

    /// `response` as a 429 with `Retry-After` (RFC 6585).
    func tooManyAttempts(_ response: IssuerResponse, retryAfter seconds: Int) -> IssuerResponse {
        var response = response
        response.head.status = .tooManyRequests
        response.head.headerFields[.retryAfter] = String(max(1, seconds))
        return response
    }
}
