/// A client of the issuer, of one of the types relying parties register: a confidential web
/// app, a public SPA or native app (PKCE, no secret), a machine-to-machine client
/// (`client_credentials` only) or a device.
public struct RegisteredClient: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case web
        case spa
        case native
        case machine
        case device

        /// Public clients hold no secret.
        public var isPublic: Bool { self == .spa || self == .native || self == .device }

        public var defaultGrantTypes: Set<GrantType> {
            switch self {
            case .web, .spa, .native: [.authorizationCode, .refreshToken]
            case .machine: [.clientCredentials]
            case .device: [.deviceCode, .refreshToken]
            }
        }
    }

    /// Such as `@team/web`: any characters, form-encoded in a Basic header.
    public var id: String
    public var kind: Kind
    /// The secret as stored: its SHA-256 (`store_client_secret: hashed`) or the secret itself.
    public var secret: StoredSecret?
    public var redirectURIs: [String]
    public var postLogoutRedirectURIs: [String]
    /// Scopes the client may be granted.
    public var scopes: [String]
    public var grantTypes: Set<GrantType>
    /// First-party: no consent page.
    public var skipConsent: Bool
    public var revoked: Bool
    /// A name to show people (`client_name`); the id when absent.
    public var name: String?
    /// A resource server that may introspect any client's tokens (`introspection: allowed`);
    /// others introspect only their own.
    public var mayIntrospect: Bool?
    /// Registered by anyone through RFC 7591: its redirect URIs are not trusted, so errors
    /// before the person decides are shown on a page, never redirected (RFC 9700 §4.11.2).
    public var registeredDynamically: Bool?
    /// PKCE required of it; `nil`: required (OAuth 2.1), but for a public client when the
    /// issuer's `require_pkce_for_public` is off.
    public var requirePKCE: Bool?
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2 `dpop_bound_access_tokens`).
    public var requiresDPoP: Bool?
    /// Its access tokens are bound to the client certificate of its token requests, which must
    /// present one (RFC 8705 §3.4 `tls_client_certificate_bound_access_tokens`).
    public var certificateBoundAccessTokens: Bool?
    /// Its own lifetimes, seconds; `nil`: the issuer's.
    public var accessTokenTTL: Int?
    public var refreshTokenTTL: Int?
    public var idTokenTTL: Int?
    /// `id_token_signed_response_alg` (RFC 7591, OpenID Connect Registration §2); `nil`: the
    /// issuer's `signing_algorithm`.
    public var idTokenSignedResponseAlg: String?
    /// The secret before the last rotation, accepted until `previousSecretExpiresAt` (Unix
    /// seconds), so the client's deployments can move to the new one.
    public var previousSecret: StoredSecret?
    public var previousSecretExpiresAt: Int?

    /// Whether `presented` is its secret at `now`: the current one, or the previous one within
    /// its grace.
    public func secretMatches(_ presented: String, now: Int) -> Bool {
        let current = secret?.matches(presented) ?? false
        let previous = previousSecret?.matches(presented) ?? false
        return current || (previous && now < (previousSecretExpiresAt ?? 0))
    }

    public init(
        id: String,
        kind: Kind,
        secret: StoredSecret? = nil,
        redirectURIs: [String] = [],
        postLogoutRedirectURIs: [String] = [],
        scopes: [String] = [],
        grantTypes: Set<GrantType>? = nil,
        skipConsent: Bool = false,
        revoked: Bool = false,
        name: String? = nil,
        mayIntrospect: Bool = false,
        registeredDynamically: Bool = false
    ) {
        self.mayIntrospect = mayIntrospect ? true : nil
        self.registeredDynamically = registeredDynamically ? true : nil
        self.id = id
        self.kind = kind
        self.secret = secret
        self.redirectURIs = redirectURIs
        self.postLogoutRedirectURIs = postLogoutRedirectURIs
        self.scopes = scopes
        self.grantTypes = grantTypes ?? kind.defaultGrantTypes
        self.skipConsent = skipConsent
        self.revoked = revoked
        self.name = name
    }
}
