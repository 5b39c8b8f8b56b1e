import Crypto

/// RFC 8705 certificate-bound tokens: what a token's `cnf["x5t#S256"]` is compared with.
public enum CertificateBinding {
    /// Base64url SHA-256 of a certificate's DER (RFC 8705 §3.1).
    public static func thumbprint(der: some Collection<UInt8>) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array(der))))
    }

    /// The certificate of an RFC 9440 `Client-Cert` field (a structured-field byte sequence,
    /// `:base64:`), as its thumbprint; `nil` when the value is not one.
    public static func thumbprint(clientCertField value: String) -> String? {
        let trimmed = value.trimmingCharacters(in: " \t")
        guard trimmed.count > 2, trimmed.hasPrefix(":"), trimmed.hasSuffix(":") else { return nil }
        let base64 = trimmed.dropFirst().dropLast()
        guard base64.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/" || $0 == "=") })
        else { return nil }
        let urlForm = String(base64.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 }).filter { $0 != "=" }
        guard let der = Base64URL.decode(urlForm), !der.isEmpty else { return nil }
        return thumbprint(der: der)
    }

    /// The token's certificate binding, when it has one.
    public static func boundCertificate(of token: VerifiedToken) -> String? {
        token.claims["cnf"]?["x5t#S256"]?.stringValue
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var text = self[...]
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return Substring(text)
    }
}
