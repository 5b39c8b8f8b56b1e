import Crypto

/// Server nonces (RFC 9449 §8): an HMAC over the time slot, so nothing is stored and every
/// replica with the same secret agrees; a new one is handed out with every DPoP answer.
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
