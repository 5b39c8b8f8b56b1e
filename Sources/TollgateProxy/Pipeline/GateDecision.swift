import TollgateCore

/// What the synchronous part of the pipeline decided for a request head.
enum GateDecision {
    /// Answer locally; nothing goes upstream.
    case respond(VerdictResponse, RequestOutcome, reason: String?)
    /// Allowed: forward with these claims (`nil` on a route that needs no token).
    case pass(VerifiedToken?)
    /// Verification needs a key refresh or an introspection call first.
    case verify(token: String, acceptedIssuers: [String]?)
}

/// The request as the pipeline sees it after steps 1–3.
struct MatchedRequest {
    var method: String
    var normalized: PathNormalizer.Normalized
    /// Index into the route table, or `nil` when the default action applied.
    var routeIndex: Int?
    var routeName: String
}
