/// Checks a parsed JWS against one issuer's keys and algorithm allow-list.
///
/// Our own layer over swift-crypto rather than jwt-kit: jwt-kit 5.8.0 was measured to accept a
/// header `alg` that differs from the key's, to ignore `crit`, to fall back to a default key on an
/// unknown `kid`, to use `use: enc` keys, to drop a whole JWKS over one unsupported key, and to be
/// 2.7× slower per RS256 verify. The key comes only from `keySet`; `jku`, `x5u`, `jwk` and `x5c`
/// in the header are never read.
public struct JWSVerifier: Sendable {
    /// How many keys a token without `kid` may be tried against.
    public static let maximumKeylessCandidates = 4

    public let allowedAlgorithms: Set<JWSAlgorithm>

    public init(allowedAlgorithms: Set<JWSAlgorithm>) {
        self.allowedAlgorithms = allowedAlgorithms
    }

    public func verify(_ jws: CompactJWS, keySet: JSONWebKeySet) -> Result<JWSAlgorithm, VerificationFailure> {
        guard let algorithm = JWSAlgorithm(rawValue: jws.algorithmName), allowedAlgorithms.contains(algorithm) else {
            return .failure(
                VerificationFailure(
                    .algorithmNotAllowed,
                    "the algorithm '\(jws.algorithmName)' is not allowed for this issuer"
                )
            )
        }
        let candidates: [VerificationKey]
        if let keyID = jws.keyID {
            guard let published = keySet.keys(withID: keyID) else {
                return .failure(VerificationFailure(.unknownKey, "no key with the token's 'kid' is known"))
            }
            var suitable: [VerificationKey] = []
            var firstProblem: VerificationFailure?
            for key in published {
                if let problem = key.suitability(for: algorithm) {
                    firstProblem = firstProblem ?? problem
                } else {
                    suitable.append(key)
                }
            }
            if suitable.isEmpty, let firstProblem { return .failure(firstProblem) }
            candidates = suitable
        } else {
            candidates = Array(
                keySet.keys.lazy.filter { $0.suitability(for: algorithm) == nil }
                    .prefix(Self.maximumKeylessCandidates)
            )
            if candidates.isEmpty {
                return .failure(
                    VerificationFailure(.noSuitableKey, "the token has no 'kid' and no key fits \(algorithm.rawValue)")
                )
            }
        }
        var token = jws.token
        let end = jws.signingInputEnd
        let signature = jws.signature
        var lastFailure = VerificationFailure(.signatureInvalid, "the signature does not verify")
        let verified = token.withUTF8 { utf8 -> Bool in
            let signingInput = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[0..<end])
            for key in candidates {
                switch key.isValidSignature(signature, for: signingInput, algorithm: algorithm) {
                case .success: return true
                case .failure(let failure): lastFailure = failure
                }
            }
            return false
        }
        return verified ? .success(algorithm) : .failure(lastFailure)
    }
}
