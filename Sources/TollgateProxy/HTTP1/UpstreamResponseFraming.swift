import NIOHTTP1

/// The framing of an upstream's response head, checked as strictly as a request's before the
/// answer is relayed: a response a second parser could frame differently would desynchronise the
/// pooled connection, so it is refused (502) and the connection closed, never reused.
enum UpstreamResponseFraming {
    /// Why the head's framing is refused, or `nil`.
    static func problem(_ head: HTTPResponseHead) -> String? {
        var lengths = 0
        var codings = 0
        for (name, value) in head.headers {
            if name.utf8.equalsIgnoringASCIICase(HTTP1Syntax.contentLength) {
                lengths += 1
                guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return "invalid_content_length"
                }
            } else if name.utf8.equalsIgnoringASCIICase(HTTP1Syntax.transferEncoding) {
                codings += 1
                guard value.utf8.equalsIgnoringASCIICase(HTTP1Syntax.chunked) else {
                    return "unsupported_transfer_coding"
                }
            }
        }
        if lengths > 1 { return "repeated_content_length" }
        if codings > 1 { return "repeated_transfer_encoding" }
        if codings > 0 && lengths > 0 { return "content_length_and_transfer_encoding" }
        if codings > 0 && head.version.major == 1 && head.version.minor == 0 { return "transfer_encoding_in_http10" }
        return nil
    }
}
