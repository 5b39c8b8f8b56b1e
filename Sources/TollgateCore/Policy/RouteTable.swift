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
    /// Where the route is defined in the configuration file, for messages.
    public var line: Int?

    public init(
        name: String,
        methods: Set<String>? = nil,
        pattern: PathPattern,
        authentication: RouteAuthentication = .required(issuers: nil),
        scopes: ScopeRequirement? = nil,
        conditions: [ClaimCondition] = [],
        line: Int? = nil
    ) {
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

/// What happens to a request no route matches.
public enum DefaultAction: String, Sendable, Equatable {
    /// 403 without looking at the token.
    case deny
    /// Any valid token from any configured issuer, no scope rule.
    case authenticated
}

/// The routes in file order; the first match wins.
public struct RouteTable: Sendable, Equatable {
    public var routes: [Route]
    public var defaultAction: DefaultAction

    public init(routes: [Route], defaultAction: DefaultAction = .deny) {
        self.routes = routes
        self.defaultAction = defaultAction
    }

    /// The first route matching `method` and the normalised `path`, or `nil` (then the default
    /// action applies).
    public func match(method: String, path: String) -> Route? {
        var segments: [Substring]?
        for route in routes where route.matches(method: method, path: path, segments: &segments) {
            return route
        }
        return nil
    }
}
