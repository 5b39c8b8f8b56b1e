import HTTPTypes
import Logging
import TollgateCore

/// `refresh_token` (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): rotation as a
/// compare-and-set; a reuse is a retry only within `refresh_token_reuse_interval` (the answer kept
/// sealed under the spent token), and otherwise revokes the grant.
struct RefreshTokenGrant: TokenGrant {
    let type = GrantType.refreshToken

    /// The certificate of the connection the refresh came over, whether or not the client is
    /// declared for certificate-bound tokens.
    static var presentedCertificate: String? { OAuthIssuer.clientCertificate }

    func exchange(
        client: RegisteredClient,
        form: [String: String],
        binding: SenderBinding,
        issuer: OAuthIssuer
    ) async throws -> IssuerResponse {
        guard let token = form["refresh_token"] else { throw IssuerError.invalidRequest("'refresh_token' is missing") }
        let digest = RandomToken.digest(token)
        guard let current = try await issuer.store.refreshToken(digest: digest), current.clientID == client.id else {
            throw IssuerError.invalidGrant("the refresh token is not valid")
        }
        // RFC 9449 §5: a bound refresh token is refreshed only with a proof by its key.
        if let bound = current.dpopJKT, bound != binding.dpopJKT {
            throw IssuerError.invalidDPoPProof("the refresh token is bound to another key")
        }
        // RFC 8705 §4: a bound refresh token only over the certificate it was issued over.
        if let bound = current.certificateThumbprint, bound != Self.presentedCertificate {
            throw IssuerError.invalidGrant("the refresh token is bound to another client certificate")
        }
        let scopes = try GrantRules.refreshScopes(requested: form["scope"], granted: current.scopes)
        if let resource = form["resource"], resource != current.resource {
            throw IssuerError.invalidTarget("'resource' was not authorised for this refresh token")
        }
        let (answer, issued) = try await issuer.tokenAnswer(
            client: client,
            username: current.username,
            scopes: scopes,
            resource: current.resource,
            authenticatedAt: current.authenticatedAt,
            nonce: nil,
            familyID: current.familyID,
            generation: current.generation + 1,
            keepOfflineAccess: true,
            binding: SenderBinding(
                dpopJKT: current.dpopJKT ?? binding.dpopJKT,
                certificateThumbprint: current.certificateThumbprint ?? binding.certificateThumbprint
            )
        )
        // The successor's record carries the original grant's scopes, so narrowing one refresh
        // does not narrow the family.
        var successor = issued.refresh!
        successor.scopes = current.scopes
        let interval = issuer.options.refreshTokenReuseInterval
        let at = issuer.now()
        let outcome = try await issuer.store.rotateRefreshToken(
            digest: digest,
            clientID: client.id,
            successor: successor,
            answer: interval > 0 ? try RetryAnswer.seal(answer.serialized(), refreshToken: token) : nil,
            now: at,
            reuseInterval: interval,
            grantUntil: at + issuer.options.grantLifetime
        )
        switch outcome {
        case .rotated:
            return IssuerResponse.json(answer, headers: IssuerResponse.noStore)
        case .replayWithinGrace(let sealed):
            for token in issued.access { try await issuer.store.revokeToken(digest: token) }
            guard let given = RetryAnswer.open(sealed, refreshToken: token) else {
                throw IssuerError.invalidGrant("the refresh token is not valid")
            }
            var fields = IssuerResponse.noStore
            fields[.contentType] = "application/json"
            return IssuerResponse(head: HTTPResponse(status: .ok, headerFields: fields), body: Array(given.utf8))
        case .refused(let familyRevoked):
            for token in issued.access { try await issuer.store.revokeToken(digest: token) }
            if familyRevoked {
                issuer.noteRevoked(current.familyID)
                issuer.logger.warning(
                    "refresh token reused after rotation; its grant is revoked",
                    metadata: ["client": "\(client.id)", "grant": "\(current.familyID)"]
                )
            }
            throw IssuerError.invalidGrant("the refresh token is not valid")
        }
    }
}
