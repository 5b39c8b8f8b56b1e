import TollgateCore

/// The issuer's options, named and defaulted as in the issuer options table the project follows
/// (`issuer`, `supported_scopes`, `access_token_ttl`, …).
public struct IssuerOptions: Sendable {
    /// The issuer URL: `iss` of every token, and the base of every endpoint.
    public var issuer: String
    public var supportedScopes: [String] = ["openid", "profile", "email", "offline_access"]
    /// Seconds.
    public var accessTokenTTL: Int = 3600
    public var refreshTokenTTL: Int = 2_592_000
    /// Seconds an ID token is valid.
    public var idTokenTTL: Int = 3600
    /// The longest lifetimes a declared client has of its own, when longer than the issuer's:
    /// revoked grants and retired keys are kept for the longest.
    public var longestClientTTLs = (access: 0, refresh: 0, id: 0)
    public var codeTTL: Int = 600
    public var enableDynamicRegistration = false
    /// What a DPoP proof at the token endpoint may be (RFC 9449).
    public var dpop = DPoPSettings()
    /// Whether client certificates reach the token endpoint (the server mounting the issuer
    /// terminates TLS with client certificates, or takes them from a trusted proxy): discovery
    /// then says `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.3).
    public var clientCertificates = false
    /// The `acr` of a sign-in with this issuer's password form (ID and access tokens).
    public var acr = "urn:tollgate:acr:password"
    /// Clients known by the URL of their metadata document (`client_id_metadata_documents`).
    public var clientMetadataDocuments = ClientMetadataDocumentOptions()
    public var requirePKCEForPublic = true
    /// Access tokens as RFC 9068 JWTs when they carry an API scope; `false`: always opaque.
    public var jwtAccessToken = true
    /// `hashed` (SHA-256) or `plain`.
    public var storeClientSecret: StorageForm = .hashed
    public var storeTokens: StorageForm = .hashed
    /// At least 32 characters; when set, `sub` is pairwise per sector.
    public var pairwiseSecret: String?
    public var grantTypes: Set<GrantType> = [.authorizationCode, .clientCredentials, .refreshToken]
    /// The APIs tokens can be minted for: an audience and its scopes.
    public var apis: [APIDefinition] = []
    /// `Cache-Control: max-age` of the JWKS, seconds.
    public var jwksMaxAge: Int = 300
    /// The application's own consent page (see `LocalIssuerSettings.consentPage`); `nil`: the
    /// built-in one.
    public var consentPage: String?
    /// Seconds a spent refresh token may be presented again by its client for the answer it
    /// got (kept sealed under the token); 0: strict rotation.
    public var refreshTokenReuseInterval = 0
    /// The HS algorithms declared clients sign their ID tokens with (HS384 and HS512 are offered
    /// only then).
    public var symmetricAlgorithms: Set<String> = []
    /// Endpoint paths under the issuer URL's path, by name (`token`, `authorization`, …), where
    /// they differ from `/oauth2/…`.
    public var endpoints: [String: String] = [:]
    /// Brute-force and abuse limits.
    public var limits = LocalIssuerSettings.Limits()
    /// Scope → the person's claims it releases (`ClaimRelease.standardScopes` and the
    /// configuration's own).
    public var scopeClaims: [String: [String]] = ClaimRelease.standardScopes

    public enum StorageForm: String, Sendable {
        case hashed
        case plain
    }

    public init(issuer: String) {
        self.issuer = issuer
    }

    /// How long a revoked grant is remembered: past it, none of its tokens can be live.
    var grantLifetime: Int { max(longestAccessTokenTTL, refreshTokenTTL, longestClientTTLs.refresh, codeTTL) }

    /// The longest an access token of this issuer lives.
    var longestAccessTokenTTL: Int { max(accessTokenTTL, longestClientTTLs.access) }

    /// The longest a token it signs (access or ID token) lives: a retired key stays published
    /// that long.
    public var longestSignedTokenTTL: Int { max(longestAccessTokenTTL, idTokenTTL, longestClientTTLs.id) }

    /// `client`'s lifetimes: its own, but never past the longest the configuration has (revoked
    /// grants and retired keys are kept that long), should the configuration have shortened
    /// since the client was registered.
    func accessTokenTTL(for client: RegisteredClient) -> Int {
        min(client.accessTokenTTL ?? accessTokenTTL, longestAccessTokenTTL)
    }

    func refreshTokenTTL(for client: RegisteredClient) -> Int {
        min(client.refreshTokenTTL ?? refreshTokenTTL, max(refreshTokenTTL, longestClientTTLs.refresh))
    }

    func idTokenTTL(for client: RegisteredClient) -> Int {
        min(client.idTokenTTL ?? idTokenTTL, max(idTokenTTL, longestClientTTLs.id))
    }

    /// PKCE is required of `client` (RFC 9700 §2.1.1, OAuth 2.1): always, unless the client's
    /// configuration or, for a public client, `require_pkce_for_public` says otherwise.
    public func requiresPKCE(_ client: RegisteredClient) -> Bool {
        client.requirePKCE ?? (client.kind.isPublic ? requirePKCEForPublic : true)
    }

    /// The API a scope belongs to.
    func api(forScope scope: String) -> APIDefinition? {
        apis.first { $0.scopes.contains(scope) }
    }
}

/// An API (a resource server): the `aud` of its access tokens and the scopes it defines, such as
/// `@team/orders.read`.
public struct APIDefinition: Sendable, Equatable {
    public var audience: String
    public var scopes: [String]
    /// The person's claims its access tokens carry besides `sub`, `client_id` and `scope`, so the
    /// gate in front of it can forward them.
    public var claims: [String]

    public init(audience: String, scopes: [String], claims: [String] = []) {
        self.audience = audience
        self.scopes = scopes
        self.claims = claims
    }
}

public enum GrantType: String, Sendable, CaseIterable, Codable {
    case authorizationCode = "authorization_code"
    case clientCredentials = "client_credentials"
    case refreshToken = "refresh_token"
    case deviceCode = "urn:ietf:params:oauth:grant-type:device_code"
}
