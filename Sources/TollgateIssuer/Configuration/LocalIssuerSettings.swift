import TollgateCore

/// The `issuer:` section: the OpenID Connect / OAuth 2.1 issuer that runs in the same process.
/// Option names and defaults follow the issuer options table the project follows; the values
/// are checked here, with the rest of the file, and the issuer module builds itself from them.
public struct LocalIssuerSettings: Sendable, Equatable {
    /// The name routes use for it in `issuers:` (default `local`).
    public var name = "local"
    public var issuer: String
    public var supportedScopes = ["openid", "profile", "email", "offline_access"]
    public var accessTokenTTL = 3600
    public var refreshTokenTTL = 2_592_000
    /// Seconds an ID token is valid, independent of the access token's lifetime.
    public var idTokenTTL = 3600
    public var codeTTL = 600
    public var enableDynamicRegistration = false
    public var clientMetadataDocuments = ClientMetadataDocumentOptions()
    /// What a DPoP proof at the token endpoint may be: the configuration's top-level `dpop:`.
    public var dpop = DPoPSettings()
    /// Whether client certificates reach the token endpoint (set from the `server:` section).
    public var clientCertificates = false
    public var requirePKCEForPublic = true
    public var jwtAccessToken = true
    /// `hashed` or `plain`.
    public var storeClientSecret = "hashed"
    public var storeTokens = "hashed"
    public var pairwiseSecret: Secret?
    public var grantTypes = ["authorization_code", "client_credentials", "refresh_token"]
    /// `RS256` (default), `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `ES512`
    /// or `EdDSA`: access tokens and ID tokens.
    public var signingAlgorithm = "RS256"
    public var apis: [API] = []
    public var clients: [Client] = []
    public var users: [User] = []
    /// Where its state lives: SQLite (the default, `tollgate-issuer.sqlite` beside the
    /// configuration file) or memory (lost on restart).
    public var storage: Storage
    /// Where the browser goes for consent when the application renders its own page (with
    /// `consent_code`, `client_id` and `scope`); it answers through the JSON consent endpoint.
    /// `nil`: the built-in page.
    public var consentPage: String?
    /// `Cache-Control: max-age` of the JWKS and discovery, seconds; a new signing key is
    /// published for longer than this before it signs.
    public var jwksMaxAge = 300
    /// Seconds during which a client that lost the answer to a refresh may present the spent
    /// refresh token again and get the same answer; 0 (the default): strict rotation, any
    /// reuse revokes the grant (RFC 9700 §4.14.2).
    public var refreshTokenReuseInterval = 0
    public var limits = Limits()
    /// Endpoint paths by name (`endpoints:`), relative to the issuer URL's path.
    public var endpoints: [String: String] = [:]
    /// Scope → claim names (`claims:`), beside and over the OpenID Connect standard scopes.
    public var claims: [String: [String]] = [:]
    public var line: Int?

    /// The brute-force and abuse limits (`limits:`), shared by replicas through the store.
    public struct Limits: Sendable, Equatable {
        /// Failed sign-ins of one account before each further try must wait.
        public var accountFailures = 5
        /// Failed sign-ins from one client address before each further try must wait.
        public var addressFailures = 20
        /// The first wait, seconds; it doubles with each further failure.
        public var waitIncrement = 2
        /// The longest wait, seconds.
        public var maxWait = 900
        /// A count of failures is forgotten this many seconds after the last one.
        public var failureReset = 43_200
        /// Wrong device user codes from one address within a device code's lifetime.
        public var userCodeFailuresPerAddress = 10
        /// Wrong device user codes from all addresses within a device code's lifetime.
        public var userCodeFailuresTotal = 1_000
        /// Dynamic registrations from one address per hour.
        public var registrationsPerHour = 20

        public init() {}
    }

    public enum Storage: Sendable, Equatable {
        case memory
        /// An absolute path.
        case sqlite(String)
        /// Several issuer replicas on one database.
        case postgres(Postgres)
    }

    /// A PostgreSQL database, by its parts; the password comes from a file or the environment.
    public struct Postgres: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String
        public var database: String
        public var password: Secret?
        /// TLS to the server: on by default, off by default for a loopback host.
        public var tls = false

        /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`; `hadPassword` says whether the URL
        /// held one (which the loader refuses).
        public static func parse(_ url: String) -> (settings: Postgres, hadPassword: Bool)? {
            var rest = Substring(url)
            if rest.hasPrefix("postgres://") {
                rest = rest.dropFirst("postgres://".count)
            } else if rest.hasPrefix("postgresql://") {
                rest = rest.dropFirst("postgresql://".count)
            } else {
                return nil
            }
            guard let at = rest.lastIndex(of: "@"), let slash = rest[at...].firstIndex(of: "/") else { return nil }
            let userinfo = rest[..<at]
            let hostPort = rest[rest.index(after: at)..<slash]
            let database = rest[rest.index(after: slash)...]
            guard !database.isEmpty, !database.contains("/"), !database.contains("?") else { return nil }
            let userParts = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let user = userParts.first, !user.isEmpty else { return nil }
            var host = hostPort
            var port = 5432
            if let colon = hostPort.lastIndex(of: ":") {
                guard let number = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(number) else {
                    return nil
                }
                port = number
                host = hostPort[..<colon]
            }
            guard !host.isEmpty else { return nil }
            return (
                Postgres(host: String(host), port: port, username: String(user), database: String(database)),
                userParts.count == 2
            )
        }
    }

    /// A person who can sign in with the built-in form.
    public struct User: Sendable, Equatable {
        public var username: String
        /// `scrypt$…`, from a file or the environment (`tollgate issuer hash-password`).
        public var passwordHash: Secret
        /// Any JSON values: strings, numbers, booleans, lists, objects.
        public var claims: [String: JSONValue]
    }

    public struct API: Sendable, Equatable {
        public var audience: String
        public var scopes: [String]
        /// The person's claims its access tokens carry.
        public var claims: [String] = []
    }

    public struct Client: Sendable, Equatable {
        public var id: String
        /// `web`, `spa`, `native`, `machine` or `device`.
        public var type: String
        public var secret: Secret?
        public var redirectURIs: [String]
        public var postLogoutRedirectURIs: [String]
        public var scopes: [String]
        /// `nil`: the type's defaults.
        public var grantTypes: [String]?
        public var skipConsent: Bool
        /// `introspection: allowed`: a resource server that may introspect every client's
        /// tokens; otherwise a client introspects only its own.
        public var mayIntrospect = false
        /// PKCE required (`require_pkce`); `nil`: true, or for a public client
        /// `require_pkce_for_public`.
        public var requirePKCE: Bool?
        /// RFC 9449 §5.2 `dpop_bound_access_tokens`: its token requests must carry a DPoP proof.
        public var requiresDPoP = false
        /// RFC 8705 §3.4 `tls_client_certificate_bound_access_tokens`: its tokens are bound to the
        /// client certificate its token requests must present.
        public var certificateBoundAccessTokens = false
        /// The client's own lifetimes, seconds; `nil`: the issuer's.
        public var accessTokenTTL: Int?
        public var refreshTokenTTL: Int?
        public var idTokenTTL: Int?
        /// `id_token_signed_response_alg`; `nil`: the issuer's `signing_algorithm`.
        public var idTokenSigningAlgorithm: String?
    }

    public init(issuer: String, storage: Storage = .memory) {
        self.issuer = issuer
        self.storage = storage
    }

    /// The audiences of its APIs: what the verifier accepts from it.
    public var audiences: [String] { apis.map(\.audience) }
}
