import HTTPTypes
import Logging
import TollgateCore

/// `authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5): the code is checked (client, redirect
/// URI, PKCE verifier, resource) inside the transaction that spends it, so a failed check spends
/// nothing; a replay revokes the grant the code started, in the transaction that sees it.
struct AuthorizationCodeGrant: TokenGrant {
    let type = GrantType.authorizationCode

    func exchange(
        client: RegisteredClient,
        form: [String: String],
        binding: SenderBinding,
        issuer: OAuthIssuer
    ) async throws -> IssuerResponse {
        guard let code = form["code"] else { throw IssuerError.invalidRequest("'code' is missing") }
        let at = issuer.now()
        let request = GrantRules.CodeRequest(
            clientID: client.id,
            redirectURI: form["redirect_uri"],
            codeVerifier: form["code_verifier"],
            resource: form["resource"],
            now: at
        )
        let options = issuer.options
        let outcome = try await issuer.store.redeemCode(
            digest: RandomToken.digest(code),
            now: at,
            grantUntil: at + options.grantLifetime
        ) { record in
            // RFC 9449 §10: a code bound with dpop_jkt goes only to a proof by that key.
            GrantRules.refusal(toRedeem: record, request, options: options) == nil
                && (record.dpopJKT == nil || record.dpopJKT == binding.dpopJKT)
        }
        let record: AuthorizationCodeRecord
        switch outcome {
        case .unknown:
            throw IssuerError.invalidGrant("the code is not valid")
        case .replayed(let replayed):
            // Its grant, and with it whatever the first redemption issued, is revoked.
            issuer.noteRevoked(replayed.familyID)
            issuer.logger.warning(
                "authorization code replayed; its grant is revoked",
                metadata: ["client": "\(client.id)"]
            )
            throw IssuerError.invalidGrant("the code was already used")
        case .refused(let refused):
            if let refusal = GrantRules.refusal(toRedeem: refused, request, options: options) { throw refusal }
            throw IssuerError.invalidDPoPProof("the code is bound to another key (dpop_jkt)")
        case .redeemed(let redeemed):
            record = redeemed
        }
        let (answer, issued) = try await issuer.tokenAnswer(
            client: client,
            username: record.username,
            scopes: record.scopes,
            resource: GrantRules.authorizedAudience(record.resource, scopes: record.scopes, options),
            authenticatedAt: record.authenticatedAt,
            nonce: record.nonce,
            familyID: record.familyID ?? RandomToken.make(bytes: 16),
            generation: 0,
            binding: binding
        )
        if let refresh = issued.refresh { try await issuer.store.saveRefreshToken(refresh) }
        return .json(answer, headers: IssuerResponse.noStore)
    }
}
