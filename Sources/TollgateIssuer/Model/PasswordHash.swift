import Crypto
import TollgateCore
import _CryptoExtras

/// User passwords at rest: scrypt (swift-crypto's `KDF.Scrypt`, BoringSSL underneath), written
/// `scrypt$N$r$p$salt$hash` with base64url salt and hash. Verification is constant time.
public enum PasswordHash {
    /// N = 2^15, r = 8, p = 1: about 32 MiB and tens of milliseconds per check.
    public static func make(_ password: String, rounds: Int = 1 << 15) throws -> String {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let hash = try derive(password, salt: salt, rounds: rounds, blockSize: 8, parallelism: 1)
        return "scrypt$\(rounds)$8$1$\(Base64URL.encode(salt))$\(Base64URL.encode(hash))"
    }

    /// Whether `password` matches `encoded`; `false` for anything malformed.
    public static func verify(_ password: String, against encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt", let rounds = Int(parts[1]), let blockSize = Int(parts[2]),
            let parallelism = Int(parts[3]), rounds > 1, rounds <= 1 << 20, rounds & (rounds - 1) == 0,
            (1...32).contains(blockSize), (1...16).contains(parallelism),
            let salt = Base64URL.decode(String(parts[4])), let expected = Base64URL.decode(String(parts[5])),
            !expected.isEmpty,
            let derived = try? derive(
                password,
                salt: salt,
                rounds: rounds,
                blockSize: blockSize,
                parallelism: parallelism,
                length: expected.count
            )
        else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(derived, expected) { difference |= a ^ b }
        return difference == 0
    }

    /// The cost parameters of `encoded` (`scrypt$N$r$p`), when it is a hash this type reads.
    public static func parameters(of encoded: String) -> String? {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt", let rounds = Int(parts[1]), Int(parts[2]) != nil,
            Int(parts[3]) != nil, rounds > 1, rounds <= 1 << 20, rounds & (rounds - 1) == 0
        else { return nil }
        return parts[0...3].joined(separator: "$")
    }

    /// A hash of a random password with the cost `parameters` names (`scrypt$N$r$p`): what a
    /// sign-in of an unknown user is checked against, so it takes as long as a known user's.
    public static func dummy(parameters: String) throws -> String {
        let parts = parameters.split(separator: "$")
        guard parts.count == 4, let rounds = Int(parts[1]), let blockSize = Int(parts[2]),
            let parallelism = Int(parts[3])
        else { return try make(RandomToken.make()) }
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let hash = try derive(
            RandomToken.make(),
            salt: salt,
            rounds: rounds,
            blockSize: blockSize,
            parallelism: parallelism
        )
        return "\(parameters)$\(Base64URL.encode(salt))$\(Base64URL.encode(hash))"
    }

    /// Whether `encoded` looks like a hash this type writes (configuration check).
    public static func isWellFormed(_ encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        return parts.count == 6 && parts[0] == "scrypt" && Int(parts[1]) != nil
    }

    static func derive(
        _ password: String,
        salt: [UInt8],
        rounds: Int,
        blockSize: Int,
        parallelism: Int,
        length: Int = 32
    ) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8),
            salt: salt,
            outputByteCount: length,
            rounds: rounds,
            blockSize: blockSize,
            parallelism: parallelism,
            maxMemory: 64 << 20
        )
        return key.withUnsafeBytes { Array($0) }
    }
}
