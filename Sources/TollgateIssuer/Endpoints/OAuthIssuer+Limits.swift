import HTTPTypes
import Synchronization
import TollgateCore

/// The brute-force and abuse limits of the sign-in form, the device verification page and
/// dynamic registration (`limits:`), counted in the store so every replica sees the same counts.
extension OAuthIssuer {
    /// The client's address for the request being answered, when the server that mounts the
    /// issuer knows it (`handle(_:body:clientAddress:)`).
    @TaskLocal static var clientAddress: String?

    static let waitMessage = "Too many failed attempts. Wait a moment, then try again."

    static func accountKey(_ username: String) -> String { "signin:account:" + username }
    static func addressKey(_ prefix: String) -> String? { clientAddress.map { prefix + ":address:" + $0 } }

    /// Seconds the sign-in of `username` (from this client's address) must wait, if any.
    func signInWait(username: String) async throws -> Int? {
        let at = now()
        let limits = options.limits
        var wait = AttemptLimits.wait(
            failures: try await store.eventCount(key: Self.accountKey(username), now: at),
            threshold: limits.accountFailures,
            limits: limits,
            now: at
        )
        if let key = Self.addressKey("signin") {
            let byAddress = AttemptLimits.wait(
                failures: try await store.eventCount(key: key, now: at),
                threshold: limits.addressFailures,
                limits: limits,
                now: at
            )
            wait = [wait, byAddress].compactMap { $0 }.max()
        }
        return wait
    }

    func signInFailed(username: String) async throws {
        let at = now()
        let until = at + options.limits.failureReset
        _ = try await store.countEvent(key: Self.accountKey(username), now: at, expiresAt: until)
        if let key = Self.addressKey("signin") { _ = try await store.countEvent(key: key, now: at, expiresAt: until) }
    }

    /// A successful sign-in clears the account's failures (not the address's: one account of
    /// the attacker's own must not reset the count of its guesses at others).
    func signInSucceeded(username: String) async throws {
        try await store.resetEvents(key: Self.accountKey(username))
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

    /// Seconds before this address may enter another device user code, if it must wait: at
    /// most `user_code_failures_per_address` wrong codes per address, and
    /// `user_code_failures_total` from everywhere, within a device code's lifetime.
    func userCodeWait() async throws -> Int? {
        let at = now()
        let limits = options.limits
        var waits: [Int?] = [
            AttemptLimits.windowWait(
                count: try await store.eventCount(key: "usercode:all", now: at),
                limit: limits.userCodeFailuresTotal,
                window: options.codeTTL,
                now: at
            )
        ]
        if let key = Self.addressKey("usercode") {
            waits.append(
                AttemptLimits.windowWait(
                    count: try await store.eventCount(key: key, now: at),
                    limit: limits.userCodeFailuresPerAddress,
                    window: options.codeTTL,
                    now: at
                )
            )
        }
        return waits.compactMap { $0 }.max()
    }

    func userCodeFailed() async throws {
        let at = now()
        let until = at + options.codeTTL
        _ = try await store.countEvent(key: "usercode:all", now: at, expiresAt: until)
        if let key = Self.addressKey("usercode") { _ = try await store.countEvent(key: key, now: at, expiresAt: until) }
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
