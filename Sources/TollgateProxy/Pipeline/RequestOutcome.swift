/// How a request ended, as logs and metrics name it.
public enum RequestOutcome: String, Sendable, CaseIterable {
    /// Forwarded (or, on the forward-auth endpoint, allowed) with a verified token.
    case allowed
    /// Forwarded on a route that needs no token.
    case `public`
    case noToken = "no_token"
    case invalidToken = "invalid_token"
    case insufficientScope = "insufficient_scope"
    case forbidden
    case unavailable
    case badRequest = "bad_request"
    /// Nothing is served at that address (no upstream configured).
    case notFound = "not_found"
    case upstreamError = "upstream_error"
    case upstreamTimeout = "upstream_timeout"

    /// Position in `allCases`, without building the array on every request.
    var index: Int {
        switch self {
        case .allowed: 0
        case .public: 1
        case .noToken: 2
        case .invalidToken: 3
        case .insufficientScope: 4
        case .forbidden: 5
        case .unavailable: 6
        case .badRequest: 7
        case .notFound: 8
        case .upstreamError: 9
        case .upstreamTimeout: 10
        }
    }
}
