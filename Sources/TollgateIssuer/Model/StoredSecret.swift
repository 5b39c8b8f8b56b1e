import Crypto
import TollgateCore

/// A high-entropy machine secret (client secret, token) as kept at rest: its SHA-256, or, with
/// `store_*: plain`, the value itself. Compared in constant time either way.
public struct StoredSecret: Sendable, Equatable, Codable {
    public enum Form: String, Sendable, Codable {
        case sha256
        case plain
    }

    public let form: Form
    /// The digest or the secret's bytes.
    public let value: [UInt8]

    public init(form: Form, value: [UInt8]) {
        self.form = form
        self.value = value
    }

    public static func hashing(_ secret: String) -> StoredSecret {
        StoredSecret(form: .sha256, value: Array(SHA256.hash(data: Array(secret.utf8))))
    }

    public static func keeping(_ secret: String) -> StoredSecret {
        StoredSecret(form: .plain, value: Array(secret.utf8))
    }

    /// Whether `candidate` is the secret.
    public func matches(_ candidate: String) -> Bool {
        let presented: [UInt8] =
            form == .sha256 ? Array(SHA256.hash(data: Array(candidate.utf8))) : Array(candidate.utf8)
        guard presented.count == value.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(presented, value) { difference |= a ^ b }
        return difference == 0
    }
}

/// Random tokens and ids.
enum RandomToken {
    /// `bytes` random bytes as base64url (32 bytes: 43 characters, 256 bits).
    static func make(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        var output = [UInt8](repeating: 0, count: bytes)
        for index in output.indices { output[index] = UInt8.random(in: 0...255, using: &generator) }
        return Base64URL.encode(output)
    }

    /// Whether `value` has the shape of `make()`'s default: 43 base64url characters.
    static func isWellFormed(_ value: String) -> Bool {
        value.utf8.count == 43
            && value.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default: false
                }
            }
    }

    /// The key a token is stored under: its SHA-256 as base64url (the token itself never is).
    static func digest(_ token: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array(token.utf8))))
    }
}
