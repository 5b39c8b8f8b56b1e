/// One trusted issuer as configured: its claim policy and where its keys and introspection are.
public struct IssuerConfiguration: Sendable, Equatable {
    public var policy: IssuerPolicy
    /// `nil` for an issuer whose tokens are only introspected.
    public var keySource: KeySetSource?
    public var refresh: KeySetRefreshPolicy
    /// The HMAC secret for HS* algorithms, from a file or the environment.
    public var hmacSecret: Secret?
    public var introspection: IntrospectionSettings?
    /// Where the issuer is defined, for messages; not part of equality, so an edit elsewhere in
    /// the file does not rebuild the issuer's key cache.
    public var line: Int?

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.policy == rhs.policy && lhs.keySource == rhs.keySource && lhs.refresh == rhs.refresh
            && lhs.hmacSecret == rhs.hmacSecret && lhs.introspection == rhs.introspection
    }
}

/// Where the proxy looks for the token.
public struct TokenSource: Sendable, Equatable {
    /// Header carrying `Bearer <token>`.
    public var header: String = "Authorization"
    /// A cookie holding the bare token, if configured.
    public var cookie: String?
    /// A query parameter holding the token; off unless configured (RFC 6750 §2.3 discourages it).
    public var queryParameter: String?
    public init() {}
}

/// The whole configuration file, validated.
public struct TollgateConfiguration: Sendable, Equatable {
    public var listen: String = "0.0.0.0:8080"
    /// The service behind the proxy; `nil` runs only the forward-auth endpoint.
    public var upstream: UpstreamSettings?
    public var admin: String = "127.0.0.1:9901"
    public var realm: String = "tollgate"
    public var server = ServerSettings()
    /// The forward-auth endpoint, when configured.
    public var forwardAuth: ForwardAuthSettings?
    public var issuers: [IssuerConfiguration] = []
    /// The issuer in this process (`issuer:`), parsed by the issuer module; it is also one of
    /// `issuers`, under its name.
    public var issuerSection: IssuerSection?
    public var localIssuer: (any LocalIssuerSection)? { issuerSection?.value }
    public var routes = RouteTable(routes: [])
    public var forward = ClaimHeaderMapping(entries: [])
    /// What a DPoP proof may be (RFC 9449).
    public var dpop = DPoPSettings()
    public var token = TokenSource()
    public var paths = PathNormalizer.Options()
    /// Bound on the verified-token cache.
    /// About 2.5 KB per entry (the claim set, parsed and encoded): 10,000 entries stay near 25 MB.
    public var cacheEntries = 10_000
    /// Where the file was read from (for messages).
    public var file: String = "<memory>"

    public init() {}

    public func issuer(named name: String) -> IssuerConfiguration? {
        issuers.first { $0.policy.name == name }
    }

    /// Human-readable problems that are legal but probably unintended.
    public var warnings: [String] {
        var result: [String] = []
        for issuer in issuers where issuer.policy.audiences.isEmpty {
            result.append(
                "issuer '\(issuer.policy.name)' has no audiences: tokens minted for any other service are accepted"
            )
        }
        for (position, route) in routes.routes.enumerated() {
            for earlier in routes.routes[..<position] where Self.shadows(earlier, route) {
                result.append("\(route.name) can never match: \(earlier.name) comes first and covers it")
                break
            }
        }
        return result
    }

    /// Whether `earlier` matches every request `later` could match.
    static func shadows(_ earlier: Route, _ later: Route) -> Bool {
        if let earlierMethods = earlier.methods {
            guard let laterMethods = later.methods, laterMethods.isSubset(of: earlierMethods) else { return false }
        }
        switch (earlier.pattern, later.pattern) {
        case (.prefix(let prefix), .exact(let path)), (.prefix(let prefix), .prefix(let path)):
            var segments: [Substring]?
            return PathPattern.prefix(prefix).matches(path, segments: &segments)
        case (.exact(let a), .exact(let b)):
            return a == b
        case (.prefix("/"), _):
            return true
        case (.template(let a), .template(let b)):
            return a.count == b.count
                && zip(a, b).allSatisfy { lhs, rhs in
                    if case .parameter = lhs { return true }
                    return lhs == rhs
                }
        default:
            return false
        }
    }
}
