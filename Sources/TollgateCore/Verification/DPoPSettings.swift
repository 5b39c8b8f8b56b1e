/// Whether a route (or an issuer's tokens) takes DPoP (RFC 9449): `required` refuses a bearer
/// token, `allowed` takes either, `off` takes bearer tokens only. A token bound to a key
/// (`cnf.jkt`) needs its proof whatever the mode: sent as a bearer token it is refused.
public enum DPoPMode: String, Sendable, Equatable {
    case required
    case allowed
    case off
}

/// The gate's DPoP settings (`dpop:` at the top of the configuration).
public struct DPoPSettings: Sendable, Equatable {
    /// The proof signature algorithms accepted (asymmetric only).
    public var algorithms: Set<JWSAlgorithm> = [.es256, .es384, .rs256, .ps256, .eddsa, .ed25519]
    /// How old a proof's `iat` may be, seconds; the replay cache keeps a `jti` this long.
    public var proofLifetime: Double = 60
    /// How far ahead of the clock a proof's `iat` may be, seconds.
    public var clockSkew: Double = 5
    /// Every proof must carry a fresh server nonce (RFC 9449 §8).
    public var requiresNonce = false
    /// The key nonces are made with. Replicas given the same secret hand out and take the same
    /// nonces; without one each process draws its own key.
    public var nonceSecret: Secret?
    public var maximumProofBytes = 8192
    /// The replay cache's bound: proofs seen within `proofLifetime` beyond it are refused (fail
    /// closed) until older ones expire.
    public var maximumRememberedProofs = 200_000

    public init() {}
}
