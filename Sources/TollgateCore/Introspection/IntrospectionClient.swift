import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// RFC 7662 token introspection for opaque tokens, with a result cache and one call per token
/// however many requests ask at once.
///
/// Outcomes: the token's claims; a 401-worthy failure (`inactive`, `expired`, wrong issuer or
/// audience); or `introspectionUnavailable` when the endpoint could not answer, which the proxy
/// turns into a 503 and never into a pass.
public final class IntrospectionClient: Sendable {
    public let settings: IntrospectionSettings
    public let policy: IssuerPolicy
    private let client: HTTPClient
    private let logger: Logger
    private let now: @Sendable () -> Double
    /// The issuer's keys, for signed answers (RFC 9701); `true` asks for a refetch first.
    private let responseKeys: (@Sendable (Bool) async -> JSONWebKeySet?)?

    private struct InFlight {
        var waiters: [TokenDigest: [CheckedContinuation<Result<VerifiedToken, VerificationFailure>, Never>]] = [:]
        var calls = 0
        var active = 0
        var inactive = 0
        var failed = 0
    }

    /// Answers, positive and negative, until their deadline; separate from the in-flight map so a
    /// cache hit never waits on the lock that callers register under.
    private let cache: ExpiringCache<Result<VerifiedToken, VerificationFailure>>
    private let inFlight = Mutex(InFlight())

    public init(
        settings: IntrospectionSettings,
        policy: IssuerPolicy,
        client: HTTPClient,
        logger: Logger = Logger(label: "tollgate.introspection"),
        now: @escaping @Sendable () -> Double = wallClockSeconds,
        responseKeys: (@Sendable (Bool) async -> JSONWebKeySet?)? = nil
    ) {
        self.responseKeys = responseKeys
        self.settings = settings
        self.policy = policy
        self.client = client
        self.logger = logger
        self.now = now
        self.cache = ExpiringCache(maximumEntries: settings.maximumCacheEntries)
    }

    /// How many introspection requests were sent.
    public var callCount: Int { inFlight.withLock { $0.calls } }

    /// Completed calls by result: the token was active, inactive (or refused), or the endpoint
    /// could not answer.
    public var callResults: (active: Int, inactive: Int, failed: Int) {
        inFlight.withLock { ($0.active, $0.inactive, $0.failed) }
    }

    /// A cached outcome, if any; `nil` means the endpoint has to be asked.
    public func cachedOutcome(for digest: TokenDigest) -> Result<VerifiedToken, VerificationFailure>? {
        let time = now()
        guard let outcome = cache.value(for: digest, now: time) else { return nil }
        if case .success(let token) = outcome, token.isExpired(at: time) {
            return .failure(VerificationFailure(.expired, "the token has expired"))
        }
        return outcome
    }

    public func introspect(_ token: String) async -> Result<VerifiedToken, VerificationFailure> {
        await introspect(token, digest: TokenDigest(token: token))
    }

