import HTTPTypes
import Logging
import TollgateCore

/// `client_credentials` (RFC 6749 §4.4): a token for the client itself, with the API scopes it
/// asked for (or all it may have), for a resource only with a scope of it (RFC 8707), never a
/// refresh token. Its tokens carry the client's own grant, revoked with the client.
struct ClientCredentialsGrant: TokenGrant {
    let type = GrantType.clientCredentials

    func exchange(
        client: RegisteredClient,
        form: [String: String],
        binding: SenderBinding,
        issuer: OAuthIssuer
    ) async throws -> IssuerResponse {
        guard client.secret != nil else {
            throw IssuerError.unauthorizedClient("a public client cannot use client_credentials")
        }
        let requested = form["scope"].map { $0.split(separator: " ").map(String.init) }
        let scopes = try issuer.grantedScopes(requested: requested, client: client, userScopesAllowed: false)
        // RFC 8707: a resource only with a scope of it that the client asked for and may have.
        _ = try GrantRules.audience(forResource: form["resource"], scopes: scopes, options: issuer.options)
        let minted = try await issuer.mintAccessToken(
            client: client,
            subject: client.id,
            scopes: scopes,
            resource: form["resource"],
            familyID: OAuthIssuer.clientGrant(client.id),
            binding: binding
        )
        var answer: [String: JSONValue] = [
            "access_token": .string(minted.token),
            "token_type": .string(minted.isBound ? "DPoP" : "Bearer"),
            "expires_in": .number(Double(minted.record.expiresAt - minted.record.issuedAt)),
        ]
        if !minted.record.scope.isEmpty { answer["scope"] = .string(minted.record.scope.joined(separator: " ")) }
        return .json(.object(answer), headers: IssuerResponse.noStore)
    }
}
