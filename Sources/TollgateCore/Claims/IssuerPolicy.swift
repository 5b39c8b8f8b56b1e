/// What one trusted issuer's tokens must satisfy, besides their signature.
public struct IssuerPolicy: Sendable, Equatable {
    /// The configuration's name for this issuer (used in routes and logs).
    public var name: String
    /// The exact `iss` value; compared byte for byte, so a trailing slash matters.
    public var issuer: String
    /// The token's `aud` must contain one of these; empty skips the check (and check-config warns).
    public var audiences: [String]
    public var algorithms: Set<JWSAlgorithm>
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    public var leeway: Double
    /// When set (usually `at+jwt`, RFC 9068), the header `typ` must name it.
    public var requiredTokenType: String?
    public var maximumTokenSize: Int
    /// A dotted claim path holding the scopes, instead of `scope` / `scp`.
    public var scopeClaim: String?
    /// Whether this issuer's tokens come with DPoP proofs (a route may say otherwise).
    public var dpop: DPoPMode = .allowed

    public init(
        name: String,
        issuer: String,
        audiences: [String],
        algorithms: Set<JWSAlgorithm> = [.rs256, .es256, .eddsa, .ed25519],
        leeway: Double = 30,
        requiredTokenType: String? = nil,
        maximumTokenSize: Int = 8192,
        scopeClaim: String? = nil
    ) {
        self.name = name
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = algorithms
        self.leeway = leeway
        self.requiredTokenType = requiredTokenType
        self.maximumTokenSize = maximumTokenSize
        self.scopeClaim = scopeClaim
    }
}
