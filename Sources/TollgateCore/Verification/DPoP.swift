import Crypto
import Synchronization

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

/// A DPoP proof (RFC 9449 §4.3), checked: the key it was made with, as its RFC 7638 thumbprint.
public struct DPoPProof: Sendable, Equatable {
    public let thumbprint: String
    public let jti: String
    public let issuedAt: Double

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
    /// this gate's own origin; query and fragment are not compared) carrying `accessToken`
    /// (`nil` at a token endpoint, where a proof has no `ath`).
    /// - Parameters:
    ///   - accessTokenDigest: the access token's SHA-256 when the caller has it already (the
    ///     gate's cache key): `ath` is checked against it without hashing the token again.
    ///   - nonceIsValid: whether a nonce this gate gave out is still good.
    public func verify(
        _ proof: String,
        method: String,
        uri: String,
        accessToken: String?,
        accessTokenDigest: TokenDigest? = nil,
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
        if accessToken != nil || accessTokenDigest != nil {
            let digest = accessTokenDigest?.bytes ?? Array(SHA256.hash(data: Array(accessToken!.utf8)))
            guard claims["ath"] == .string(Base64URL.encode(digest)) else {
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

    /// An http(s) URI as compared (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3): scheme and host
    /// lower-cased (ASCII; other bytes are compared as they are), the default port dropped, an
    /// empty path as `/`, query and fragment left out.
    public static func comparable(_ uri: String) -> [UInt8]? {
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

/// The `jti`s of the proofs accepted within their lifetime, so none is accepted twice (RFC 9449
/// §11.1). Per process: a proof replayed to another replica within the lifetime is not caught
/// there, which is what the server nonce bounds — with `nonce: true` a proof is good only while
/// its nonce is (two nonce periods), and a replica issues and checks nonces of its own.
///
/// Two generations, each `window` long (at least a proof's lifetime): a proof is looked for in
/// both and recorded in the current one; when a window ends the current generation becomes the
/// previous and the previous is dropped whole. So a proof is remembered at least `window`, no
/// request ever walks the cache, and the memory is at most `capacity` digests.
public final class DPoPReplayCache: Sendable {
    private struct State {
        var current: Set<SHA256Digest> = []
        var previous: Set<SHA256Digest> = []
        var rotatesAt: Double = 0
        var capacity: Int
        var window: Double
    }

    private let state: Mutex<State>

    public init(capacity: Int, window: Double) {
        state = Mutex(State(capacity: capacity, window: window))
    }

    public var count: Int { state.withLock { $0.current.count + $0.previous.count } }
    public var capacity: Int { state.withLock { $0.capacity } }
    public var window: Double { state.withLock { $0.window } }

    private static func key(_ proof: DPoPProof) -> SHA256Digest {
        SHA256.hash(data: Array((proof.thumbprint + " " + proof.jti).utf8))
    }

    /// A new bound or window (a reload), in place: the same cache goes on, so no proof recorded
    /// before, during or after the reload is forgotten early. A shorter window takes effect once
    /// the proofs remembered under the longer one have had it; a lower bound forgets nothing (a
    /// cache over its bound refuses new proofs until old ones expire).
    public func reconfigure(capacity: Int, window: Double) {
        state.withLock { state in
            state.rotatesAt += max(0, state.window - window)
            state.capacity = capacity
            state.window = window
        }
    }

    /// Records a proof; `false` when it was seen before (a replay) or the cache is full of proofs
    /// that may still be live (refused rather than forgotten).
    public func accept(_ proof: DPoPProof, now: Double) -> Bool {
        let key = Self.key(proof)
        return state.withLock { state in
            if now >= state.rotatesAt {
                // A gap of more than a window leaves nothing live in either generation.
                state.previous = now >= state.rotatesAt + state.window ? [] : state.current
                state.current = []
                state.rotatesAt = now + state.window
            }
            if state.current.contains(key) || state.previous.contains(key) { return false }
            guard state.current.count + state.previous.count < state.capacity else { return false }
            state.current.insert(key)
            return true
        }
    }

    /// Forgets a proof `accept` took for a request that then failed, so proofs of failing
    /// requests take no room.
    public func forget(_ proof: DPoPProof) {
        let key = Self.key(proof)
        _ = state.withLock { $0.current.remove(key) }
    }
}

/// Server nonces (RFC 9449 §8): an HMAC over the time slot, so nothing is stored and every
/// replica with the same secret agrees; a nonce is good in its slot and the next, and a new one
/// is handed out with every DPoP answer.
public final class DPoPNonces: Sendable {
    private let key: SymmetricKey
    public let period: Double
    /// The configured secret the key comes from, if any (a reload keeps nonces while it stays).
    public let secret: Secret?

    public init(period: Double = 30, key: SymmetricKey = SymmetricKey(size: .bits256)) {
        self.period = period
        self.key = key
        secret = nil
    }

    /// Whose nonces these are: a server takes only its own (RFC 9449 §8–9), so the gate's and
    /// the token endpoint's differ even when they share a secret.
    public enum Purpose: String, Sendable {
        case resource
        case authorizationServer = "authorization-server"
    }

    /// Nonces made with a key derived from `secret` for `purpose` (HKDF-SHA256), or with a key of
    /// this process's own.
    public convenience init(secret: Secret?, purpose: Purpose, period: Double = 30) {
        guard let secret else {
            self.init(period: period)
            return
        }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(secret.value.utf8)),
            info: Array("tollgate dpop nonce v1: \(purpose.rawValue)".utf8),
            outputByteCount: 32
        )
        self.init(period: period, key: key, secret: secret)
    }

    private init(period: Double, key: SymmetricKey, secret: Secret) {
        self.period = period
        self.key = key
        self.secret = secret
    }

    public func current(now: Double) -> String {
        nonce(slot: UInt64(max(0, now / period)))
    }

    /// Good in its slot, the next and the one before: a replica whose clock runs a little ahead
    /// hands out the next slot's nonce early.
    public func isValid(_ nonce: String, now: Double) -> Bool {
        let slot = UInt64(max(0, now / period))
        return nonce == self.nonce(slot: slot) || nonce == self.nonce(slot: slot + 1)
            || (slot > 0 && nonce == self.nonce(slot: slot - 1))
    }

    private func nonce(slot: UInt64) -> String {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: slot.bigEndian) { bytes += $0 }
        let mac = HMAC<SHA256>.authenticationCode(for: bytes, using: key)
        return Base64URL.encode(bytes + Array(mac).prefix(16))
    }
}
