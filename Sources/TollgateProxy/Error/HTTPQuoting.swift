import NIOHTTP1

/// The last line of defence against response splitting: what Tollgate writes into a header is
/// checked byte by byte, whatever it came from.
enum HTTPQuoting {
    /// RFC 9110 §5.6.4 quoted-string: `"` and `\` escaped, control characters dropped.
    static func quotedString(_ value: String) -> String {
        var output = "\""
        output.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar.value {
            case 0x22, 0x5C:
                output += "\\"
                output.unicodeScalars.append(scalar)
            case 0x00..<0x20, 0x7F:
                continue
            default:
                output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
        return output
    }

    /// RFC 9110 §5.6.2 token (a field name).
    static func isToken(_ name: String) -> Bool {
        guard !name.utf8.isEmpty else { return false }
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
                UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// RFC 9110 §5.5 field value: no CR, LF, NUL or other control character (HTAB allowed).
    static func isFieldValue(_ value: String) -> Bool {
        for byte in value.utf8 where (byte < 0x20 && byte != 0x09) || byte == 0x7F {
            return false
        }
        return true
    }

    /// Every name a token and every value a field value.
    static func areValidToSend(_ headers: HTTPHeaders) -> Bool {
        for (name, value) in headers where !isToken(name) || !isFieldValue(value) {
            return false
        }
        return true
    }
}
