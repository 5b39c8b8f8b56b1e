import HTTPTypes
import TollgateCore

extension OAuthIssuer {
    /// `value` when `store_tokens: plain` asks for tokens at rest as they are; `nil` (only the
    /// digest kept) by default.
    func keptValue(_ value: String) -> String? { options.storeTokens == .plain ? value : nil }

    /// The grant of a client's own tokens (`client_credentials`): revoked with the client.
    static func clientGrant(_ clientID: String) -> String { "client:" + clientID }

    /// The scopes a request gets: what it asked for (default: all the client may have), kept
    /// only where the client may have them and the issuer knows them; asking only for what it may
    /// not have is `invalid_scope`.
    func grantedScopes(
        requested: [String]?,
        client: RegisteredClient,
        userScopesAllowed: Bool
    ) throws(IssuerError)
        -> [String]
    {
        let known = Set(options.supportedScopes + options.apis.flatMap(\.scopes))
        let allowed = client.scopes.filter {
            known.contains($0) && (userScopesAllowed || options.api(forScope: $0) != nil)
        }
        guard let requested else { return allowed }
        if client.registeredDynamically == true {
            // A client registered through RFC 7591 may ask for any scope the issuer offers: the
            // person's consent decides, and a scope it cannot have is an error, never dropped
            // in silence (a client stepping up to the union of scopes a resource names, as the
            // MCP clients do, must learn it did not get one).
            for scope in requested
            where !known.contains(scope) || (!userScopesAllowed && options.api(forScope: scope) == nil) {
                throw .invalidScope("a requested scope is not offered")
            }
            var seen = Set<String>()
            return requested.filter { seen.insert($0).inserted }
        }
        let granted = requested.filter { allowed.contains($0) }
        if granted.isEmpty && !requested.isEmpty {
            throw .invalidScope("none of the requested scopes may be granted to this client")
        }
        var seen = Set<String>()
        return granted.filter { seen.insert($0).inserted }
    }

    struct MintedToken {
        let token: String
        let record: TokenRecord
        /// The access token is DPoP-bound (`token_type: DPoP`).
        var isBound = false
    }

    /// An access token: an RFC 9068 JWT whose `aud` is the API its scopes belong to, or — without
    /// an API scope, or with `jwt_access_token: false` — an opaque reference. Either way it is
    /// recorded (by digest) for introspection and revocation.
    func mintAccessToken(
        client: RegisteredClient,
        subject: String,
        scopes: [String],
        resource: String?,
        familyID: String? = nil,
        username: String? = nil,
        authenticatedAt: Int? = nil,
        binding: SenderBinding = SenderBinding()
    ) async throws -> MintedToken {
        let issuedAt = now()
        var scopes = scopes
        let api = try GrantRules.audience(forResource: resource, scopes: scopes, options: options)
        if let api {
            // RFC 8707: the token is for one API; scopes of other APIs are left out.
            scopes = scopes.filter { options.api(forScope: $0) == nil || api.scopes.contains($0) }
        }
        let tokenID = RandomToken.make(bytes: 16)
        let expiresAt = issuedAt + options.accessTokenTTL(for: client)
        let token: String
        if let api, options.jwtAccessToken {
            var claims: [String: JSONValue] = [
                "iss": .string(options.issuer),
                "sub": .string(subject),
                "aud": .string(api.audience),
                "client_id": .string(client.id),
                "scope": .string(scopes.joined(separator: " ")),
                "iat": .number(Double(issuedAt)),
                "exp": .number(Double(expiresAt)),
                "jti": .string(tokenID),
            ]
            // The grant it belongs to, so the gate in this process refuses it once the grant is
            // revoked (`RevokedGrants`).
            if let familyID { claims["grant_id"] = .string(familyID) }
            // RFC 9449 §6 and RFC 8705 §3.1: bound to the key of the client's proof, its
            // certificate, or both.
            if let confirmation = binding.confirmation { claims["cnf"] = confirmation }
            // RFC 9068 §2.2.1 and RFC 9470: when and how the person signed in, for a gate that
            // asks for a recent or a stronger authentication.
            if let authenticatedAt {
                claims["auth_time"] = .number(Double(authenticatedAt))
                claims["acr"] = .string(options.acr)
            }
            // The person's claims the API asks for, so the gate in front of it can forward them —
            // those a granted scope releases, so nothing the person did not consent to.
            if let username, !api.claims.isEmpty, let user = try await store.user(username: username) {
                let released = releasedClaims(user, scopes: scopes)
                for name in api.claims where claims[name] == nil { claims[name] = released[name] }
            }
            token = try keys.snapshot.active.sign(claims: .object(claims), type: "at+jwt")
        } else {
            token = RandomToken.make()
        }
        var record = TokenRecord(
            digest: RandomToken.digest(token),
            kind: .access,
            clientID: client.id,
            subject: subject,
            scope: scopes,
            audience: api?.audience,
            issuedAt: issuedAt,
            expiresAt: expiresAt,
            tokenID: tokenID,
            familyID: familyID,
            username: username
        )
        record.value = keptValue(token)
        // An opaque token is bound in its record: introspection answers say so (RFC 9449 §6.2,
        // RFC 8705 §3.2).
        record.dpopJKT = binding.dpopJKT
        record.certificateThumbprint = binding.certificateThumbprint
        record.authenticatedAt = authenticatedAt
        let isBound = binding.dpopJKT != nil
        try await store.saveToken(record)
        return MintedToken(
            token: token,
            record: record,
            isBound: isBound
        )
    }

    /// RFC 6749 §2.3.1: `client_secret_basic` (id and secret form-decoded) or
    /// `client_secret_post`, never both; a public client names itself with `client_id` alone.
    /// Any failure is `invalid_client`, 401, with a challenge.
    func authenticateClient(_ request: HTTPRequest, form: [String: String]) async throws -> RegisteredClient {
        var id: String
        var secret: String?
        if let header = request.headerFields[.authorization] {
            guard let credentials = FormURLEncoding.basicCredentials(header) else {
                throw IssuerError.invalidClient
            }
            if form["client_secret"] != nil {
                throw IssuerError.invalidRequest("the client authenticates in more than one way")
            }
            if let named = form["client_id"], named != credentials.id {
                throw IssuerError.invalidClient
            }
            id = credentials.id
            secret = credentials.secret
        } else if let named = form["client_id"] {
            id = named
            secret = form["client_secret"]
        } else {
            throw IssuerError.invalidClient
        }
        guard let client = try await client(id: id), !client.revoked else {
            throw IssuerError.invalidClient
        }
        switch (client.secret, secret) {
        case (nil, nil):
            return client
        case (.some, let presented?) where client.secretMatches(presented, now: now()):
            return client
        default:
            throw IssuerError.invalidClient
        }
    }

    /// A client that proves it holds a secret (introspection and revocation callers).
    func authenticateConfidentialClient(
        _ request: HTTPRequest,
        form: [String: String]
    ) async throws
        -> RegisteredClient
    {
        let client = try await authenticateClient(request, form: form)
        guard client.secret != nil else { throw IssuerError.invalidClient }
        return client
    }
}
