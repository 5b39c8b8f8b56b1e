import HTTPTypes
import TollgateCore

/// Every error the issuer answers, as a stable code and a description. What the code means on
/// the wire — the `error` value, the status, a `WWW-Authenticate` challenge, and whether it is a
/// protocol error (JSON, or sent to the client's redirect URI when the request names a trusted
/// one) or a page for the person — is decided in one place, `IssuerError.table`, as `GateError`
/// does for the proxy.
struct IssuerError: Error, Sendable {
    enum Code: String, Sendable, CaseIterable {
        // RFC 6749 §4.1.2.1 and §5.2, RFC 7009, RFC 7662
        case invalidRequest
        case invalidClient
        case invalidGrant
        case unauthorizedClient
        case unsupportedGrantType
        case unsupportedResponseType
        case invalidScope
        case accessDenied
        case serverError
        case methodNotAllowed
        case notFound
        // RFC 8707
        case invalidTarget
        // RFC 9449 §5 and §8
        case invalidDPoPProof
        case useDPoPNonce
        /// `use_dpop_nonce` from a resource (userinfo), with a DPoP challenge (§9).
        case useDPoPNonceAtResource
        /// `invalid_dpop_proof` from a resource (userinfo), with a DPoP challenge (§7.1).
        case invalidDPoPProofAtResource
        // OpenID Connect Core §3.1.2.6
        case loginRequired
        case consentRequired
        case requestNotSupported
        case requestURINotSupported
        // OpenID Connect Unmet Authentication Requirements 1.0: `acr_values` none of which this
        // issuer can meet (RFC 9470 §4).
        case unmetAuthenticationRequirements
        // RFC 8628 §3.5
        case authorizationPending
        case slowDown
        case expiredToken
        // RFC 7591 §3.2.2
        case invalidClientMetadata
        case invalidRedirectURI
        case registrationDisabled
        // RFC 6750 §3.1 (userinfo)
        case missingToken
        case invalidToken
        case insufficientScope
        // RFC 6585 §4
        case tooManyRequests
        // Pages for the person: nothing to send back to a client.
        case unknownClient
        case unregisteredRedirect
        case formExpired
        case badSignOutRequest
        case deviceRequestSettled
    }

    enum Challenge: Sendable {
        /// `Basic realm="…"`: client authentication failed (RFC 6749 §5.2).
        case basic
        /// `Bearer realm="…"`, with the error code unless the token was missing (RFC 6750 §3).
        case bearer
        /// `DPoP realm="…", error="…"` (RFC 9449 §7.1).
        case dpop
    }

    enum Presentation: Sendable {
        /// JSON `{"error", "error_description"}`; at the authorization endpoint, sent to the
        /// client's redirect URI when the request names one that is trusted, else a page.
        case protocolError
        /// An HTML page for the person, never sent to a client.
        case page
    }

    struct Entry: Sendable {
        /// The `error` value (RFC 6749 §5.2 and the registries).
        var error: String
        var status: HTTPResponse.Status
        var challenge: Challenge?
        var presentation: Presentation
    }

    /// The one table.
    static func entry(_ code: Code) -> Entry {
        switch code {
        case .invalidRequest: Entry(error: "invalid_request", status: .badRequest, presentation: .protocolError)
        case .invalidClient:
            Entry(error: "invalid_client", status: .unauthorized, challenge: .basic, presentation: .protocolError)
        case .invalidGrant: Entry(error: "invalid_grant", status: .badRequest, presentation: .protocolError)
        case .unauthorizedClient: Entry(error: "unauthorized_client", status: .badRequest, presentation: .protocolError)
        case .unsupportedGrantType:
            Entry(error: "unsupported_grant_type", status: .badRequest, presentation: .protocolError)
        case .unsupportedResponseType:
            Entry(error: "unsupported_response_type", status: .badRequest, presentation: .protocolError)
        case .invalidScope: Entry(error: "invalid_scope", status: .badRequest, presentation: .protocolError)
        case .accessDenied: Entry(error: "access_denied", status: .badRequest, presentation: .protocolError)
        case .serverError: Entry(error: "server_error", status: .internalServerError, presentation: .protocolError)
        case .methodNotAllowed: Entry(error: "invalid_request", status: .methodNotAllowed, presentation: .protocolError)
        case .notFound: Entry(error: "not_found", status: .notFound, presentation: .protocolError)
        case .invalidTarget: Entry(error: "invalid_target", status: .badRequest, presentation: .protocolError)
        case .invalidDPoPProof: Entry(error: "invalid_dpop_proof", status: .badRequest, presentation: .protocolError)
        case .useDPoPNonce: Entry(error: "use_dpop_nonce", status: .badRequest, presentation: .protocolError)
        case .useDPoPNonceAtResource:
            Entry(error: "use_dpop_nonce", status: .unauthorized, challenge: .dpop, presentation: .protocolError)
        case .invalidDPoPProofAtResource:
            Entry(error: "invalid_dpop_proof", status: .unauthorized, challenge: .dpop, presentation: .protocolError)
        case .loginRequired: Entry(error: "login_required", status: .badRequest, presentation: .protocolError)
        case .consentRequired: Entry(error: "consent_required", status: .badRequest, presentation: .protocolError)
        case .requestNotSupported:
            Entry(error: "request_not_supported", status: .badRequest, presentation: .protocolError)
        case .requestURINotSupported:
            Entry(error: "request_uri_not_supported", status: .badRequest, presentation: .protocolError)
        case .unmetAuthenticationRequirements:
            Entry(error: "unmet_authentication_requirements", status: .badRequest, presentation: .protocolError)
        case .authorizationPending:
            Entry(error: "authorization_pending", status: .badRequest, presentation: .protocolError)
        case .slowDown: Entry(error: "slow_down", status: .badRequest, presentation: .protocolError)
        case .expiredToken: Entry(error: "expired_token", status: .badRequest, presentation: .protocolError)
        case .invalidClientMetadata:
            Entry(error: "invalid_client_metadata", status: .badRequest, presentation: .protocolError)
        case .invalidRedirectURI:
            Entry(error: "invalid_redirect_uri", status: .badRequest, presentation: .protocolError)
        case .registrationDisabled: Entry(error: "access_denied", status: .forbidden, presentation: .protocolError)
        case .missingToken:
            Entry(error: "invalid_request", status: .unauthorized, challenge: .bearer, presentation: .protocolError)
        case .invalidToken:
            Entry(error: "invalid_token", status: .unauthorized, challenge: .bearer, presentation: .protocolError)
        case .insufficientScope:
            Entry(error: "insufficient_scope", status: .forbidden, challenge: .bearer, presentation: .protocolError)
        case .tooManyRequests: Entry(error: "invalid_request", status: .tooManyRequests, presentation: .protocolError)
        case .unknownClient, .unregisteredRedirect, .badSignOutRequest, .deviceRequestSettled:
            Entry(error: "invalid_request", status: .badRequest, presentation: .page)
        case .formExpired: Entry(error: "invalid_request", status: .forbidden, presentation: .page)
        }
    }

