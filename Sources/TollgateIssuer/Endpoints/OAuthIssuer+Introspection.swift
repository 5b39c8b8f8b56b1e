import HTTPTypes
import Logging
import TollgateCore

extension OAuthIssuer {
    /// RFC 7662: the state of an access or refresh token, for an authenticated confidential
    /// client. A client learns about its own tokens only, unless the configuration names it a
    /// resource server (`introspection: allowed`, §4); anything else, and anything unknown,
    /// expired or revoked, is `{"active": false}`, nothing more.
    func introspect(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        let caller = try await authenticateConfidentialClient(request, form: form)
        guard let token = form["token"] else { throw IssuerError.invalidRequest("'token' is missing") }
        // RFC 9701: a caller that asks gets the answer as a JWT signed with the issuer's key.
        let signed = (request.headerFields[.accept] ?? "").lowercased().contains("application/token-introspection+jwt")
        // Made only when it is the answer: a signed one costs a signature.
        func inactive() throws -> IssuerResponse {
            let body = JSONValue.object(["active": .bool(false)])
            return signed
                ? try signedIntrospection(body, audience: caller.id)
                : IssuerResponse.json(body, headers: IssuerResponse.noStore)
        }
        let refreshFirst = form["token_type_hint"] == "refresh_token"
        let answer: (clientID: String, body: JSONValue)?
        if refreshFirst {
            answer = try await refreshIntrospection(token)
        } else if let record = try await activeRecord(for: token) {
            answer = (record.clientID, try await introspectionAnswer(record))
        } else {
            answer = try await refreshIntrospection(token)
        }
        guard let answer, answer.clientID == caller.id || caller.mayIntrospect == true else { return try inactive() }
        if signed { return try signedIntrospection(answer.body, audience: caller.id) }
        return .json(answer.body, headers: IssuerResponse.noStore)
    }

    /// RFC 9701 §5: `{iss, aud, iat, token_introspection}` signed with the active key, `typ`
    /// `token-introspection+jwt`, for the client that asked.
    func signedIntrospection(_ answer: JSONValue, audience: String) throws -> IssuerResponse {
        let claims: JSONValue = .object([
            "iss": .string(options.issuer),
            "aud": .string(audience),
            "iat": .number(Double(now())),
            "token_introspection": answer,
        ])
        let jwt = try keys.snapshot.active.sign(claims: claims, type: "token-introspection+jwt")
        var fields = IssuerResponse.noStore
        fields[.contentType] = "application/token-introspection+jwt"
        return IssuerResponse(head: HTTPResponse(status: .ok, headerFields: fields), body: Array(jwt.utf8))
    }

    /// The introspection answer of an active refresh token.
    private func refreshIntrospection(_ token: String) async throws -> (clientID: String, body: JSONValue)? {
        guard let record = try await store.refreshToken(digest: RandomToken.digest(token)),
            GrantRules.isActive(record, now: now())
        else { return nil }
        let client = try await store.client(id: record.clientID)
        var answer: [String: JSONValue] = [
            "active": .bool(true),
            "client_id": .string(record.clientID),
            "scope": .string(record.scopes.joined(separator: " ")),
            "iss": .string(options.issuer),
            "exp": .number(Double(record.expiresAt)),
            "token_type": .string("refresh_token"),
        ]
        if let client { answer["sub"] = .string(subject(for: record.username, client: client)) }
        if let resource = record.resource { answer["aud"] = .string(resource) }
        let binding = SenderBinding(dpopJKT: record.dpopJKT, certificateThumbprint: record.certificateThumbprint)
        if let confirmation = binding.confirmation { answer["cnf"] = confirmation }
        return (record.clientID, .object(answer))
    }

    /// The name a single revoked JWT is remembered under among the revoked grants (the gate
    /// checks a token's `jti` under it, `VerifiedToken.tokenRevocationKey`).
    static func tokenRevocationKey(_ tokenID: String) -> String { "jti:" + tokenID }

    /// The record of `token` when it is active now.
    func activeRecord(for token: String) async throws -> TokenRecord? {
        guard let record = try await store.token(digest: RandomToken.digest(token)), record.isActive(at: now()) else {
            return nil
        }
        return record
    }

    /// The answer for an active access token: its members, and the person's claims its scopes
    /// release.
    func introspectionAnswer(_ record: TokenRecord) async throws -> JSONValue {
        var answer: [String: JSONValue] = [
            "active": .bool(true),
            "client_id": .string(record.clientID),
            "sub": .string(record.subject),
            "scope": .string(record.scope.joined(separator: " ")),
            "iss": .string(options.issuer),
            "iat": .number(Double(record.issuedAt)),
            "exp": .number(Double(record.expiresAt)),
            "token_type": .string(
                record.kind == .access ? (record.dpopJKT == nil ? "Bearer" : "DPoP") : "refresh_token"
            ),
        ]
        // RFC 9449 §6.2 and RFC 8705 §3.2: a resource server that introspects must learn the
        // token is bound.
        let binding = SenderBinding(dpopJKT: record.dpopJKT, certificateThumbprint: record.certificateThumbprint)
        if let confirmation = binding.confirmation { answer["cnf"] = confirmation }
        // RFC 9470: what a step-up rule reads, as the JWT carries it.
        if let authenticatedAt = record.authenticatedAt {
            answer["auth_time"] = .number(Double(authenticatedAt))
            answer["acr"] = .string(options.acr)
        }
        if let audience = record.audience { answer["aud"] = .string(audience) }
        if let tokenID = record.tokenID { answer["jti"] = .string(tokenID) }
        if let username = record.username, let user = try await store.user(username: username) {
            answer.merge(releasedClaims(user, scopes: record.scope)) { own, _ in own }
        }
        return .object(answer)
    }

    /// RFC 7009: revokes a token the calling client holds; 200 whether or not there was one. A
    /// confidential client authenticates, a public one names itself with `client_id` (§2.1,
    /// §5: the token is the credential). Revoking a refresh token revokes its whole grant, the
    /// access tokens issued with it included (§2.1).
    func revoke(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        let client = try await authenticateClient(request, form: form)
        guard let token = form["token"] else { throw IssuerError.invalidRequest("'token' is missing") }
        let digest = RandomToken.digest(token)
        if let record = try await store.refreshToken(digest: digest) {
            if record.clientID == client.id {
                try await revokeGrant(record.familyID)
                logger.info("refresh token revoked with its grant", metadata: ["client": "\(client.id)"])
            }
        } else if let record = try await store.token(digest: digest), record.clientID == client.id {
            try await store.revokeToken(digest: digest)
            // A JWT is checked without the store: its `jti` joins the revoked set the gates read.
            if let tokenID = record.tokenID {
                try await store.revokeGrant(Self.tokenRevocationKey(tokenID), until: record.expiresAt, now: now())
                noteRevoked(Self.tokenRevocationKey(tokenID))
            }
            logger.info("token revoked", metadata: ["client": "\(client.id)", "kind": "\(record.kind.rawValue)"])
        }
        return .empty(headers: IssuerResponse.noStore)
    }
}
