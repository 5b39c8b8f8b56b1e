/// The claims a verified token keeps once verified: only those the configuration reads (forwarded
/// as headers, tested by a route's conditions), and the payload as received only when it is
/// forwarded whole. A cached token then costs a few hundred bytes instead of its whole claim set
/// (`benchmarks/Benchmarks/CacheFootprint`).
public struct ClaimProjection: Sendable, Equatable {
    /// Top-level claim names kept: each configured path and every dotted prefix of it, since
    /// `JSONValue.value(atPath:)` may find `a.b.c` under `a`, `a.b` or the whole name.
    public var names: Set<String>
    /// Keep `encodedClaims` (the configuration forwards the payload header).
    public var keepsEncodedClaims: Bool

    public init(names: Set<String>, keepsEncodedClaims: Bool) {
        self.names = names
        self.keepsEncodedClaims = keepsEncodedClaims
    }

    /// What `configuration` reads from a token.
    public init(_ configuration: TollgateConfiguration) {
        var paths = configuration.forward.entries.map(\.claim)
        for route in configuration.routes.routes {
            paths += route.conditions.map(\.claim)
        }
        var names: Set<String> = []
        for path in paths {
            names.insert(path)
            var prefix = ""
            for part in path.split(separator: ".", omittingEmptySubsequences: false).dropLast() {
                prefix += prefix.isEmpty ? String(part) : "." + part
                names.insert(prefix)
            }
        }
        self.init(names: names, keepsEncodedClaims: configuration.forward.payloadHeader != nil)
    }

    /// `claims` with only the kept members.
    func project(_ claims: JSONValue) -> JSONValue {
        guard case .object(let members) = claims else { return claims }
        return .object(members.filter { names.contains($0.key) })
    }
}
