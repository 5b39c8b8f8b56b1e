import TollgateCore

extension IssuerOptions {
    /// The options of the configuration file's `issuer:` section (already validated there).
    public init(settings: LocalIssuerSettings) {
        self.init(issuer: settings.issuer)
        supportedScopes = settings.supportedScopes
        accessTokenTTL = settings.accessTokenTTL
        refreshTokenTTL = settings.refreshTokenTTL
        idTokenTTL = settings.idTokenTTL
        endpoints = settings.endpoints
        symmetricAlgorithms = Set(settings.clients.compactMap(\.idTokenSigningAlgorithm).filter { $0.hasPrefix("HS") })
        longestClientTTLs = (
            settings.clients.compactMap(\.accessTokenTTL).max() ?? 0,
            settings.clients.compactMap(\.refreshTokenTTL).max() ?? 0,
            settings.clients.compactMap(\.idTokenTTL).max() ?? 0
        )
        codeTTL = settings.codeTTL
        enableDynamicRegistration = settings.enableDynamicRegistration
        clientMetadataDocuments = settings.clientMetadataDocuments
        dpop = settings.dpop
        clientCertificates = settings.clientCertificates
        requirePKCEForPublic = settings.requirePKCEForPublic
        jwtAccessToken = settings.jwtAccessToken
        storeClientSecret = StorageForm(rawValue: settings.storeClientSecret) ?? .hashed
        storeTokens = StorageForm(rawValue: settings.storeTokens) ?? .hashed
        pairwiseSecret = settings.pairwiseSecret?.value
        grantTypes = Set(settings.grantTypes.compactMap(GrantType.init(rawValue:)))
        apis = settings.apis.map { APIDefinition(audience: $0.audience, scopes: $0.scopes, claims: $0.claims) }
        scopeClaims.merge(settings.claims) { _, configured in configured }
        consentPage = settings.consentPage
        jwksMaxAge = settings.jwksMaxAge
        refreshTokenReuseInterval = settings.refreshTokenReuseInterval
        limits = settings.limits
    }
}

extension RegisteredClient {
    /// A client declared in the configuration file, its secret stored as `form` says.
    public init(settings: LocalIssuerSettings.Client, storeSecret form: IssuerOptions.StorageForm) {
        let kind = Kind(rawValue: settings.type) ?? .web
        self.init(
            id: settings.id,
            kind: kind,
            secret: settings.secret.map { form == .hashed ? .hashing($0.value) : .keeping($0.value) },
            redirectURIs: settings.redirectURIs,
            postLogoutRedirectURIs: settings.postLogoutRedirectURIs,
            scopes: settings.scopes,
            grantTypes: settings.grantTypes.map { Set($0.compactMap(GrantType.init(rawValue:))) },
            skipConsent: settings.skipConsent,
            mayIntrospect: settings.mayIntrospect
        )
        requirePKCE = settings.requirePKCE
        requiresDPoP = settings.requiresDPoP ? true : nil
        certificateBoundAccessTokens = settings.certificateBoundAccessTokens ? true : nil
        accessTokenTTL = settings.accessTokenTTL
        refreshTokenTTL = settings.refreshTokenTTL
        idTokenTTL = settings.idTokenTTL
        idTokenSignedResponseAlg = settings.idTokenSigningAlgorithm
    }
}

extension OAuthIssuer {
    /// The issuer of a configuration's `issuer:` section, with the clients it declares, on
    /// `store`.
    public static func start(settings: LocalIssuerSettings, store: any IssuerStore) async throws -> OAuthIssuer {
        let options = IssuerOptions(settings: settings)
        for client in settings.clients {
            var declared = RegisteredClient(settings: client, storeSecret: options.storeClientSecret)
            // A client revoked with `tollgate issuer revoke-client` stays revoked across restarts.
            if let stored = try await store.client(id: client.id), stored.revoked { declared.revoked = true }
            try await store.saveClient(declared)
        }
        for user in settings.users {
            try await store.saveUser(
                IssuerUser(username: user.username, passwordHash: user.passwordHash.value, claims: user.claims)
            )
        }
        return try await start(
            options: options,
            store: store,
            algorithm: SigningKey.Algorithm(rawValue: settings.signingAlgorithm) ?? .rs256,
            others: Set(settings.clients.compactMap { $0.idTokenSigningAlgorithm.flatMap(SigningKey.Algorithm.init) })
        )
    }
}
