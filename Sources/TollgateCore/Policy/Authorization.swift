/// The decision for a verified token on a matched route (DESIGN step 6).
public enum AuthorizationDecision: Sendable, Equatable {
    case allowed
    /// 403 with `error="insufficient_scope"` and the scopes the route needs.
    case insufficientScope(String)
    /// 403: a claim condition failed (named for the log, not the client).
    case conditionFailed(String)
}

extension Route {
    /// Re-evaluated on every request, cached claims or not: caches hold claims, never verdicts.
    public func authorize(_ token: VerifiedToken) -> AuthorizationDecision {
        if let scopes, !scopes.isSatisfied(by: token.scopeSet) {
            return .insufficientScope(scopes.challengeScope)
        }
        for condition in conditions where !condition.isSatisfied(by: token.claims) {
            return .conditionFailed(condition.description)
        }
        return .allowed
    }
}
