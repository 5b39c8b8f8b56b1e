/// Whether and how a route checks tokens.
public enum RouteAuthentication: Sendable, Equatable {
    /// No token needed (health checks, public assets).
    case none
    /// A valid token from one of `issuers` (all configured issuers when `nil`).
    case required(issuers: [String]?)
}

/// One entry of the route table.
public struct Route: Sendable, Equatable {
    /// A name for logs and metrics: the configured `name`, or `routes[N]`.
    public var name: String
    /// Upper-case methods; `nil` matches every method.
    public var methods: Set<String>?
    public var pattern: PathPattern
    public var authentication: RouteAuthentication
    public var scopes: ScopeRequirement?
    public var conditions: [ClaimCondition]
    /// Lower-cased protocols a client may upgrade to (RFC 9110 §7.8); `h2c` never.
    public var upgrades: Set<String>
    /// Whether `X-HTTP-Method-Override`, `X-Original-URL` and the like reach the upstream
    /// (removed by default: the upstream could route to what Tollgate did not authorise).
    public var allowsOverrideHeaders: Bool
    /// The protected resource the route serves (RFC 9728): its metadata is published, its
    /// challenges name it, and the client's token is not passed on to the upstream.
    public var resource: ProtectedResource?
    /// Whether the client's `Authorization` reaches the upstream on a route with a resource or
    /// an MCP policy (never by default: no token passthrough).
    public var forwardsToken: Bool
    /// The route serves the Model Context Protocol: its JSON-RPC requests are read and held to
    /// these rules before they are forwarded.
    public var mcp: MCPPolicy?
    /// DPoP on this route, over the issuer's setting (`nil`: the issuer's).
    public var dpop: DPoPMode?
    /// Whether a client certificate must be presented, and a token bound to it (RFC 8705).
    public var clientCertificate: ClientCertificateRule = .optional
    /// Step-up (RFC 9470): the `acr` values a token's authentication must have been one of, and
    /// how long ago (seconds, from `auth_time`) it may have been.
    public var acrValues: [String] = []
    public var maxAge: Double?
    /// Where the route is defined in the configuration file, for messages.
    public var line: Int?

    public init(
        name: String,
        methods: Set<String>? = nil,
        pattern: PathPattern,
        authentication: RouteAuthentication = .required(issuers: nil),
        scopes: ScopeRequirement? = nil,
        conditions: [ClaimCondition] = [],
        upgrades: Set<String> = ["websocket"],
        allowsOverrideHeaders: Bool = false,
        resource: ProtectedResource? = nil,
        forwardsToken: Bool = true,
        mcp: MCPPolicy? = nil,
        dpop: DPoPMode? = nil,
        line: Int? = nil
    ) {
        self.mcp = mcp
        self.dpop = dpop
        self.resource = resource
        self.forwardsToken = forwardsToken
        self.upgrades = upgrades
        self.allowsOverrideHeaders = allowsOverrideHeaders
        self.name = name
        self.methods = methods
        self.pattern = pattern
        self.authentication = authentication
        self.scopes = scopes
        self.conditions = conditions
        self.line = line
    }

    public func matches(method: String, path: String, segments: inout [Substring]?) -> Bool {
        if let methods, !methods.contains(method) { return false }
        return pattern.matches(path, segments: &segments)
    }
}

/// A route's rule for client certificates (RFC 8705), beyond the listener's.
public enum ClientCertificateRule: String, Sendable, Equatable {
    /// A token bound to a certificate still needs it; nothing more.
    case optional
    /// The request must present a client certificate (over TLS, or from a proxy trusted to
    /// vouch for certificates).
    case required
    /// And the token must be bound to it (`cnf["x5t#S256"]`): bearer tokens are refused.
    case bound
}

/// What happens to a request no route matches.
public enum DefaultAction: String, Sendable, Equatable {
    /// 403 without looking at the token.
    case deny
    /// Any valid token from any configured issuer, no scope rule.
    case authenticated
}

/// The routes in file order; the first match wins.
public struct RouteTable: Sendable, Equatable {
    public let routes: [Route]
    public let defaultAction: DefaultAction
    /// Per route, the methods as a bit mask (0: any method), and the patterns on their own, so
    /// matching neither hashes the method per route nor copies a `Route`.
    private let methodMasks: [UInt32]
    private let patterns: [PathPattern]

    public init(routes: [Route], defaultAction: DefaultAction = .deny) {
        self.routes = routes
        self.defaultAction = defaultAction
        methodMasks = routes.map { route in
            guard let methods = route.methods else { return 0 }
            return methods.reduce(UInt32(0)) { $0 | Self.methodBit($1) }
        }
        patterns = routes.map(\.pattern)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.routes == rhs.routes && lhs.defaultAction == rhs.defaultAction
    }

    /// One bit per common method; any other method shares the last bit and is then checked
    /// against the route's set.
    static func methodBit(_ method: String) -> UInt32 {
        switch method {
        case "GET": 1 << 0
        case "HEAD": 1 << 1
        case "POST": 1 << 2
        case "PUT": 1 << 3
        case "DELETE": 1 << 4
        case "PATCH": 1 << 5
        case "OPTIONS": 1 << 6
        case "CONNECT": 1 << 7
        case "TRACE": 1 << 8
        default: 1 << 31
        }
    }

    /// The first route matching `method` and the normalised `path`, or `nil` (then the default
    /// action applies).
    public func match(method: String, path: String) -> Route? {
        matchIndex(method: method, path: path).map { routes[$0] }
    }

    /// The position of the first matching route, without copying it.
    public func matchIndex(method: String, path: String) -> Int? {
        let bit = Self.methodBit(method)
        var segments: [Substring]?
        for index in 0..<patterns.count {
            let mask = methodMasks[index]
            if mask != 0 {
                if mask & bit == 0 { continue }
                if bit == 1 << 31, routes[index].methods?.contains(method) != true { continue }
            }
            if patterns[index].matches(path, segments: &segments) { return index }
        }
        return nil
    }
}
