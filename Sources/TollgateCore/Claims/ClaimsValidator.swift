/// The claim checks of RFC 7519 §4.1 and RFC 9068 for one issuer.
public enum ClaimsValidator {
    /// Validates a JWT's claim set and returns what the proxy needs from it.
    /// - Parameters:
    ///   - headerType: the JWS header's `typ`, checked only when the policy requires a type.
    ///   - encodedClaims: the payload segment, kept for the optional claims header.
    public static func validate(
        claims: JSONValue,
        headerType: String?,
        policy: IssuerPolicy,
        now: Double,
        encodedClaims: String
    ) -> Result<VerifiedToken, VerificationFailure> {
        guard case .object = claims else {
            return .failure(VerificationFailure(.malformedClaims, "the claim set is not a JSON object"))
        }
        guard claims["iss"]?.stringValue == policy.issuer else {
            return .failure(VerificationFailure(.untrustedIssuer, "'iss' is not the configured issuer"))
        }
        if let problem = checkAudience(claims["aud"], policy: policy) { return .failure(problem) }
        let expiresAt: Double
        switch claims["exp"] {
        case nil:
            return .failure(VerificationFailure(.missingExpiration, "the token has no 'exp'"))
        case .number(let value):
            expiresAt = value
        default:
            return .failure(VerificationFailure(.invalidExpiration, "'exp' is not a number"))
        }
        if let problem = checkTimes(claims, expiresAt: expiresAt, leeway: policy.leeway, now: now) {
            return .failure(problem)
        }
        if let required = policy.requiredTokenType, !typeMatches(headerType, required: required) {
            return .failure(VerificationFailure(.tokenTypeMismatch, "the header 'typ' is not '\(required)'"))
        }
        return .success(
            VerifiedToken(
                issuerName: policy.name,
                claims: claims,
                subject: claims["sub"]?.stringValue,
                scopes: scopes(in: claims, claimPath: policy.scopeClaim),
                expiresAt: expiresAt,
                leeway: policy.leeway,
                encodedClaims: encodedClaims
            )
        )
    }

    static func checkAudience(_ audience: JSONValue?, policy: IssuerPolicy) -> VerificationFailure? {
        if policy.audiences.isEmpty { return nil }
        let values: [String]
        switch audience {
        case .string(let single): values = [single]
        case .array(let many): values = many.compactMap(\.stringValue)
        default: values = []
        }
        if values.contains(where: policy.audiences.contains) { return nil }
        return VerificationFailure(.audienceMismatch, "'aud' does not name a configured audience")
    }

    /// `exp` (already numeric), then `nbf` and `iat` if present; each must be a number.
    static func checkTimes(_ claims: JSONValue, expiresAt: Double, leeway: Double, now: Double) -> VerificationFailure?
    {
        if expiresAt + leeway <= now {
            return VerificationFailure(.expired, "the token has expired")
        }
        switch claims["nbf"] {
        case nil: break
        case .number(let notBefore):
            if notBefore - leeway > now {
                return VerificationFailure(.notYetValid, "the token is not valid yet ('nbf')")
            }
        default:
            return VerificationFailure(.malformedClaims, "'nbf' is not a number")
        }
        switch claims["iat"] {
        case nil: break
        case .number(let issuedAt):
            if issuedAt - leeway > now { return VerificationFailure(.issuedInFuture, "'iat' is in the future") }
        default:
            return VerificationFailure(.malformedClaims, "'iat' is not a number")
        }
        return nil
    }

    /// RFC 9068 §4: `at+jwt`, or the full media type `application/at+jwt`, case-insensitively.
    static func typeMatches(_ type: String?, required: String) -> Bool {
        guard let type = type?.lowercased() else { return false }
        let wanted = required.lowercased()
        return type == wanted || type == "application/" + wanted
    }

    /// Scopes from `scope` (space-separated, RFC 8693 / RFC 9068), `scp` (string or array), or the
    /// configured claim path.
    public static func scopes(in claims: JSONValue, claimPath: String?) -> [String] {
        let source: JSONValue?
        if let claimPath {
            source = claims.value(atPath: claimPath)
        } else {
            source = claims["scope"] ?? claims["scp"]
        }
        switch source {
        case .string(let list):
            return list.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        case .array(let list):
            return list.compactMap(\.stringValue)
        default:
            return []
        }
    }
}
