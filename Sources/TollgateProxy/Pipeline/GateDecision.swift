import TollgateCore

/// What the synchronous part of the pipeline decided for a request head. A request can only go
/// on (forward or forward-auth's 200) with the route it matched.
enum GateDecision {
    /// Answer locally; nothing goes upstream. The match, when there was one, is for the log line.
    case respond(GateError, MatchedRequest?)
    /// Allowed: forward with these claims (`nil` on a route that needs no token); with
    /// `handsOnNonce`, the answer carries the current DPoP nonce, the proof's being no longer
    /// the current one (RFC 9449 §9).
    case pass(MatchedRequest, VerifiedToken?, handsOnNonce: Bool = false)
    /// Verification needs a key refresh or an introspection call first.
    case verify(MatchedRequest, token: String, acceptedIssuers: [String]?, binding: TokenBinding)
}

/// How the token was presented: as a bearer token, or with a DPoP proof made with the key of
/// this thumbprint (RFC 9449), already checked against the request.
enum TokenBinding: Equatable {
    case bearer
    /// The proof, checked against the request; recorded as used only once the token is found
    /// bound to its key, so proofs with no valid token behind them cannot fill the replay cache.
    case dpop(DPoPProof)

    /// The proof's nonce is good but not the current one (always `false` for a bearer token).
    var nonceIsAging: Bool {
        if case .dpop(let proof) = self { return proof.nonceIsAging }
        return false
    }
}

/// The request as the pipeline sees it after steps 1–3.
struct MatchedRequest {
    var method: String
    var normalized: PathNormalizer.Normalized
    /// Index into the route table, or `nil` when the default action applied.
    var routeIndex: Int?
    var routeName: String
}
