import HTTPTypes
import Logging
import TollgateCore

extension OAuthIssuer {
    /// RFC 7662: the state of a token, for an authenticated client. Anything unknown, expired
    /// or revoked is `{"active": false}`, nothing more.
    func introspect(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        _ = try await authenticateConfidentialClient(request, form: form)
        guard let token = form["token"] else { throw OAuthError.invalidRequest("'token' is missing") }
        guard let record = try await activeRecord(for: token) else {
            return .json(.object(["active": .bool(false)]), headers: IssuerResponse.noStore)
        }
        return .json(introspectionAnswer(record), headers: IssuerResponse.noStore)
    }

    /// The record of `token` when it is active now.
    func activeRecord(for token: String) async throws -> TokenRecord? {
        guard let record = try await store.token(digest: RandomToken.digest(token)), record.isActive(at: now()) else {
            return nil
        }
        return record
    }

    func introspectionAnswer(_ record: TokenRecord) -> JSONValue {
        var answer: [String: JSONValue] = [
            "active": .bool(true),
            "client_id": .string(record.clientID),
            "sub": .string(record.subject),
            "scope": .string(record.scope.joined(separator: " ")),
            "iss": .string(options.issuer),
            "iat": .number(Double(record.issuedAt)),
            "exp": .number(Double(record.expiresAt)),
            "token_type": .string(record.kind == .access ? "Bearer" : "refresh_token"),
        ]
        if let audience = record.audience { answer["aud"] = .string(audience) }
        if let tokenID = record.tokenID { answer["jti"] = .string(tokenID) }
        return .object(answer)
    }

    /// RFC 7009: revokes a token the calling client holds; 200 whether or not there was one.
    func revoke(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        let client = try await authenticateConfidentialClient(request, form: form)
        guard let token = form["token"] else { throw OAuthError.invalidRequest("'token' is missing") }
        let digest = RandomToken.digest(token)
        if let record = try await store.token(digest: digest), record.clientID == client.id {
            try await store.revokeToken(digest: digest)
            logger.info("token revoked", metadata: ["client": "\(client.id)", "kind": "\(record.kind.rawValue)"])
        }
        return .empty(headers: IssuerResponse.noStore)
    }
}
