import TollgateCore

/// The issuer as Tollgate's verifier sees it when both run in one process: its published keys
/// and its token store, read directly, with no HTTP call. A revoked token is refused on the next
/// request (nothing is cached here).
public final class IssuerVerificationSource: VerificationKeySource, IntrospectionSource, GrantRevocationSource {
    let issuer: OAuthIssuer
    /// The verifier's name for this issuer (routes' `issuers:`).
    let issuerName: String
    /// Opaque tokens minted for another API are refused, as their JWTs would be.
    let audiences: [String]

    public init(issuer: OAuthIssuer, issuerName: String, audiences: [String]) {
        self.issuer = issuer
        self.issuerName = issuerName
        self.audiences = audiences
    }

    public func currentKeys() -> JSONWebKeySet? { issuer.keys.snapshot.keySet }

    /// The key ring is always current: a new key is there as soon as it is published.
    public func refreshForUnknownKey() async -> Bool { true }

    public var isReady: Bool { true }

    /// The issuer's revoked grants: its JWT access tokens are refused once their grant is.
    public func isRevoked(grantID: String) -> Bool { issuer.revokedGrants.isRevoked(grantID: grantID) }

    public func cachedOutcome(for digest: TokenDigest) -> Result<VerifiedToken, VerificationFailure>? { nil }

    public func introspect(_ token: String, digest: TokenDigest) async -> Result<VerifiedToken, VerificationFailure> {
        let record: TokenRecord?
        do {
            record = try await issuer.activeRecord(for: token)
        } catch {
            return .failure(VerificationFailure(.introspectionUnavailable, "the issuer's store failed: \(error)"))
        }
        guard let record, record.kind == .access else {
            return .failure(VerificationFailure(.inactive, "the token is not active"))
        }
        if let audience = record.audience, !audiences.isEmpty, !audiences.contains(audience) {
            return .failure(VerificationFailure(.audienceMismatch, "'aud' does not name a configured audience"))
        }
        let claims: JSONValue
        do {
            claims = try await issuer.introspectionAnswer(record)
        } catch {
            return .failure(VerificationFailure(.introspectionUnavailable, "the issuer's store failed: \(error)"))
        }
        return .success(
            VerifiedToken(
                issuerName: issuerName,
                claims: claims,
                subject: record.subject,
                scopes: record.scope,
                expiresAt: Double(record.expiresAt),
                leeway: 0,
                encodedClaims: Base64URL.encode(Array(claims.serialized().utf8))
            )
        )
    }
}
