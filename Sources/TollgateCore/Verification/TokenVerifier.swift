/// Decides whether a bearer token is good, for any of the configured issuers.
///
/// The synchronous `verifyLocally` answers from the caches, the loaded keys and the CPU alone;
/// only when it needs a key refresh or an introspection call does `verify` suspend. A JWT picks
/// its issuer by its (not yet trusted) `iss`, then must verify with that issuer's keys; an opaque
/// token goes to the first accepted issuer that introspects.
public final class TokenVerifier: Sendable {
    public enum LocalOutcome: Sendable {
        case verified(VerifiedToken)
        case failed(VerificationFailure)
        case needsKeyRefresh(IssuerVerifier)
        case needsIntrospection(IssuerVerifier)
    }

    public let issuers: [IssuerVerifier]
    public let cache: VerifiedTokenCache
    /// What a verified JWT keeps of its claims; `nil` keeps them all.
    public let claimProjection: ClaimProjection?
    /// The claim names a JWT's payload is parsed into (`JSONParser.parseObject(_:keeping:)`);
    /// `nil` parses it whole.
    private let parsedClaimNames: Set<String>?
    private let issuerIndexByIssuer: [String: Int]
    /// The issuers that know their revoked grants, by name (usually none).
    private let revocationsByIssuerName: [String: any GrantRevocationSource]
    private let maximumTokenSize: Int
    private let now: @Sendable () -> Double

    public init(
        issuers: [IssuerVerifier],
        cache: VerifiedTokenCache = VerifiedTokenCache(maximumEntries: 100_000),
        claimProjection: ClaimProjection? = nil,
        now: @escaping @Sendable () -> Double = wallClockSeconds
    ) {
        self.issuers = issuers
        self.cache = cache
        self.claimProjection = claimProjection
        parsedClaimNames = claimProjection?.namesToParse(scopeClaims: issuers.compactMap(\.policy.scopeClaim))
        self.now = now
        var index: [String: Int] = [:]
        for (position, issuer) in issuers.enumerated() where index[issuer.policy.issuer] == nil {
            index[issuer.policy.issuer] = position
        }
        issuerIndexByIssuer = index
        var revocations: [String: any GrantRevocationSource] = [:]
        for issuer in issuers { if let source = issuer.revocations { revocations[issuer.policy.name] = source } }
        revocationsByIssuerName = revocations
        maximumTokenSize = issuers.map(\.policy.maximumTokenSize).max() ?? 8192
    }

    /// True when every issuer with a key source has loaded its first key set.
    public var isReady: Bool {
        issuers.allSatisfy { $0.keys?.isReady ?? true }
    }

    /// - Parameter acceptedIssuers: issuer names the route accepts; `nil` accepts all.
    public func verify(
        _ token: String,
        acceptedIssuers: [String]? = nil
    ) async -> Result<VerifiedToken, VerificationFailure> {
        let digest = TokenDigest(token: token)
        switch verifyLocally(token, digest: digest, acceptedIssuers: acceptedIssuers) {
        case .verified(let verified):
            return .success(verified)
        case .failed(let failure):
            return .failure(failure)
        case .needsIntrospection(let issuer):
            guard let introspection = issuer.introspection else {
                return .failure(VerificationFailure(.malformedToken, "the token is not a JWT"))
            }
            return await introspection.introspect(token, digest: digest)
        case .needsKeyRefresh(let issuer):
            let refreshed = await issuer.keys?.refreshForUnknownKey() ?? false
            if refreshed {
                switch verifyLocally(token, digest: digest, acceptedIssuers: acceptedIssuers) {
                case .verified(let verified): return .success(verified)
                case .failed(let failure): return .failure(failure)
                case .needsIntrospection, .needsKeyRefresh: break
                }
            }
            if issuer.keySet() == nil {
                return .failure(VerificationFailure(.keysUnavailable, "the issuer's keys could not be loaded"))
            }
            return .failure(VerificationFailure(.unknownKey, "no key with the token's 'kid' is known"))
        }
    }

