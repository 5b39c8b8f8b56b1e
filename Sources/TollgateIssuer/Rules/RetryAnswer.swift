import Crypto
import TollgateCore

/// The token answer kept for a refresh retry (`refresh_token_reuse_interval`), sealed with
/// AES-GCM under a key derived (HKDF-SHA256) from the refresh token that was spent: the store
/// keeps only its digest, so whoever reads the store cannot open the answer, and only the
/// holder of the spent token can.
enum RetryAnswer {
    static let info = Array("tollgate refresh retry answer v1".utf8)

    static func key(for refreshToken: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Array(refreshToken.utf8)),
            info: info,
            outputByteCount: 32
        )
    }

    /// base64url of nonce ‖ ciphertext ‖ tag.
    static func seal(_ answer: String, refreshToken: String) throws -> String {
        let box = try AES.GCM.seal(Array(answer.utf8), using: key(for: refreshToken))
        guard let combined = box.combined else { throw SealingFailed() }
        return Base64URL.encode(Array(combined))
    }

    /// The answer, or `nil` when `sealed` was not sealed for `refreshToken`.
    static func open(_ sealed: String, refreshToken: String) -> String? {
        guard let bytes = Base64URL.decode(sealed), let box = try? AES.GCM.SealedBox(combined: bytes),
            let plain = try? AES.GCM.open(box, using: key(for: refreshToken))
        else { return nil }
        return String(decoding: plain, as: UTF8.self)
    }

    struct SealingFailed: Error {}
}
