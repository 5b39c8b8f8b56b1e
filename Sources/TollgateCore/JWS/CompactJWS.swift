/// A JWS in compact serialisation, split and decoded but not yet verified.
public struct CompactJWS: Sendable {
    public let token: String
    public let header: JSONValue
    public let algorithmName: String
    public let keyID: String?
    public let type: String?
    public let payload: [UInt8]
    public let signature: [UInt8]
    /// Byte offset of the second `.`: the signing input is `token.utf8[..<signingInputEnd]`.
    let signingInputEnd: Int
    let payloadRange: Range<Int>

    /// The payload exactly as the token carries it (base64url JSON), for forwarding as-is.
    public var payloadSegment: Substring {
        let utf8 = token.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: payloadRange.lowerBound)
        let end = utf8.index(utf8.startIndex, offsetBy: payloadRange.upperBound)
        return token[start..<end]
    }

    /// Splits and decodes a compact JWS, refusing what no verification could make good: a
    /// token over `maximumSize` bytes, a JWE, anything but three base64url parts, a header that
    /// is not a JSON object or has no string `alg`, `alg: none` in any spelling, and `crit`.
    public static func parse(_ token: String, maximumSize: Int) -> Result<CompactJWS, VerificationFailure> {
        let utf8 = token.utf8
        if utf8.count > maximumSize {
            return .failure(VerificationFailure(.tokenTooLarge, "the token is larger than \(maximumSize) bytes"))
        }
        var storage = token
        // Up to five dot offsets, found on the contiguous UTF-8 bytes (no per-character String
        // iteration, no allocation).
        var dots: (Int, Int, Int, Int, Int) = (-1, -1, -1, -1, -1)
        let dotCount = storage.withUTF8 { bytes -> Int in
            var found = 0
            for offset in 0..<bytes.count where bytes[offset] == UInt8(ascii: ".") {
                switch found {
                case 0: dots.0 = offset
                case 1: dots.1 = offset
                case 2: dots.2 = offset
                case 3: dots.3 = offset
                default: dots.4 = offset
                }
                found += 1
                if found > 4 { break }
            }
            return found
        }
        if dotCount == 4 {
            return .failure(
                VerificationFailure(
                    .encryptedToken,
                    "the token is a JWE (five parts); encrypted tokens are not accepted"
                )
            )
        }
        guard dotCount == 2 else {
            return .failure(VerificationFailure(.malformedToken, "a JWS has three dot-separated parts"))
        }
        // Decoded straight from the string's own UTF-8 storage; failures are reported below in
        // rule order.
        let (first, second) = (dots.0, dots.1)
        let (decodedHeader, decodedPayload, decodedSignature) = storage.withUTF8 { utf8 in
            (
                Base64URL.decode(UnsafeBufferPointer(rebasing: utf8[0..<first])),
                Base64URL.decode(UnsafeBufferPointer(rebasing: utf8[(first + 1)..<second])),
                Base64URL.decode(UnsafeBufferPointer(rebasing: utf8[(second + 1)...]))
            )
        }
        guard let headerBytes = decodedHeader else {
            return .failure(VerificationFailure(.malformedToken, "the header is not base64url"))
        }
        guard let header = try? JSONParser.parse(headerBytes), case .object(let members) = header else {
            return .failure(VerificationFailure(.malformedToken, "the header is not a JSON object"))
        }
        if members["enc"] != nil {
            return .failure(
                VerificationFailure(.encryptedToken, "the header names an 'enc': encrypted tokens are not accepted")
            )
        }
        guard let algorithmName = members["alg"]?.stringValue else {
            return .failure(VerificationFailure(.malformedToken, "the header has no string 'alg'"))
        }
        if algorithmName.lowercased() == "none" {
            return .failure(VerificationFailure(.unsecuredToken, "unsecured tokens (alg none) are never accepted"))
        }
        if members["crit"] != nil {
            return .failure(
                VerificationFailure(
                    .unsupportedCriticalHeader,
                    "the header marks extensions critical that are not understood"
                )
            )
        }
        let keyID: String?
        switch members["kid"] {
        case nil: keyID = nil
        case .string(let value): keyID = value
        default: return .failure(VerificationFailure(.malformedToken, "the header's 'kid' is not a string"))
        }
        guard let payload = decodedPayload else {
            return .failure(VerificationFailure(.malformedToken, "the payload is not base64url"))
        }
        guard let signature = decodedSignature, !signature.isEmpty else {
            return .failure(VerificationFailure(.malformedToken, "the signature is missing or not base64url"))
        }
        return .success(
            CompactJWS(
                token: token,
                header: header,
                algorithmName: algorithmName,
                keyID: keyID,
                type: members["typ"]?.stringValue,
                payload: payload,
                signature: signature,
                signingInputEnd: second,
                payloadRange: (first + 1)..<second
            )
        )
    }
}
