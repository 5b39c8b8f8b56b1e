/// Why a token was refused. The `code` is stable (logs, metrics, tests); the `reason` is for
/// the log line and may quote what the token said (an `alg`, a `typ`), so it never reaches a
/// client: answers use `code.publicDescription`, one fixed sentence per code. Equality is on the
/// code alone.
public struct VerificationFailure: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        case malformedToken = "malformed_token"
        case tokenTooLarge = "token_too_large"
        case encryptedToken = "encrypted_token"
        case unsecuredToken = "unsecured_token"
        case algorithmNotAllowed = "algorithm_not_allowed"
        case unsupportedCriticalHeader = "unsupported_critical_header"
        case unknownKey = "unknown_key"
        case noSuitableKey = "no_suitable_key"
        case keyTypeMismatch = "key_type_mismatch"
        case keyAlgorithmMismatch = "key_algorithm_mismatch"
        case keyUseMismatch = "key_use_mismatch"
        case signatureEncoding = "signature_encoding"
        case signatureInvalid = "signature_invalid"
        case malformedClaims = "malformed_claims"
        case untrustedIssuer = "untrusted_issuer"
        case audienceMismatch = "audience_mismatch"
        case missingExpiration = "missing_expiration"
        case invalidExpiration = "invalid_expiration"
        case expired = "expired"
        case notYetValid = "not_yet_valid"
        case issuedInFuture = "issued_in_future"
        case tokenTypeMismatch = "token_type_mismatch"
        case inactive = "inactive"
        case keysUnavailable = "keys_unavailable"
        case introspectionUnavailable = "introspection_unavailable"
    }

    public let code: Code
    /// For the operator's log only: may contain token content, escaped by whoever writes it.
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// True when verification could not finish (keys or introspection unreachable): the answer is
    /// 503, never a pass and never a 401 that would make a client throw its token away.
    public var isUnavailable: Bool {
        code == .keysUnavailable || code == .introspectionUnavailable
    }

    public var description: String { "\(code.rawValue): \(reason)" }
}

extension VerificationFailure.Code {
    /// The text a client is told: fixed per code, so nothing from the token, a key or a claim
    /// can reach a response header or body.
    public var publicDescription: String {
        switch self {
        case .malformedToken: "the token is malformed"
        case .tokenTooLarge: "the token is too large"
        case .encryptedToken: "encrypted tokens are not accepted"
        case .unsecuredToken: "unsecured tokens are not accepted"
        case .algorithmNotAllowed: "the token's algorithm is not allowed"
        case .unsupportedCriticalHeader: "the token has an unsupported critical header"
        case .unknownKey: "the token's signing key is unknown"
        case .noSuitableKey, .keyTypeMismatch, .keyAlgorithmMismatch, .keyUseMismatch:
            "no signing key fits the token's algorithm"
        case .signatureEncoding, .signatureInvalid: "the signature does not verify"
        case .malformedClaims: "the token's claims are malformed"
        case .untrustedIssuer: "the token's issuer is not accepted"
        case .audienceMismatch: "the token's audience is not accepted"
        case .missingExpiration: "the token has no expiry"
        case .invalidExpiration: "the token's expiry is malformed"
        case .expired: "the token has expired"
        case .notYetValid: "the token is not valid yet"
        case .issuedInFuture: "the token is issued in the future"
        case .tokenTypeMismatch: "the token's type is not accepted"
        case .inactive: "the token is not active"
        case .keysUnavailable, .introspectionUnavailable: "token verification is unavailable"
        }
    }
}

extension VerificationFailure: Equatable {
    public static func == (lhs: VerificationFailure, rhs: VerificationFailure) -> Bool {
        lhs.code == rhs.code
    }
}
