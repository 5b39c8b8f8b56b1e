/// What a verified token keeps once verified: the forwarded claims' header values computed once,
/// the claims a route's conditions test, and the payload as received only when it is forwarded
/// whole. A cached token then costs well under a kilobyte instead of its whole claim set
/// (`benchmarks/Benchmarks/CacheFootprint`).
public struct ClaimProjection: Sendable, Equatable {
    /// Top-level claim names kept: each path and every dotted prefix of it, since
    /// `JSONValue.value(atPath:)` may find `a.b.c` under `a`, `a.b` or the whole name.
    public var names: Set<String>
    /// Keep `encodedClaims` (the configuration forwards the payload header).
    public var keepsEncodedClaims: Bool
    /// The claim headers to compute at verification; their claims need not be kept.
    public var forward: ClaimHeaderMapping?

    public init(names: Set<String>, keepsEncodedClaims: Bool, forward: ClaimHeaderMapping? = nil) {
        self.names = names
        self.keepsEncodedClaims = keepsEncodedClaims
        self.forward = forward
    }

    /// What `configuration` reads from a token.
    public init(_ configuration: TollgateConfiguration) {
        // A token's binding (RFC 9449 `cnf.jkt`, RFC 8705 `cnf.x5t#S256`) is checked on every
        // route: a bound token is never taken as a bearer token.
        var paths: [String] = ["cnf"]
        for route in configuration.routes.routes {
            paths += route.conditions.map(\.claim)
            // A protected resource's route checks the token's audience per request.
            if route.resource != nil { paths.append("aud") }
            // Step-up reads how and when the person signed in.
            if !route.acrValues.isEmpty { paths.append("acr") }
            if route.maxAge != nil { paths.append("auth_time") }
        }
        self.init(
            names: Self.namesWithPrefixes(paths),
            keepsEncodedClaims: configuration.forward.payloadHeader != nil,
            forward: configuration.forward.entries.isEmpty ? nil : configuration.forward
        )
    }

    /// The claims the checks of `ClaimsValidator` read, and the grant a revocation check reads.
    static let validatedNames: Set<String> = [
        "iss", "aud", "exp", "nbf", "iat", "sub", "scope", "scp", "grant_id", "jti",
    ]

    /// The top-level members a claim set must be parsed into for verification, this projection
    /// and the issuers' scope claims (`scopeClaims`) to be served; `nil` when the payload is
    /// forwarded whole, which is then parsed whole, nested duplicates checked.
    public func namesToParse(scopeClaims: [String]) -> Set<String>? {
        if keepsEncodedClaims { return nil }
        return Self.validatedNames.union(names).union(
            Self.namesWithPrefixes((forward?.entries.map(\.claim) ?? []) + scopeClaims)
        )
    }

    /// Each path and every dotted prefix of it, since `JSONValue.value(atPath:)` may find
    /// `a.b.c` under `a`, `a.b` or the whole name.
    static func namesWithPrefixes(_ paths: [String]) -> Set<String> {
        var names: Set<String> = []
        for path in paths {
            names.insert(path)
            var prefix = ""
            for part in path.split(separator: ".", omittingEmptySubsequences: false).dropLast() {
                prefix += prefix.isEmpty ? String(part) : "." + part
                names.insert(prefix)
            }
        }
        return names
    }

    /// `claims` with only the kept members.
    func project(_ claims: JSONValue) -> JSONValue {
        guard case .object(let members) = claims else { return claims }
        return .object(members.filter { names.contains($0.key) })
    }
}
