/// The decision for a verified token on a matched route (DESIGN step 6).
public enum AuthorizationDecision: Sendable, Equatable {
    case allowed
    /// 403 with `error="insufficient_scope"` and the scopes the route needs.
    case insufficientScope(String)
    /// 403: a claim condition failed (named for the log, not the client).
    case conditionFailed(String)
    /// 401 `insufficient_user_authentication` (RFC 9470): the person must sign in again, the
    /// way (`acr`) and as recently (`max_age`) as the route says.
    case insufficientUserAuthentication(String)
}

extension Route {
    /// Re-evaluated on every request, cached claims or not: caches hold claims, never verdicts.
    /// - Parameter now: the clock for `max_age` (read only when the route has one).
    public func authorize(_ token: VerifiedToken, now: Double? = nil) -> AuthorizationDecision {
        if !acrValues.isEmpty {
            guard case .string(let acr)? = token.claims["acr"], acrValues.contains(acr) else {
                return .insufficientUserAuthentication("the token's acr is not one the route accepts")
            }
        }
        if let maxAge {
            let clock = now ?? wallClockSeconds()
            // An auth_time in the future is no sign-in at all.
            guard case .number(let authenticatedAt)? = token.claims["auth_time"],
                clock - authenticatedAt <= maxAge + token.leeway, authenticatedAt <= clock + token.leeway
            else {
                return .insufficientUserAuthentication("the person signed in too long ago (or auth_time is missing)")
            }
        }
        if let scopes, !scopes.isSatisfied(by: token.scopeSet) {
            return .insufficientScope(scopes.challengeScope)
        }
        for condition in conditions where !condition.isSatisfied(by: token.claims) {
            return .conditionFailed(condition.description)
        }
        return .allowed
    }
}
