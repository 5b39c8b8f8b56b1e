import HTTPTypes
import TollgateCore

/// An error answer of the token, introspection and revocation endpoints (RFC 6749 §5.2): a
/// JSON body with `error` and `error_description`, 400 — or 401 with a `WWW-Authenticate`
/// challenge when client authentication failed.
struct OAuthError: Error, Sendable {
    let code: String
    let description: String
    let status: HTTPResponse.Status
    /// Set for `invalid_client` when the client tried `Authorization: Basic`.
    var challenge: String?

    static func invalidRequest(_ description: String) -> OAuthError {
        OAuthError(code: "invalid_request", description: description, status: .badRequest)
    }

    static func invalidClient(realm: String) -> OAuthError {
        OAuthError(
            code: "invalid_client",
            description: "client authentication failed",
            status: .unauthorized,
            challenge: "Basic realm=" + quoted(realm)
        )
    }

    static func invalidGrant(_ description: String) -> OAuthError {
        OAuthError(code: "invalid_grant", description: description, status: .badRequest)
    }

    static func unauthorizedClient(_ description: String) -> OAuthError {
        OAuthError(code: "unauthorized_client", description: description, status: .badRequest)
    }

    static let unsupportedGrantType = OAuthError(
        code: "unsupported_grant_type",
        description: "the grant type is not supported",
        status: .badRequest
    )

    static func invalidScope(_ description: String) -> OAuthError {
        OAuthError(code: "invalid_scope", description: description, status: .badRequest)
    }

    static func invalidTarget(_ description: String) -> OAuthError {
        OAuthError(code: "invalid_target", description: description, status: .badRequest)
    }

    var response: IssuerResponse {
        var headers = IssuerResponse.noStore
        if let challenge { headers[.wwwAuthenticate] = challenge }
        return .json(
            .object(["error": .string(code), "error_description": .string(description)]),
            status: status,
            headers: headers
        )
    }

    /// RFC 9110 quoted-string of a configuration value.
    static func quoted(_ value: String) -> String {
        "\"" + value.filter { $0 != "\"" && $0 != "\\" && !$0.isNewline } + "\""
    }
}

/// What an issuer endpoint answers: a swift-http-types response and its body, so any Swift
/// server can send it.
public struct IssuerResponse: Sendable {
    public var head: HTTPResponse
    public var body: [UInt8]

    public init(head: HTTPResponse, body: [UInt8]) {
        self.head = head
        self.body = body
    }

    /// RFC 6749 §5.1: token answers are never cached.
    static var noStore: HTTPFields {
        var fields = HTTPFields()
        fields[.cacheControl] = "no-store"
        fields[HTTPField.Name("Pragma")!] = "no-cache"
        return fields
    }

    static func json(
        _ value: JSONValue,
        status: HTTPResponse.Status = .ok,
        headers: HTTPFields = HTTPFields()
    )
        -> IssuerResponse
    {
        var fields = headers
        fields[.contentType] = "application/json"
        return IssuerResponse(
            head: HTTPResponse(status: status, headerFields: fields),
            body: Array(value.serialized().utf8)
        )
    }

    static func empty(status: HTTPResponse.Status = .ok, headers: HTTPFields = HTTPFields()) -> IssuerResponse {
        IssuerResponse(head: HTTPResponse(status: status, headerFields: headers), body: [])
    }
}
