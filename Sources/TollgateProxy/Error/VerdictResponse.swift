import TollgateCore

/// The HTTP answer for a refused request, decided in this one place (DESIGN.md's RFC 6750 table).
public struct VerdictResponse: Sendable, Equatable {
    public let status: Int
    public let headers: [(String, String)]
    public let body: String

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }

    /// No token at all: 401 with a bare challenge (RFC 6750 §3.1: no error code).
    public static func missingToken(realm: String) -> VerdictResponse {
        VerdictResponse(
            status: 401,
            headers: [("WWW-Authenticate", "Bearer realm=\"\(realm)\"")],
            body: #"{"error":"invalid_request","error_description":"a bearer token is required"}"#
        )
    }

    /// A refused token: 401 `invalid_token`, or 503 with `Retry-After` when keys or introspection
    /// were unreachable (fail closed, and do not tell the client its token is bad).
    public static func refused(_ failure: VerificationFailure, realm: String) -> VerdictResponse {
        if failure.isUnavailable {
            return VerdictResponse(
                status: 503,
                headers: [("Retry-After", "5")],
                body: #"{"error":"temporarily_unavailable","error_description":"token verification is unavailable"}"#
            )
        }
        let description = failure.reason.filter { $0 != "\"" && $0 != "\\" }
        return VerdictResponse(
            status: 401,
            headers: [
                (
                    "WWW-Authenticate",
                    "Bearer realm=\"\(realm)\", error=\"invalid_token\", error_description=\"\(description)\""
                )
            ],
            body: #"{"error":"invalid_token","error_description":"\#(description)"}"#
        )
    }

    /// A valid token without the route's scopes: 403 `insufficient_scope` naming them.
    public static func insufficientScope(_ scope: String, realm: String) -> VerdictResponse {
        VerdictResponse(
            status: 403,
            headers: [
                ("WWW-Authenticate", "Bearer realm=\"\(realm)\", error=\"insufficient_scope\", scope=\"\(scope)\"")
            ],
            body: #"{"error":"insufficient_scope","error_description":"the token lacks a required scope"}"#
        )
    }

    /// No route matched and the default is deny, or a claim condition failed.
    public static let forbidden = VerdictResponse(
        status: 403,
        headers: [],
        body: #"{"error":"forbidden","error_description":"access to this resource is not allowed"}"#
    )

    /// A malformed request (path, headers, a token sent twice): 400, no challenge unless the
    /// problem is the token itself (RFC 6750 §3.1 `invalid_request`).
    public static func badRequest(_ description: String, realm: String? = nil) -> VerdictResponse {
        let text = description.filter { $0 != "\"" && $0 != "\\" }
        var headers: [(String, String)] = []
        if let realm {
            headers.append(
                (
                    "WWW-Authenticate",
                    "Bearer realm=\"\(realm)\", error=\"invalid_request\", error_description=\"\(text)\""
                )
            )
        }
        return VerdictResponse(
            status: 400,
            headers: headers,
            body: #"{"error":"invalid_request","error_description":"\#(text)"}"#
        )
    }

    /// Limits and upstream failures: a status and a short reason.
    public static func plain(_ status: Int, error: String, description: String) -> VerdictResponse {
        VerdictResponse(
            status: status,
            headers: [],
            body: #"{"error":"\#(error)","error_description":"\#(description)"}"#
        )
    }
}