    /// Answers without suspending, or says what asynchronous step is needed.
    public func verifyLocally(_ token: String, digest: TokenDigest, acceptedIssuers: [String]?) -> LocalOutcome {
        let time = now()
        if let cached = cache.lookup(digest, now: time) {
            if let acceptedIssuers, !acceptedIssuers.contains(cached.issuerName) {
                return .failed(
                    VerificationFailure(.untrustedIssuer, "the token's issuer is not accepted on this route")
                )
            }
            if cached.isExpired(at: time) { return .failed(VerificationFailure(.expired, "the token has expired")) }
            if let failure = revokedGrant(cached) { return .failed(failure) }
            return .verified(cached)
        }
        if !Self.looksLikeJWS(token) {
            return opaque(token, digest: digest, acceptedIssuers: acceptedIssuers)
        }
        let jws: CompactJWS
        switch CompactJWS.parse(token, maximumSize: maximumTokenSize) {
        case .success(let parsed): jws = parsed
        case .failure(let failure): return .failed(failure)
        }
        let parsed: JSONValue?
        if let parsedClaimNames {
            parsed = try? JSONParser.parseObject(jws.payload, keeping: parsedClaimNames)
        } else {
            parsed = try? JSONParser.parse(jws.payload)
        }
        guard let claims = parsed, case .object = claims else {
            return .failed(VerificationFailure(.malformedClaims, "the payload is not a JSON object"))
        }
        guard let issuerString = claims["iss"]?.stringValue, let position = issuerIndexByIssuer[issuerString] else {
            return .failed(VerificationFailure(.untrustedIssuer, "'iss' is not a configured issuer"))
        }
        let issuer = issuers[position]
        if let acceptedIssuers, !acceptedIssuers.contains(issuer.policy.name) {
            return .failed(VerificationFailure(.untrustedIssuer, "the token's issuer is not accepted on this route"))
        }
        if token.utf8.count > issuer.policy.maximumTokenSize {
            return .failed(
                VerificationFailure(.tokenTooLarge, "the token is larger than \(issuer.policy.maximumTokenSize) bytes")
            )
        }
        guard let keySet = issuer.keySet() else {
            if issuer.keys == nil, issuer.introspection != nil { return .needsIntrospection(issuer) }
            return .needsKeyRefresh(issuer)
        }
        switch issuer.jwsVerifier.verify(jws, keySet: keySet) {
        case .success:
            break
        case .failure(let failure):
            if failure.code == .unknownKey, issuer.keys != nil { return .needsKeyRefresh(issuer) }
            return .failed(failure)
        }
        switch ClaimsValidator.validate(
            claims: claims,
            headerType: jws.type,
            policy: issuer.policy,
            now: time,
            encodedClaims: claimProjection?.keepsEncodedClaims == false ? "" : String(jws.payloadSegment)
        ) {
        case .success(var verified):
            if let failure = revokedGrant(verified) { return .failed(failure) }
            if let claimProjection { verified = verified.projected(claimProjection) }
            cache.store(verified, for: digest, until: verified.expiresAt + verified.leeway, now: time)
            return .verified(verified)
        case .failure(let failure):
            return .failed(failure)
        }
    }

    /// A refusal when `token` carries a grant its issuer (in this process) has revoked.
    @inline(__always)
    private func revokedGrant(_ token: VerifiedToken) -> VerificationFailure? {
        guard let grant = token.grantID, !revocationsByIssuerName.isEmpty,
            let revocations = revocationsByIssuerName[token.issuerName]
        else { return nil }
        if revocations.isRevoked(grantID: grant) {
            return VerificationFailure(.inactive, "the token's grant was revoked")
        }
        if let key = token.tokenRevocationKey, revocations.isRevoked(grantID: key) {
            return VerificationFailure(.inactive, "the token was revoked")
        }
        return nil
    }

    private func opaque(_ token: String, digest: TokenDigest, acceptedIssuers: [String]?) -> LocalOutcome {
        let candidate = issuers.first { issuer in
            issuer.introspection != nil && (acceptedIssuers?.contains(issuer.policy.name) ?? true)
        }
        guard let candidate, let introspection = candidate.introspection else {
            return .failed(VerificationFailure(.malformedToken, "the token is not a JWT and no issuer introspects"))
        }
        if token.utf8.count > candidate.policy.maximumTokenSize {
            return .failed(
                VerificationFailure(
                    .tokenTooLarge,
                    "the token is larger than \(candidate.policy.maximumTokenSize) bytes"
                )
            )
        }
        if let cached = introspection.cachedOutcome(for: digest) {
            switch cached {
            case .success(let verified): return .verified(verified)
            case .failure(let failure): return .failed(failure)
            }
        }
        return .needsIntrospection(candidate)
    }

    /// A JWS or JWE starts with a base64url JSON header, `eyJ` (`{"`) in practice, and has two or
    /// four dots; anything else is treated as an opaque reference token.
    static func looksLikeJWS(_ token: String) -> Bool {
        guard token.utf8.starts(with: "eyJ".utf8) else { return false }
        let count = token.utf8.withContiguousStorageIfAvailable { bytes in
            var dots = 0
            for byte in bytes where byte == UInt8(ascii: ".") { dots += 1 }
            return dots
        }
        let dots = count ?? token.utf8.reduce(0) { $0 + ($1 == UInt8(ascii: ".") ? 1 : 0) }
        return dots == 2 || dots == 4
    }
}
