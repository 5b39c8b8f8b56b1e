/// `application/x-www-form-urlencoded` as RFC 6749 Appendix B uses it.
public enum FormURLEncoding {
    /// Encodes one name or value: unreserved characters stay, a space becomes `+`, everything else
    /// (`@`, `/`, `:`, non-ASCII) is percent-encoded from its UTF-8 bytes.
    public static func encode(_ text: String) -> String {
        var output = [UInt8]()
        output.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "*"):
                output.append(byte)
            case UInt8(ascii: " "):
                output.append(UInt8(ascii: "+"))
            default:
                output.append(UInt8(ascii: "%"))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
    }

    /// The `Authorization: Basic` value of RFC 6749 §2.3.1: id and secret are form-encoded
    /// before they are joined and base64-encoded, so an id like `@team/gate` survives.
    public static func basicAuthorization(clientID: String, clientSecret: String) -> String {
        let credentials = encode(clientID) + ":" + encode(clientSecret)
        return "Basic " + standardBase64(Array(credentials.utf8))
    }

    static func standardBase64(_ bytes: [UInt8]) -> String {
        var encoded = Base64URL.encode(bytes)
        encoded = String(encoded.map { $0 == "-" ? "+" : ($0 == "_" ? "/" : $0) })
        while encoded.utf8.count % 4 != 0 { encoded += "=" }
        return encoded
    }
}
