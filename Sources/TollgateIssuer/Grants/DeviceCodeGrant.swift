import HTTPTypes
import Logging
import TollgateCore

/// The device code grant's token request (RFC 8628 §3.4, §3.5): one poll in one transaction;
/// the tokens exactly once, and a second redemption revokes the grant.
struct DeviceCodeGrant: TokenGrant {
    let type = GrantType.deviceCode

    func exchange(
        client: RegisteredClient,
        form: [String: String],
        binding: SenderBinding,
        issuer: OAuthIssuer
    ) async throws -> IssuerResponse {
        guard let code = form["device_code"] else { throw IssuerError.invalidRequest("'device_code' is missing") }
        let at = issuer.now()
        let options = issuer.options
        let resource = form["resource"]
        guard
            let record = try await issuer.store.pollDeviceAuthorization(
                digest: RandomToken.digest(code),
                clientID: client.id,
                now: at,
                accept: { GrantRules.refusal(ofResource: resource, for: $0, options: options) == nil }
            )
        else { throw IssuerError.invalidGrant("the device code is not valid") }
        if let refusal = GrantRules.refusal(ofResource: resource, for: record, options: options) { throw refusal }
        guard record.expiresAt > at else {
            throw IssuerError(.expiredToken, "the device code has expired")
        }
        switch record.status {
        case .pending:
            if let last = record.lastPolledAt, at - last < record.interval {
                throw IssuerError(.slowDown, "poll less often")
            }
            throw IssuerError(.authorizationPending, "the user has not yet confirmed the code")
        case .denied:
            throw IssuerError(.accessDenied, "the user denied the request")
        case .redeemed:
            // A second redemption: whoever holds the device code besides the device, the grant's
            // tokens are revoked.
            if let grant = record.grantID { try await issuer.revokeGrant(grant) }
            issuer.logger.warning("device code used twice; its grant is revoked", metadata: ["client": "\(client.id)"])
            throw IssuerError.invalidGrant("the device code was already used")
        case .approved:
            guard let username = record.username else { throw IssuerError.invalidGrant("the device code is not valid") }
            let audience = GrantRules.authorizedAudience(record.resource, scopes: record.scopes, issuer.options)
            let (answer, issued) = try await issuer.tokenAnswer(
                client: client,
                username: username,
                scopes: record.scopes,
                resource: audience,
                authenticatedAt: record.authenticatedAt ?? at,
                nonce: nil,
                familyID: record.grantID ?? RandomToken.make(bytes: 16),
                generation: 0,
                binding: binding
            )
            if let refresh = issued.refresh { try await issuer.store.saveRefreshToken(refresh) }
            return .json(answer, headers: IssuerResponse.noStore)
        }
    }
}
