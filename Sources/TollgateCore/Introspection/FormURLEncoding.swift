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

    /// Parses a form body (or a query): `+` is a space, `%XX` a byte; a name without `=` has an
    /// empty value. `nil` when an escape is malformed or the bytes are not UTF-8.
    public static func decode(_ bytes: some Collection<UInt8>) -> [(String, String)]? {
        var pairs: [(String, String)] = []
        for part in Array(bytes).split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = part.firstIndex(of: UInt8(ascii: "="))
            let name = equals.map { part[part.startIndex..<$0] } ?? part[...]
            let value = equals.map { part[part.index(after: $0)...] } ?? []
            guard let decodedName = unescape(name), let decodedValue = unescape(value) else { return nil }
            pairs.append((decodedName, decodedValue))
        }
        return pairs
    }

    /// One form-encoded name or value.
    public static func unescape(_ bytes: some Collection<UInt8>) -> String? {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var iterator = Array(bytes)[...]
        while let byte = iterator.popFirst() {
            switch byte {
            case UInt8(ascii: "+"): output.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard iterator.count >= 2, let high = hexValue(iterator.removeFirst()),
                    let low = hexValue(iterator.removeFirst())
                else { return nil }
                output.append(high << 4 | low)
            default: output.append(byte)
            }
        }
        return String(validating: output, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The client id and secret of an `Authorization: Basic` value (RFC 6749 §2.3.1: both halves
    /// form-decoded), or `nil` when it is not one.
    public static func basicCredentials(_ value: String) -> (id: String, secret: String)? {
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return nil }
        let standard = parts[1].filter { $0 != " " && $0 != "\t" }
        let urlSafe = String(standard.map { $0 == "+" ? "-" : ($0 == "/" ? "_" : $0) }.filter { $0 != "=" })
        guard let decoded = Base64URL.decode(urlSafe), let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
            let id = unescape(decoded[..<colon]), let secret = unescape(decoded[(colon + 1)...])
        else { return nil }
        return (id, secret)
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
