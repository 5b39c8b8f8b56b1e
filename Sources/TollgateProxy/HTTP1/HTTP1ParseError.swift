/// A request the HTTP/1.1 parser refuses. Always answered 400 (or 431 for `headTooLarge`) and
/// followed by a close: after a framing error nothing on the connection can be trusted to start
/// a request (RFC 9112 §2.2, §11.2).
package struct HTTP1ParseError: Error, Equatable, CustomStringConvertible {
    package enum Code: String, Sendable {
        /// The request line, a field line or the framing breaks RFC 9112.
        case malformed
        /// The head (or the trailer section) is larger than the limit.
        case headTooLarge
        /// A chunk size line or chunk framing breaks RFC 9112 §7.1.
        case badChunk
    }

    package let code: Code
    /// Which rule was broken, for the log line (never the bytes themselves).
    package let reason: String

    package init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    package var description: String { "\(code.rawValue): \(reason)" }

    package var gateError: GateError {
        GateError(code == .headTooLarge ? .headersTooLarge : .malformedRequest, reason)
    }
}