    public func introspect(_ token: String, digest: TokenDigest) async -> Result<VerifiedToken, VerificationFailure> {
        if let cached = cachedOutcome(for: digest) { return cached }
        let isLeader = inFlight.withLock { state -> Bool in
            if state.waiters[digest] == nil {
                state.waiters[digest] = []
                state.calls += 1
                return true
            }
            return false
        }
        guard isLeader else {
            return await withCheckedContinuation { continuation in
                let finished = inFlight.withLock { state -> Bool in
                    guard state.waiters[digest] != nil else { return true }
                    state.waiters[digest]!.append(continuation)
                    return false
                }
                if finished {
                    continuation.resume(
                        returning: cachedOutcome(for: digest)
                            ?? .failure(
                                VerificationFailure(.introspectionUnavailable, "introspection did not complete")
                            )
                    )
                }
            }
        }
        let outcome = await call(token)
        let time = now()
        if let deadline = cacheDeadline(for: outcome, now: time) {
            cache.store(outcome, for: digest, until: deadline, now: time)
        }
        let waiters = inFlight.withLock { state in
            switch outcome {
            case .success: state.active += 1
            case .failure(let failure) where failure.isUnavailable: state.failed += 1
            case .failure: state.inactive += 1
            }
            return state.waiters.removeValue(forKey: digest) ?? []
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
        return outcome
    }

    private func cacheDeadline(for outcome: Result<VerifiedToken, VerificationFailure>, now: Double) -> Double? {
        switch outcome {
        case .success(let token):
            return min(token.expiresAt, now + settings.cacheTTL)
        case .failure(let failure):
            return failure.isUnavailable ? nil : now + settings.negativeCacheTTL
        }
    }

    private func call(_ token: String) async -> Result<VerifiedToken, VerificationFailure> {
        if let problem = OutboundHTTP.checkScheme(of: settings.endpoint, allowInsecureHTTP: settings.allowInsecureHTTP)
        {
            return .failure(VerificationFailure(.introspectionUnavailable, problem.reason))
        }
        var request = HTTPClientRequest(url: settings.endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(
            name: "Accept",
            value: settings.signedResponses ? "application/token-introspection+jwt" : "application/json"
        )
        var form: [(String, String)] = [("token", token), ("token_type_hint", "access_token")]
        switch settings.authentication {
        case .clientSecretBasic:
            request.headers.add(
                name: "Authorization",
                value: FormURLEncoding.basicAuthorization(
                    clientID: settings.clientID,
                    clientSecret: settings.clientSecret.value
                )
            )
        case .clientSecretPost:
            form.append(("client_id", settings.clientID))
            form.append(("client_secret", settings.clientSecret.value))
        }
        request.body = .bytes(ByteBuffer(string: FormURLEncoding.encode(form)))
        let response: OutboundHTTP.Response
        do {
            response = try await OutboundHTTP.execute(
                request,
                client: client,
                timeout: .milliseconds(Int64(settings.timeout * 1000)),
                maximumBodyBytes: settings.maximumBodyBytes
            )
        } catch {
            logger.error("introspection failed", metadata: ["issuer": "\(policy.name)", "reason": "\(error.reason)"])
            return .failure(VerificationFailure(.introspectionUnavailable, "the introspection endpoint is unreachable"))
        }
        guard response.status == .ok else {
            logger.error(
                "introspection endpoint refused the call",
                metadata: ["issuer": "\(policy.name)", "status": "\(response.status.code)"]
            )
            return .failure(
                VerificationFailure(
                    .introspectionUnavailable,
                    "the introspection endpoint answered \(response.status.code)"
                )
            )
        }
        let document: JSONValue
        if settings.signedResponses {
            switch await signedAnswer(response) {
            case .success(let answer): document = answer
            case .failure(let failure):
                logger.error(
                    "signed introspection answer refused",
                    metadata: ["issuer": "\(policy.name)", "reason": "\(failure.reason)"]
                )
                return .failure(failure)
            }
        } else {
            guard let parsed = try? JSONParser.parse(response.body.readableBytesView), case .object = parsed else {
                return .failure(
                    VerificationFailure(.introspectionUnavailable, "the introspection response is not a JSON object")
                )
            }
            document = parsed
        }
        return Self.interpret(document, policy: policy, settings: settings, now: now())
    }

    /// RFC 9701 §5: the answer is a JWS of type `token-introspection+jwt` signed with one of the
    /// issuer's keys, whose `iss` is the issuer, whose `aud` names this client and whose `iat`
    /// is recent; its `token_introspection` member is the answer. Anything else fails closed as
    /// an unavailable introspection (503), never as an answer.
    private func signedAnswer(_ response: OutboundHTTP.Response) async -> Result<JSONValue, VerificationFailure> {
        func unavailable(_ reason: String) -> Result<JSONValue, VerificationFailure> {
            .failure(VerificationFailure(.introspectionUnavailable, reason))
        }
        let type = response.headers.first(name: "content-type")?.lowercased() ?? ""
        guard type.hasPrefix("application/token-introspection+jwt") else {
            return unavailable("the introspection answer is not a signed JWT")
        }
        let text = String(decoding: response.body.readableBytesView, as: UTF8.self)
        let jws: CompactJWS
        switch CompactJWS.parse(text, maximumSize: settings.maximumBodyBytes) {
        case .success(let parsed): jws = parsed
        case .failure(let failure): return unavailable("the signed answer: \(failure.reason)")
        }
        guard jws.type == "token-introspection+jwt" else { return unavailable("the signed answer's typ is wrong") }
        guard let responseKeys else { return unavailable("no keys to verify the signed answer with") }
        let verifier = JWSVerifier(allowedAlgorithms: policy.algorithms.filter { !$0.isSymmetric })
        var verified = false
        for refresh in [false, true] {
            guard let keys = await responseKeys(refresh) else { continue }
            if case .success = verifier.verify(jws, keySet: keys) {
                verified = true
                break
            }
        }
        guard verified else { return unavailable("the signed answer's signature does not verify") }
        guard case .object(let claims)? = try? JSONParser.parse(jws.payload) else {
            return unavailable("the signed answer's payload is not a JSON object")
        }
        guard claims["iss"] == .string(policy.issuer) else { return unavailable("the signed answer's iss is wrong") }
        let audiences: [JSONValue] = claims["aud"]?.arrayValue ?? [claims["aud"] ?? .null]
        guard audiences.contains(.string(settings.clientID)) else {
            return unavailable("the signed answer is not for this client")
        }
        guard case .number(let issuedAt)? = claims["iat"], abs(now() - issuedAt) <= max(60, policy.leeway) else {
            return unavailable("the signed answer's iat is missing or not recent")
        }
        guard case .object? = claims["token_introspection"], let answer = claims["token_introspection"] else {
            return unavailable("the signed answer has no token_introspection")
        }
        return .success(answer)
    }

    /// Reads an RFC 7662 §2.2 response: only `active: true` (a JSON boolean) is active; `exp`,
    /// `nbf`, `iss` and `aud` are checked when present.
    static func interpret(
        _ document: JSONValue,
        policy: IssuerPolicy,
        settings: IntrospectionSettings,
        now: Double
    ) -> Result<VerifiedToken, VerificationFailure> {
        guard document["active"]?.boolValue == true else {
            return .failure(VerificationFailure(.inactive, "the token is not active"))
        }
        if let issuer = document["iss"], issuer.stringValue != policy.issuer {
            return .failure(VerificationFailure(.untrustedIssuer, "'iss' is not the configured issuer"))
        }
        if document["aud"] != nil, let problem = ClaimsValidator.checkAudience(document["aud"], policy: policy) {
            return .failure(problem)
        }
        var expiresAt = now + settings.cacheTTL
        if let exp = document["exp"] {
            guard let value = exp.numberValue else {
                return .failure(VerificationFailure(.invalidExpiration, "'exp' is not a number"))
            }
            expiresAt = value
            if value + policy.leeway <= now { return .failure(VerificationFailure(.expired, "the token has expired")) }
        }
        if let notBefore = document["nbf"]?.numberValue, notBefore - policy.leeway > now {
            return .failure(VerificationFailure(.notYetValid, "the token is not valid yet ('nbf')"))
        }
        return .success(
            VerifiedToken(
                issuerName: policy.name,
                claims: document,
                subject: document["sub"]?.stringValue,
                scopes: ClaimsValidator.scopes(in: document, claimPath: policy.scopeClaim),
                expiresAt: expiresAt,
                leeway: policy.leeway,
                encodedClaims: Base64URL.encode(Array(document.serialized().utf8))
            )
        )
    }
}
