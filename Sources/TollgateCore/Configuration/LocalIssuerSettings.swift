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
    public var codeTTL = 600
    public var enableDynamicRegistration = false
    public var requirePKCEForPublic = true
    public var jwtAccessToken = true
    /// `hashed` or `plain`.
    public var storeClientSecret = "hashed"
    public var storeTokens = "hashed"
    public var pairwiseSecret: Secret?
    public var grantTypes = ["authorization_code", "client_credentials", "refresh_token"]
    /// `RS256` (default) or `ES256`.
    public var signingAlgorithm = "RS256"
    public var apis: [API] = []
    public var clients: [Client] = []
    public var users: [User] = []
    /// Where its state lives: SQLite (the default, `tollgate-issuer.sqlite` beside the
    /// configuration file) or memory (lost on restart).
    public var storage: Storage
    public var line: Int?

    public enum Storage: Sendable, Equatable {
        case memory
        /// An absolute path.
        case sqlite(String)
    }

    /// A person who can sign in with the built-in form.
    public struct User: Sendable, Equatable {
        public var username: String
        /// `scrypt$…`, from a file or the environment (`tollgate issuer hash-password`).
        public var passwordHash: Secret
        public var claims: [String: String]
    }

    public struct API: Sendable, Equatable {
        public var audience: String
        public var scopes: [String]
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
    }

    public init(issuer: String, storage: Storage = .memory) {
        self.issuer = issuer
        self.storage = storage
    }

    /// The audiences of its APIs: what the verifier accepts from it.
    public var audiences: [String] { apis.map(\.audience) }
}
