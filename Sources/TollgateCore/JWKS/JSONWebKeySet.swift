import Crypto
import _CryptoExtras

/// A JWK Set (RFC 7517 §5) reduced to the keys that can verify signatures.
///
/// Parsing is lenient per key and strict per document: a key of a type Tollgate does not support
/// (or a broken one) is skipped with a reason, the others still load; a document that is not a
/// JSON object with a `keys` array is refused whole.
public struct JSONWebKeySet: Sendable {
    public struct SkippedKey: Sendable, Equatable {
        public let index: Int
        public let keyID: String?
        public let reason: String
    }

    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    public let keys: [VerificationKey]
    public let skipped: [SkippedKey]
    private let indicesByKeyID: [String: [Int]]

    public init(keys: [VerificationKey], skipped: [SkippedKey] = []) {
        self.keys = keys
        self.skipped = skipped
        var byID: [String: [Int]] = [:]
        for (index, key) in keys.enumerated() {
            if let keyID = key.keyID { byID[keyID, default: []].append(index) }
        }
        self.indicesByKeyID = byID
    }

    public static let empty = JSONWebKeySet(keys: [])

    public var keyIDs: [String] { keys.compactMap(\.keyID) }

    /// The keys published under `keyID` (several keys may share one, e.g. an RSA and an EC key).
    func keys(withID keyID: String) -> [VerificationKey]? {
        indicesByKeyID[keyID].map { $0.map { keys[$0] } }
    }

    /// A copy with `extra` keys added (configured HMAC secrets join the fetched public keys).
    func adding(_ extra: [VerificationKey]) -> JSONWebKeySet {
        extra.isEmpty ? self : JSONWebKeySet(keys: keys + extra, skipped: skipped)
    }

    public static func parse(_ bytes: some Collection<UInt8>) throws(ParseError) -> JSONWebKeySet {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw ParseError(reason: "the key set is not valid JSON (\(error.reason) at byte \(error.offset))")
        }
        guard let entries = document["keys"]?.arrayValue else {
            throw ParseError(reason: "the key set has no 'keys' array")
        }
        var keys: [VerificationKey] = []
        var skipped: [SkippedKey] = []
        for (index, entry) in entries.enumerated() {
            switch parseKey(entry) {
            case .success(let key): keys.append(key)
            case .failure(let failure):
                skipped.append(SkippedKey(index: index, keyID: entry["kid"]?.stringValue, reason: failure.reason))
            }
        }
        return JSONWebKeySet(keys: keys, skipped: skipped)
    }

    static func parseKey(_ entry: JSONValue) -> Result<VerificationKey, ParseError> {
        guard case .object = entry else { return .failure(ParseError(reason: "a key is not a JSON object")) }
        guard let keyType = entry["kty"]?.stringValue else { return .failure(ParseError(reason: "no 'kty'")) }
        let keyID = entry["kid"]?.stringValue
        var algorithm: JWSAlgorithm?
        if let name = entry["alg"] {
            guard let string = name.stringValue, let known = JWSAlgorithm(rawValue: string) else {
                return .failure(ParseError(reason: "'alg' \(name.serialized()) is not a supported signature algorithm"))
            }
            algorithm = known
        }
        let use = entry["use"]?.stringValue
        var operations: [String]?
        if let ops = entry["key_ops"] {
            guard let list = ops.arrayValue?.compactMap(\.stringValue), list.count == ops.arrayValue?.count else {
                return .failure(ParseError(reason: "'key_ops' is not an array of strings"))
            }
            operations = list
        }
        let material: VerificationKey.Material
        switch keyType {
        case "RSA":
            guard let modulus = member(entry, "n"), let exponent = member(entry, "e") else {
                return .failure(ParseError(reason: "an RSA key needs base64url 'n' and 'e'"))
            }
            do {
                material = .rsa(try _RSA.Signing.PublicKey(n: modulus, e: exponent))
            } catch {
                return .failure(ParseError(reason: "the RSA key was refused (smaller than 2048 bits or invalid)"))
            }
        case "EC":
            guard let curve = entry["crv"]?.stringValue, let x = member(entry, "x"), let y = member(entry, "y") else {
                return .failure(ParseError(reason: "an EC key needs 'crv', 'x' and 'y'"))
            }
            let point = [0x04] + x + y
            do {
                switch (curve, x.count, y.count) {
                case ("P-256", 32, 32): material = .p256(try P256.Signing.PublicKey(x963Representation: point))
                case ("P-384", 48, 48): material = .p384(try P384.Signing.PublicKey(x963Representation: point))
                case ("P-521", 66, 66): material = .p521(try P521.Signing.PublicKey(x963Representation: point))
                case ("P-256", _, _), ("P-384", _, _), ("P-521", _, _):
                    return .failure(ParseError(reason: "the EC coordinates have the wrong length for \(curve)"))
                default:
                    return .failure(ParseError(reason: "the EC curve '\(curve)' is not supported"))
                }
            } catch {
                return .failure(ParseError(reason: "the EC point is not on \(curve)"))
            }
        case "OKP":
            guard let curve = entry["crv"]?.stringValue, let x = member(entry, "x") else {
                return .failure(ParseError(reason: "an OKP key needs 'crv' and 'x'"))
            }
            guard curve == "Ed25519" else {
                return .failure(ParseError(reason: "the OKP curve '\(curve)' is not supported"))
            }
            guard x.count == 32, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                return .failure(ParseError(reason: "the Ed25519 key is not 32 bytes"))
            }
            material = .ed25519(key)
        case "oct":
            // A symmetric key in a published key set would let anyone who can read the set forge
            // tokens; HMAC secrets come only from configuration.
            return .failure(ParseError(reason: "symmetric keys are not accepted from a key set"))
        default:
            return .failure(ParseError(reason: "the key type '\(keyType)' is not supported"))
        }
        if let algorithm, algorithm.keyFamily != material.family {
            return .failure(ParseError(reason: "'alg' \(algorithm.rawValue) does not fit the key type \(keyType)"))
        }
        return .success(
            VerificationKey(keyID: keyID, algorithm: algorithm, use: use, operations: operations, material: material)
        )
    }

    private static func member(_ entry: JSONValue, _ name: String) -> [UInt8]? {
        guard let string = entry[name]?.stringValue else { return nil }
        return Base64URL.decode(string)
    }
}
