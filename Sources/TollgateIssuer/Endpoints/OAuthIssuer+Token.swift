import HTTPTypes
import TollgateCore

extension OAuthIssuer {
    /// The token endpoint (RFC 6749 §3.2).
    func token(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        guard let grantName = form["grant_type"] else { throw OAuthError.invalidRequest("'grant_type' is missing") }
        guard let grant = GrantType(rawValue: grantName), options.grantTypes.contains(grant) else {
            throw OAuthError.unsupportedGrantType
        }
        let client = try await authenticateClient(request, form: form)
        guard client.grantTypes.contains(grant) else {
            throw OAuthError.unauthorizedClient("the client may not use \(grant.rawValue)")
        }
        switch grant {
        case .clientCredentials:
            return try await clientCredentials(client, form: form)
        case .authorizationCode:
            return try await authorizationCode(client, form: form)
        case .refreshToken:
            return try await refresh(client, form: form)
        case .deviceCode:
            return try await deviceCode(client, form: form)
        }
    }

    /// RFC 6749 §4.4: a token for the client itself, with the API scopes it asked for (or all it
    /// may have), never a refresh token.
    func clientCredentials(_ client: RegisteredClient, form: [String: String]) async throws -> IssuerResponse {
        guard client.secret != nil else {
            throw OAuthError.unauthorizedClient("a public client cannot use client_credentials")
        }
        let requested = form["scope"].map { $0.split(separator: " ").map(String.init) }
        let scopes = try grantedScopes(requested: requested, client: client, userScopesAllowed: false)
        // RFC 8707: a resource only with a scope of it that the client asked for and may have.
        _ = try GrantRules.audience(forResource: form["resource"], scopes: scopes, options: options)
        let minted = try await mintAccessToken(
            client: client,
            subject: client.id,
            scopes: scopes,
            resource: form["resource"],
            familyID: Self.clientGrant(client.id)
        )
        var answer: [String: JSONValue] = [
            "access_token": .string(minted.token),
            "token_type": .string("Bearer"),
            "expires_in": .number(Double(options.accessTokenTTL)),
        ]
        if !minted.record.scope.isEmpty { answer["scope"] = .string(minted.record.scope.joined(separator: " ")) }
        return .json(.object(answer), headers: IssuerResponse.noStore)
    }

    /// The grant of a client's own tokens (`client_credentials`): revoked with the client.
    static func clientGrant(_ clientID: String) -> String { "client:" + clientID }

    /// The scopes a request gets: what it asked for (default: all the client may have), kept
    /// only where the client may have them and the issuer knows them; asking only for what it may
    /// not have is `invalid_scope`.
    func grantedScopes(
        requested: [String]?,
        client: RegisteredClient,
        userScopesAllowed: Bool
    ) throws(OAuthError)
        -> [String]
    {
        let known = Set(options.supportedScopes + options.apis.flatMap(\.scopes))
        let allowed = client.scopes.filter {
            known.contains($0) && (userScopesAllowed || options.api(forScope: $0) != nil)
        }
        guard let requested else { return allowed }
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
        username: String? = nil
    ) async throws -> MintedToken {
        let issuedAt = now()
        var scopes = scopes
        let api = try GrantRules.audience(forResource: resource, scopes: scopes, options: options)
        if let api {
            // RFC 8707: the token is for one API; scopes of other APIs are left out.
            scopes = scopes.filter { options.api(forScope: $0) == nil || api.scopes.contains($0) }
        }
        let tokenID = RandomToken.make(bytes: 16)
        let expiresAt = issuedAt + options.accessTokenTTL
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
            token = try keys.snapshot.active.sign(claims: .object(claims), type: "at+jwt")
        } else {
            token = RandomToken.make()
        }
        let record = TokenRecord(
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
        try await store.saveToken(record)
        return MintedToken(token: token, record: record)
    }

    /// RFC 6749 §2.3.1: `client_secret_basic` (id and secret form-decoded) or
    /// `client_secret_post`, never both; a public client names itself with `client_id` alone.
    /// Any failure is `invalid_client`, 401, with a challenge.
    func authenticateClient(_ request: HTTPRequest, form: [String: String]) async throws -> RegisteredClient {
        let realm = options.issuer
        var id: String
        var secret: String?
        if let header = request.headerFields[.authorization] {
            guard let credentials = FormURLEncoding.basicCredentials(header) else {
                throw OAuthError.invalidClient(realm: realm)
            }
            if form["client_secret"] != nil {
                throw OAuthError.invalidRequest("the client authenticates in more than one way")
            }
            if let named = form["client_id"], named != credentials.id {
                throw OAuthError.invalidClient(realm: realm)
            }
            id = credentials.id
            secret = credentials.secret
        } else if let named = form["client_id"] {
            id = named
            secret = form["client_secret"]
        } else {
            throw OAuthError.invalidClient(realm: realm)
        }
        guard let client = try await store.client(id: id), !client.revoked else {
            throw OAuthError.invalidClient(realm: realm)
        }
        switch (client.secret, secret) {
        case (nil, nil):
            return client
        case (let stored?, let presented?) where stored.matches(presented):
            return client
        default:
            throw OAuthError.invalidClient(realm: realm)
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
        guard client.secret != nil else { throw OAuthError.invalidClient(realm: options.issuer) }
        return client
    }
}
