import Crypto

/// A DPoP proof (RFC 9449 §4.3), checked: the key it was made with, as its RFC 7638 thumbprint.
public struct DPoPProof: Sendable, Equatable {
    public let thumbprint: String
    public let jti: String
    public let issuedAt: Double
    /// Its server nonce is good but no longer the current one: the answer hands on the next.
    public var nonceIsAging = false

    public init(thumbprint: String, jti: String, issuedAt: Double) {
        self.thumbprint = thumbprint
        self.jti = jti
        self.issuedAt = issuedAt
    }
}

public struct DPoPFailure: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// `invalid_dpop_proof`.
        case invalidProof
        /// `use_dpop_nonce`: a fresh nonce goes with the answer.
        case useNonce
    }

    public let kind: Kind
    /// For the log line only.
    public let reason: String

    init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }
}

/// Checks DPoP proofs. Hand-written over the JWS verifier for the same reasons it is (see
/// `JWSVerifier`): the key comes from the proof's own `jwk`, which is then held to being a public
/// key of an allowed algorithm, and only that key verifies the proof.
public struct DPoPProofVerifier: Sendable {
    public let settings: DPoPSettings

    public init(settings: DPoPSettings) {
        self.settings = settings
    }

    /// RFC 9449 §4.3: `proof` for a request of `method` to `uri` (scheme, authority and path of
    /// this gate's own origin; query and fragment are not compared) carrying the access token
    /// whose SHA-256 is `accessToken` (the gate's cache key, so the token is hashed once; `nil` at
    /// a token endpoint, where a proof has no `ath`).
    /// - Parameter nonceIsValid: whether a nonce this gate gave out is still good.
    public func verify(
        _ proof: String,
        method: String,
        uri: String,
        accessToken: TokenDigest?,
        now: Double,
        nonceIsValid: (String) -> Bool
    ) -> Result<DPoPProof, DPoPFailure> {
        let jws: CompactJWS
        switch CompactJWS.parse(proof, maximumSize: settings.maximumProofBytes) {
        case .success(let parsed): jws = parsed
        case .failure(let failure): return .failure(DPoPFailure(.invalidProof, failure.reason))
        }
        guard jws.type == "dpop+jwt" else { return .failure(DPoPFailure(.invalidProof, "typ is not dpop+jwt")) }
        guard let algorithm = JWSAlgorithm(rawValue: jws.algorithmName), !algorithm.isSymmetric,
            settings.algorithms.contains(algorithm)
        else {
            return .failure(DPoPFailure(.invalidProof, "the proof's alg is not allowed"))
        }
        guard case .object(let jwk)? = jws.header["jwk"] else {
            return .failure(DPoPFailure(.invalidProof, "the proof carries no jwk"))
        }
        // A private member means the client sent its private key: never accepted (and never
        // used, whatever the public part says).
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] where jwk[member] != nil {
            return .failure(DPoPFailure(.invalidProof, "the proof's jwk holds a private key"))
        }
        let key: VerificationKey
        switch JSONWebKeySet.parseKey(.object(jwk)) {
        case .success(let parsed): key = parsed
        case .failure(let failure): return .failure(DPoPFailure(.invalidProof, "the proof's jwk: \(failure.reason)"))
        }
        guard let thumbprint = Self.thumbprint(of: jwk) else {
            return .failure(DPoPFailure(.invalidProof, "the proof's jwk has no thumbprint"))
        }
        switch JWSVerifier(allowedAlgorithms: [algorithm]).verify(jws, keySet: JSONWebKeySet(keys: [key])) {
        case .success: break
        case .failure(let failure): return .failure(DPoPFailure(.invalidProof, failure.reason))
        }
        guard case .object(let claims) = (try? JSONParser.parse(jws.payload)) ?? .null else {
            return .failure(DPoPFailure(.invalidProof, "the proof's payload is not a JSON object"))
        }
        // RFC 9110 §9.1: methods are case-sensitive.
        guard claims["htm"] == .string(method) else {
            return .failure(DPoPFailure(.invalidProof, "htm is not the request's method"))
        }
        guard case .string(let htu)? = claims["htu"], let target = Self.comparable(htu), target == Self.comparable(uri)
        else {
            return .failure(DPoPFailure(.invalidProof, "htu is not this request's URI"))
        }
        guard case .number(let issuedAt)? = claims["iat"], issuedAt.isFinite else {
            return .failure(DPoPFailure(.invalidProof, "the proof has no iat"))
        }
        if issuedAt < now - settings.proofLifetime || issuedAt > now + settings.clockSkew {
            return .failure(DPoPFailure(.invalidProof, "the proof's iat is outside the accepted window"))
        }
        guard case .string(let jti)? = claims["jti"], !jti.isEmpty, jti.utf8.count <= 256 else {
            return .failure(DPoPFailure(.invalidProof, "the proof has no usable jti"))
        }
        if let accessToken {
            guard claims["ath"] == .string(Base64URL.encode(accessToken.bytes)) else {
                return .failure(DPoPFailure(.invalidProof, "ath is not the access token's hash"))
            }
        }
        if settings.requiresNonce {
            guard case .string(let nonce)? = claims["nonce"] else {
                return .failure(DPoPFailure(.useNonce, "the proof carries no nonce"))
            }
            guard nonceIsValid(nonce) else { return .failure(DPoPFailure(.useNonce, "the proof's nonce is stale")) }
        }
        return .success(DPoPProof(thumbprint: thumbprint, jti: jti, issuedAt: issuedAt))
    }

    /// RFC 7638: base64url SHA-256 of the key's required members, in lexicographic order,
    /// without whitespace. Written as bytes: the members of a real key (base64url, curve names)
    /// need no escaping, and anything else goes through the JSON writer.
    public static func thumbprint(of jwk: [String: JSONValue]) -> String? {
        guard case .string(let type)? = jwk["kty"] else { return nil }
        let names: [String]
        switch type {
        case "EC": names = ["crv", "kty", "x", "y"]
        case "RSA": names = ["e", "kty", "n"]
        case "OKP": names = ["crv", "kty", "x"]
        default: return nil
        }
        let quote = UInt8(ascii: "\"")
        var text: [UInt8] = [UInt8(ascii: "{")]
        text.reserveCapacity(600)
        for (index, name) in names.enumerated() {
            guard case .string(let value)? = jwk[name] else { return nil }
            if index > 0 { text.append(UInt8(ascii: ",")) }
            text.append(quote)
            text += name.utf8
            text.append(quote)
            text.append(UInt8(ascii: ":"))
            if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != quote && $0 != UInt8(ascii: "\\") }) {
                text.append(quote)
                text += value.utf8
                text.append(quote)
            } else {
                text += JSONValue.quoted(value).utf8
            }
        }
        text.append(UInt8(ascii: "}"))
        return Base64URL.encode(Array(SHA256.hash(data: text)))
    }

    /// An http(s) URI as compared (RFC 9449 §4.3): scheme and host lower-cased (ASCII; other
    /// bytes are compared as they are), the scheme's default port dropped, an empty path as `/`,
    /// query and fragment left out (RFC 3986 §6.2.2.1 and §6.2.3). Nothing else is normalised:
    /// percent-encoding, dot segments and an empty port are compared as written, so such a proof
    /// is refused, never taken for another URI.
    static func comparable(_ uri: String) -> [UInt8]? {
        let bytes = Array(uri.utf8)
        func lowered(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
        let https: Bool
        if bytes.count >= 8, bytes[0..<8].map(lowered) == Array("https://".utf8) {
            https = true
        } else if bytes.count >= 7, bytes[0..<7].map(lowered) == Array("http://".utf8) {
            https = false
        } else {
            return nil
        }
        let authorityStart = https ? 8 : 7
        var authorityEnd = authorityStart
        while authorityEnd < bytes.count, bytes[authorityEnd] != UInt8(ascii: "/"),
            bytes[authorityEnd] != UInt8(ascii: "?"), bytes[authorityEnd] != UInt8(ascii: "#")
        {
            authorityEnd += 1
        }
        var authority = bytes[authorityStart..<authorityEnd].map(lowered)
        if authority.isEmpty || authority.contains(UInt8(ascii: "@")) { return nil }
        let defaultPort = Array((https ? ":443" : ":80").utf8)
        if authority.count > defaultPort.count, authority.suffix(defaultPort.count).elementsEqual(defaultPort) {
            authority.removeLast(defaultPort.count)
        }
        var pathEnd = authorityEnd
        while pathEnd < bytes.count, bytes[pathEnd] != UInt8(ascii: "?"), bytes[pathEnd] != UInt8(ascii: "#") {
            pathEnd += 1
        }
        var output = Array((https ? "https://" : "http://").utf8)
        output.reserveCapacity(output.count + authority.count + pathEnd - authorityEnd + 1)
        output += authority
        if pathEnd == authorityEnd { output.append(UInt8(ascii: "/")) } else { output += bytes[authorityEnd..<pathEnd] }
        return output
    }
}
