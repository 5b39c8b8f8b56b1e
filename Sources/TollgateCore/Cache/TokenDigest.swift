import Crypto

/// SHA-256 of a token, the key of every token cache: the token itself is never stored.
public struct TokenDigest: Hashable, Sendable {
    let a: UInt64
    let b: UInt64
    let c: UInt64
    let d: UInt64

    public init(token: String) {
        var copy = token
        let digest = copy.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        digest.withUnsafeBytes { raw in
            words = (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
        (a, b, c, d) = words
    }

    public func hash(into hasher: inout Hasher) {
        // Already uniformly distributed; one word is enough to spread the buckets.
        hasher.combine(a)
    }

    var shardIndex: Int { Int(truncatingIfNeeded: b & 0xF) }

    /// The SHA-256 itself (a DPoP proof's `ath` is its base64url form).
    var bytes: [UInt8] {
        var words = (a, b, c, d)
        return withUnsafeBytes(of: &words) { Array($0) }
    }

    /// 64 bits of the digest, for the doorkeeper's fingerprints.
    var fingerprint: UInt64 { c }
}
