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
        settings: ClientSettings = ClientSettings(),
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
        var client = RegisteredClient(
            id: id,
            kind: kind,
            secret: secret.map { options.storeClientSecret == .hashed ? .hashing($0) : .keeping($0) },
            redirectURIs: redirectURIs,
            postLogoutRedirectURIs: postLogoutRedirectURIs,
            scopes: scopes,
            grantTypes: grants,
            skipConsent: skipConsent
        )
        let held = Set(try await store.signingKeys().filter { $0.stage == .active }.map(\.algorithm))
        client = try settings.applied(to: client, options: options, held: held)
        try await store.saveClient(client)
        return (client, secret)
    }

    /// A client's own settings at registration: PKCE, lifetimes, the ID token algorithm.
    public struct ClientSettings: Sendable {
        public var requirePKCE: Bool?
        public var accessTokenTTL: Int?
        public var refreshTokenTTL: Int?
        public var idTokenTTL: Int?
        public var idTokenSignedResponseAlg: String?

        public init(
            requirePKCE: Bool? = nil,
            accessTokenTTL: Int? = nil,
            refreshTokenTTL: Int? = nil,
            idTokenTTL: Int? = nil,
            idTokenSignedResponseAlg: String? = nil
        ) {
            self.requirePKCE = requirePKCE
            self.accessTokenTTL = accessTokenTTL
            self.refreshTokenTTL = refreshTokenTTL
            self.idTokenTTL = idTokenTTL
            self.idTokenSignedResponseAlg = idTokenSignedResponseAlg
        }

        /// `client` with these settings, or why not: a public client keeps PKCE while
        /// `require_pkce_for_public` is on; a lifetime may not exceed the longest the issuer's
        /// configuration has (revoked grants and retired keys are kept that long); the ID token
        /// algorithm must be one the key ring holds, or HS* with a secret kept plain.
        func applied(
            to client: RegisteredClient,
            options: IssuerOptions,
            held: Set<String>
        ) throws(Failure)
            -> RegisteredClient
        {
            var client = client
            if requirePKCE == false && client.kind.isPublic && options.requirePKCEForPublic {
                throw .invalid(
                    "a \(client.kind.rawValue) client is public: it must use PKCE while require_pkce_for_public is on"
                )
            }
            let ceilings = [
                ("access", accessTokenTTL, max(options.accessTokenTTL, options.longestClientTTLs.access)),
                ("refresh", refreshTokenTTL, max(options.refreshTokenTTL, options.longestClientTTLs.refresh)),
                ("ID", idTokenTTL, max(options.idTokenTTL, options.longestClientTTLs.id)),
            ]
            for (name, value, ceiling) in ceilings {
                guard let value else { continue }
                guard value >= 1, value <= ceiling else {
                    throw .invalid(
                        "the \(name) token lifetime must be between 1 and \(ceiling) seconds (the longest the configuration has)"
                    )
                }
            }
            if let algorithm = idTokenSignedResponseAlg {
                guard held.contains(algorithm) || IDTokenSigner.symmetric[algorithm] != nil else {
                    throw .invalid(
                        "the issuer holds no \(algorithm) key; name it as a configured client's id_token_signed_response_alg or the signing_algorithm"
                    )
                }
                if let refusal = IDTokenSigner.refusal(algorithm: algorithm, secret: client.secret) {
                    throw .invalid(refusal)
                }
            }
            client.requirePKCE = requirePKCE
            client.accessTokenTTL = accessTokenTTL
            client.refreshTokenTTL = refreshTokenTTL
            client.idTokenTTL = idTokenTTL
            client.idTokenSignedResponseAlg = idTokenSignedResponseAlg
            return client
        }
    }

    /// Gives a confidential client a new secret, returned once and stored as
    /// `store_client_secret` says; the old one stays accepted for `grace` seconds (0: refused at
    /// once). A client declared in the configuration file is refused: its secret is the file's.
    public static func rotateSecret(
        id: String,
        grace: Int,
        options: IssuerOptions,
        declared: Bool,
        store: any IssuerStore,
        now: Int
    ) async throws -> (client: RegisteredClient, secret: String) {
        guard var client = try await store.client(id: id) else { throw Failure.unknownClient(id) }
        if declared {
            throw Failure.invalid(
                "'\(id)' is declared in the configuration: its secret is its client_secret_file or client_secret_env; change it there"
            )
        }
        guard client.secret != nil, !client.kind.isPublic else {
            throw Failure.invalid("'\(id)' is a public client and holds no secret")
        }
        guard !client.revoked else { throw Failure.invalid("'\(id)' is revoked") }
        guard grace >= 0 else { throw Failure.invalid("the grace must not be negative") }
        let secret = RandomToken.make()
        let stored: StoredSecret = options.storeClientSecret == .hashed ? .hashing(secret) : .keeping(secret)
        if let algorithm = client.idTokenSignedResponseAlg,
            let refusal = IDTokenSigner.refusal(algorithm: algorithm, secret: stored)
        {
            throw Failure.invalid("'\(id)' signs its ID tokens with its secret: \(refusal)")
        }
        client.previousSecret = grace > 0 ? client.secret : nil
        client.previousSecretExpiresAt = grace > 0 ? now + grace : nil
        client.secret = stored
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
