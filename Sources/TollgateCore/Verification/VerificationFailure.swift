/// Why a token was refused. The `code` is stable (logs, metrics, tests); the `reason` is for
/// people and never contains the token or key material. Equality is on the code alone.
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

extension VerificationFailure: Equatable {
    public static func == (lhs: VerificationFailure, rhs: VerificationFailure) -> Bool {
        lhs.code == rhs.code
    }
}
