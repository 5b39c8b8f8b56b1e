import TollgateCore

/// What `tollgate issuer create-client`, `add-user`, `list-clients` and `revoke-client` do,
/// against any store, so a Swift program embedding the issuer administers it the same way.
public enum IssuerAdministration {
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case clientExists(String)
        case unknownClient(String)
        case invalid(String)

        public var description: String {
            switch self {
            case .clientExists(let id): "a client '\(id)' already exists"
            case .unknownClient(let id): "there is no client '\(id)'"
            case .invalid(let reason): reason
            }
        }
    }

    /// Registers a client; returns it and, for a confidential type, its secret — shown once,
    /// stored as `options.storeClientSecret` says.
    public static func createClient(
        id: String,
        kind: RegisteredClient.Kind,
        redirectURIs: [String],
        postLogoutRedirectURIs: [String],
        scopes: [String],
        grantTypes: Set<GrantType>?,
        skipConsent: Bool,
        options: IssuerOptions,
        store: any IssuerStore
    ) async throws -> (client: RegisteredClient, secret: String?) {
        guard !id.isEmpty, !id.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
            throw Failure.invalid("the client id is empty or holds a control character")
        }
        if try await store.client(id: id) != nil { throw Failure.clientExists(id) }
        let known = Set(options.supportedScopes + options.apis.flatMap(\.scopes))
        for scope in scopes where !known.contains(scope) {
            throw Failure.invalid("the scope '\(scope)' is neither a supported scope nor an API's")
        }
        let grants = grantTypes ?? kind.defaultGrantTypes
        if kind.isPublic && grants.contains(.clientCredentials) {
            throw Failure.invalid("a \(kind.rawValue) client is public and cannot use client_credentials")
        }
        if grants.contains(.authorizationCode) && redirectURIs.isEmpty {
            throw Failure.invalid("the authorization code grant needs at least one --redirect-uri")
        }
        for uri in redirectURIs + postLogoutRedirectURIs where !OAuthIssuer.isRegistrableRedirect(uri) {
            throw Failure.invalid(
                "'\(uri)' is not a redirect URI (https, http on loopback, or a private-use scheme; no fragment)"
            )
        }
        let secret = kind.isPublic ? nil : RandomToken.make()
        let client = RegisteredClient(
            id: id,
            kind: kind,
            secret: secret.map { options.storeClientSecret == .hashed ? .hashing($0) : .keeping($0) },
            redirectURIs: redirectURIs,
            postLogoutRedirectURIs: postLogoutRedirectURIs,
            scopes: scopes,
            grantTypes: grants,
            skipConsent: skipConsent
        )
        try await store.saveClient(client)
        return (client, secret)
    }

    /// Adds or replaces a user, hashing the password with scrypt.
    public static func addUser(
        username: String,
        password: String,
        claims: [String: JSONValue],
        store: any IssuerStore
    ) async throws {
        for name in claims.keys.sorted() where ClaimRelease.reservedNames.contains(name) {
            throw Failure.invalid(
                "'\(name)' is a registered claim the token itself sets; it cannot be a person's claim"
            )
        }
        guard !username.isEmpty, !username.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
            throw Failure.invalid("the user name is empty or holds a control character")
        }
        guard password.count >= 8 else { throw Failure.invalid("the password must be at least 8 characters") }
        try await store.saveUser(
            IssuerUser(username: username, passwordHash: try PasswordHash.make(password), claims: claims)
        )
    }

    /// Revokes a client: it can no longer authenticate, start a flow or refresh, every token it
    /// holds stops introspecting as active at once, and every grant of its tokens (its own
    /// `client_credentials` grant included) is revoked, so the gate of every issuer process
    /// refuses its JWT access tokens within `OAuthIssuer.revocationPollInterval`. Other gates
    /// accept those JWTs until they expire.
    public static func revokeClient(id: String, store: any IssuerStore) async throws {
        guard try await store.revokeClient(id: id, now: Int(wallClockSeconds())) else {
            throw Failure.unknownClient(id)
        }
    }
}