    let code: Code
    let description: String
    /// Seconds for `Retry-After`.
    var retryAfter: Int?
    /// A fresh server nonce for `DPoP-Nonce` (RFC 9449 §8).
    var dpopNonce: String?
    /// The proof algorithms a DPoP challenge names (`algs`, RFC 9449 §7.1).
    var dpopAlgorithms: String?

    init(_ code: Code, _ description: String, retryAfter: Int? = nil) {
        self.code = code
        self.description = description
        self.retryAfter = retryAfter
    }

    var entry: Entry { Self.entry(code) }

    /// The `error` value on the wire.
    var error: String { entry.error }

    // The common ones, as RFC 6749 names them.
    static func invalidRequest(_ description: String) -> IssuerError { IssuerError(.invalidRequest, description) }
    static func invalidGrant(_ description: String) -> IssuerError { IssuerError(.invalidGrant, description) }
    static func invalidScope(_ description: String) -> IssuerError { IssuerError(.invalidScope, description) }
    static func invalidTarget(_ description: String) -> IssuerError { IssuerError(.invalidTarget, description) }
    static func invalidDPoPProof(_ description: String) -> IssuerError { IssuerError(.invalidDPoPProof, description) }
    static func unauthorizedClient(_ description: String) -> IssuerError {
        IssuerError(.unauthorizedClient, description)
    }
    static let invalidClient = IssuerError(.invalidClient, "client authentication failed")
    static let unsupportedGrantType = IssuerError(.unsupportedGrantType, "the grant type is not supported")

    /// The JSON answer (RFC 6749 §5.2): never cached, with its challenge in `realm`.
    func response(realm: String) -> IssuerResponse {
        let entry = self.entry
        var headers = IssuerResponse.noStore
        switch entry.challenge {
        case .basic:
            headers[.wwwAuthenticate] = "Basic realm=" + Self.quoted(realm)
        case .bearer:
            var challenge = "Bearer realm=" + Self.quoted(realm)
            if code != .missingToken { challenge += ", error=\"\(entry.error)\"" }
            headers[.wwwAuthenticate] = challenge
        case .dpop:
            var challenge = "DPoP realm=" + Self.quoted(realm)
            if let dpopAlgorithms { challenge += ", algs=" + Self.quoted(dpopAlgorithms) }
            headers[.wwwAuthenticate] = challenge + ", error=\"\(entry.error)\""
        case nil:
            break
        }
        if let retryAfter { headers[.retryAfter] = String(max(1, retryAfter)) }
        if let dpopNonce { headers[IssuerResponse.dpopNonce] = dpopNonce }
        return .json(
            .object(["error": .string(entry.error), "error_description": .string(description)]),
            status: entry.status,
            headers: headers
        )
    }

    /// RFC 9110 quoted-string of a configuration value.
    static func quoted(_ value: String) -> String {
        "\"" + value.filter { $0 != "\"" && $0 != "\\" && !$0.isNewline } + "\""
    }
}

/// Where an authorization request's errors may go: the client's registered redirect URI, once
/// the client and the URI are known good, and only when the URI is trusted (not registered by
/// anybody, RFC 9700 §4.11.2).
struct AuthorizationTarget: Sendable {
    var redirectURI: String
    var state: String?
    var responseMode: String?
    var trusted: Bool
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

    static let dpopNonce = HTTPField.Name("DPoP-Nonce")!

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
