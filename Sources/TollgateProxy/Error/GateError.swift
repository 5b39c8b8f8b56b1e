import TollgateCore

/// Every way the proxy, the forward-auth endpoint or the admin listener refuses a request.
///
/// The `code` is stable (logs, metrics, tests) and alone decides the answer: `response(realm:)`
/// is the one place that maps a refusal to status, challenge and body (DESIGN.md's RFC 6750
/// table). The `reason` is for the log line only; nothing a client, a token or an upstream sent
/// is ever part of the answer. Equality is on the code alone.
public struct GateError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        /// No bearer token at all.
        case missingToken = "missing_token"
        /// The token was refused (see `verification`).
        case invalidToken = "invalid_token"
        /// Keys or introspection unreachable and nothing cached: fail closed.
        case verificationUnavailable = "verification_unavailable"
        /// A valid token without the route's scopes (see `scope`).
        case insufficientScope = "insufficient_scope"
        /// No route matched and the default denies.
        case noRoute = "no_route"
        case claimCondition = "claim_condition"
        /// A forward-auth call from an address that is not a trusted proxy.
        case untrustedForwarder = "untrusted_forwarder"
        /// A claim value that cannot be sent as a header (control characters).
        case unsafeClaimValue = "unsafe_claim_value"
        /// The path cannot be normalised safely (`%2F`, `..` above the root, …).
        case badPath = "bad_path"
        /// The token is sent twice, or the `Bearer` value is malformed (RFC 6750 §3.1).
        case badTokenRequest = "bad_token_request"
        /// Framing, `Host` or other request syntax that RFC 9112 says to refuse.
        case malformedRequest = "malformed_request"
        case requestTargetTooLong = "request_target_too_long"
        case headersTooLarge = "headers_too_large"
        /// Nothing is served here (no upstream configured).
        case notFound = "not_found"
        case upstreamUnreachable = "upstream_unreachable"
        case upstreamClosed = "upstream_closed"
        /// The upstream's answer cannot be relayed (invalid header, an upgrade not asked for).
        case upstreamInvalidResponse = "upstream_invalid_response"
        case upstreamTimeout = "upstream_timeout"
        /// The admin listener answers only GET and HEAD.
        case methodNotAllowed = "method_not_allowed"
        /// A body larger than a local endpoint, or an MCP route, takes.
        case payloadTooLarge = "payload_too_large"
        /// An MCP route's body is not one JSON-RPC request, notification or response (invalid
        /// JSON, a batch, a duplicated member, a `tools/call` without its name…).
        case mcpInvalidRequest = "mcp_invalid_request"
        /// `Mcp-Method` or `Mcp-Name` says something else than the body.
        case mcpHeaderMismatch = "mcp_header_mismatch"
        /// An MCP rule refuses the method, tool, prompt or resource to everyone (`deny`) or a
        /// claim condition of one failed.
        case mcpDenied = "mcp_denied"
        /// A `tools/list` answer could not be read to be filtered: nothing of it is relayed.
        case mcpInvalidAnswer = "mcp_invalid_answer"
        /// The DPoP proof is missing, malformed, replayed, for another request or another key
        /// (RFC 9449 §7.1).
        case invalidDPoPProof = "invalid_dpop_proof"
        /// The proof lacks a fresh server nonce: one goes with the answer (RFC 9449 §9).
        case useDPoPNonce = "use_dpop_nonce"
        /// The token's authentication is not the kind or not as recent as the route needs
        /// (RFC 9470): the client signs the person in again.
        case insufficientUserAuthentication = "insufficient_user_authentication"
        /// A token bound to a client certificate (RFC 8705) without that certificate.
        case certificateBinding = "certificate_binding"
        /// A route that takes only certificate-bound tokens, and this one is not (RFC 8705).
        case certificateBindingRequired = "certificate_binding_required"
        /// A route that requires a client certificate, and the request presented none.
        case clientCertificateRequired = "client_certificate_required"
        /// A DPoP-bound token sent as a bearer token, or a bearer token where DPoP is required,
        /// or a token that is not bound sent with the DPoP scheme.
        case dpopBinding = "dpop_binding"
    }

    public let code: Code
    /// For the log line only (escaped when written).
    public let reason: String
    /// Why the token was refused, for `invalidToken` and `verificationUnavailable`.
    public let verification: VerificationFailure.Code?
    /// The scopes the route needs, for `insufficientScope` (from the configuration).
    public let scope: String?
    /// On a route that is a protected resource: the metadata URL and the route's scopes, added
    /// to the challenge (RFC 9728 §5.1). Both come from the configuration, never the request.
    public var resourceChallenge: ResourceChallenge?
    /// On an MCP route: the answer's body is a JSON-RPC error for the request's `id` instead.
    public var jsonRPC: JSONRPCError?
    /// What a step-up challenge names (RFC 9470 §3), from the route's configuration.
    public var stepUp: StepUp?

    public struct StepUp: Sendable, Equatable {
        public let acrValues: String?
        public let maxAge: Int?

        public init(acrValues: String?, maxAge: Int?) {
            self.acrValues = acrValues
            self.maxAge = maxAge
        }

        /// `, acr_values="…", max_age="…"`, as much of it as there is (RFC 9470 §3).
        var challengeParameters: String {
            var text = ""
            if let acrValues { text += ", acr_values=" + HTTPQuoting.quotedString(acrValues) }
            if let maxAge { text += ", max_age=\"" + String(maxAge) + "\"" }
            return text
        }
    }

    /// A DPoP challenge beside the Bearer one (RFC 9449 §7.1): the algorithms, and the nonce the
    /// next proof must carry.
    public var dpopChallenge: DPoPChallenge?

    public struct DPoPChallenge: Sendable, Equatable {
        public let algorithms: String
        public let nonce: String?

        public init(algorithms: String, nonce: String?) {
            self.algorithms = algorithms
            self.nonce = nonce
        }
    }

    /// A JSON-RPC 2.0 error object (§5.1); the message is Tollgate's, never the client's.
    public struct JSONRPCError: Sendable, Equatable {
        /// The request's `id` (a string or a number, re-encoded), or `nil` for `null`.
        public let id: JSONValue?
        public let code: Code

        public enum Code: Int, Sendable {
            case parseError = -32700
            case invalidRequest = -32600
            case invalidParams = -32602
            case internalError = -32603
            /// MCP 2026-07-28: `Mcp-Method`, `Mcp-Name` or the protocol version header disagree
            /// with the body (the SDK servers' code).
            case headerMismatch = -32020

            var message: String {
                switch self {
                case .parseError: "Parse error"
                case .invalidRequest: "Invalid Request"
                case .invalidParams: "Invalid params"
                case .internalError: "Internal error"
                case .headerMismatch: "Header mismatch"
                }
            }
        }

        public init(id: JSONValue?, code: Code) {
            self.id = id
            self.code = code
        }

        public var body: String {
            var out = "{\"jsonrpc\":\"2.0\",\"id\":"
            switch id {
            case .string(let text)?: out += JSONValue.quoted(text)
            case .number(let number)?: out += JSONValue.format(number: number)
            default: out += "null"
            }
            out +=
                ",\"error\":{\"code\":" + String(code.rawValue) + ",\"message\":" + JSONValue.quoted(code.message)
                + "}}"
            return out
        }
    }

    public struct ResourceChallenge: Sendable, Equatable {
        public let metadataURL: String
        /// Every scope the route names, space-separated.
        public let scope: String?

        public init(metadataURL: String, scope: String?) {
            self.metadataURL = metadataURL
            self.scope = scope
        }
    }

    public init(_ code: Code, _ reason: String = "", scope: String? = nil) {
        self.code = code
        self.reason = reason
        self.verification = nil
        self.scope = scope
    }

    public init(_ failure: VerificationFailure) {
        code = failure.isUnavailable ? .verificationUnavailable : .invalidToken
        reason = failure.reason
        verification = failure.code
        scope = nil
    }

    public var description: String { "\(code.rawValue): \(reason)" }

    /// How the request is counted (metrics and the log line's `outcome`).
    public var outcome: RequestOutcome {
        switch code {
        case .missingToken: .noToken
        case .invalidToken: .invalidToken
        case .verificationUnavailable: .unavailable
        case .insufficientScope: .insufficientScope
        case .noRoute, .claimCondition, .untrustedForwarder, .unsafeClaimValue, .mcpDenied: .forbidden
        case .badPath, .badTokenRequest, .clientCertificateRequired, .malformedRequest, .requestTargetTooLong,
            .headersTooLarge,
            .methodNotAllowed, .payloadTooLarge, .mcpInvalidRequest, .mcpHeaderMismatch:
            .badRequest
        case .notFound: .notFound
        case .upstreamUnreachable, .upstreamClosed, .upstreamInvalidResponse, .mcpInvalidAnswer: .upstreamError
        case .invalidDPoPProof, .useDPoPNonce, .dpopBinding, .insufficientUserAuthentication, .certificateBinding,
            .certificateBindingRequired:
            .invalidToken
        case .upstreamTimeout: .upstreamTimeout
        }
    }

    /// The log line's `reason`: the verification failure's code when there is one, else this code.
    public var logCode: String { verification?.rawValue ?? code.rawValue }

    /// The answer: status, headers and a JSON body, from the code alone (a JSON-RPC error body
    /// on an MCP route).
    public func response(realm: String) -> VerdictResponse {
        var answer = plainResponse(realm: realm)
        if let dpopChallenge, answer.status == 401 {
            var challenge = "DPoP algs=" + HTTPQuoting.quotedString(dpopChallenge.algorithms)
            switch code {
            case .invalidDPoPProof:
                challenge += ", error=\"invalid_dpop_proof\", error_description=\"the DPoP proof is not valid\""
            case .useDPoPNonce:
                challenge += ", error=\"use_dpop_nonce\", error_description=\"a server nonce is required\""
            case .dpopBinding:
                challenge += ", error=\"invalid_token\", error_description=\"the token's binding is not met\""
            case .insufficientUserAuthentication:
                challenge += ", error=\"insufficient_user_authentication\"" + (stepUp?.challengeParameters ?? "")
            default:
                break
            }
            var headers = answer.headers + [("WWW-Authenticate", challenge)]
            if let nonce = dpopChallenge.nonce { headers.append(("DPoP-Nonce", nonce)) }
            answer = VerdictResponse(status: answer.status, headers: headers, body: answer.body)
        }
        guard let jsonRPC else { return answer }
        return VerdictResponse(status: answer.status, headers: answer.headers, body: jsonRPC.body)
    }

    private func plainResponse(realm: String) -> VerdictResponse {
        var challenge = "Bearer realm=" + HTTPQuoting.quotedString(realm)
        // A protected resource's challenges name its metadata; a 401 also names the scopes to
        // ask for, and a 403 names them all in place of the one that was missing.
        var scope = scope
        if let resourceChallenge {
            challenge += ", resource_metadata=" + HTTPQuoting.quotedString(resourceChallenge.metadataURL)
            if let all = resourceChallenge.scope {
                if code == .insufficientScope {
                    scope = all
                } else if code == .missingToken || code == .invalidToken {
                    challenge += ", scope=" + HTTPQuoting.quotedString(all)
                }
            }
        }
        switch code {
        case .missingToken:
            return VerdictResponse(
                status: 401,
                headers: [("WWW-Authenticate", challenge)],
                error: "invalid_request",
                description: "a bearer token is required"
            )
        case .invalidToken:
            let description = (verification ?? .malformedToken).publicDescription
            return VerdictResponse(
                status: 401,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge + ", error=\"invalid_token\", error_description="
                            + HTTPQuoting.quotedString(description)
                    )
                ],
                error: "invalid_token",
                description: description
            )
        case .verificationUnavailable:
            return VerdictResponse(
                status: 503,
                headers: [("Retry-After", "5")],
                error: "temporarily_unavailable",
                description: "token verification is unavailable"
            )
        case .insufficientScope:
            return VerdictResponse(
                status: 403,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge + ", error=\"insufficient_scope\", scope=" + HTTPQuoting.quotedString(scope ?? "")
                    )
                ],
                error: "insufficient_scope",
                description: "the token lacks a required scope"
            )
        case .noRoute, .claimCondition, .untrustedForwarder, .unsafeClaimValue, .mcpDenied:
            return VerdictResponse(
                status: 403,
                error: "forbidden",
                description: "access to this resource is not allowed"
            )
        case .badPath:
            return VerdictResponse(
                status: 400,
                error: "invalid_request",
                description: "the request path is not allowed"
            )
        case .badTokenRequest:
            let description = "the bearer token is sent more than once or is malformed"
            return VerdictResponse(
                status: 400,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge + ", error=\"invalid_request\", error_description="
                            + HTTPQuoting.quotedString(description)
                    )
                ],
                error: "invalid_request",
                description: description
            )
        case .malformedRequest:
            return VerdictResponse(status: 400, error: "invalid_request", description: "the request is malformed")
        case .mcpInvalidRequest:
            return VerdictResponse(
                status: 400,
                error: "invalid_request",
                description: "the body is not one valid JSON-RPC message"
            )
        case .mcpHeaderMismatch:
            return VerdictResponse(
                status: 400,
                error: "invalid_request",
                description: "Mcp-Method or Mcp-Name does not match the body"
            )
        case .insufficientUserAuthentication:
            let header =
                challenge
                + ", error=\"insufficient_user_authentication\", error_description=\"a different or more recent authentication is required\""
                + (stepUp?.challengeParameters ?? "")
            return VerdictResponse(
                status: 401,
                headers: [("WWW-Authenticate", header)],
                error: "insufficient_user_authentication",
                description: "a different or more recent authentication is required"
            )
        case .invalidDPoPProof:
            return VerdictResponse(
                status: 401,
                headers: [("WWW-Authenticate", challenge)],
                error: "invalid_dpop_proof",
                description: "the DPoP proof is not valid"
            )
        case .useDPoPNonce:
            return VerdictResponse(
                status: 401,
                headers: [("WWW-Authenticate", challenge)],
                error: "use_dpop_nonce",
                description: "a server nonce is required in the DPoP proof"
            )
        case .certificateBinding:
            return VerdictResponse(
                status: 401,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge
                            + ", error=\"invalid_token\", error_description=\"the token is bound to another client certificate\""
                    )
                ],
                error: "invalid_token",
                description: "the token is bound to another client certificate"
            )
        case .certificateBindingRequired:
            return VerdictResponse(
                status: 401,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge
                            + ", error=\"invalid_token\", error_description=\"this route takes only certificate-bound tokens\""
                    )
                ],
                error: "invalid_token",
                description: "this route takes only certificate-bound tokens"
            )
        case .clientCertificateRequired:
            return VerdictResponse(
                status: 400,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge
                            + ", error=\"invalid_request\", error_description=\"this route requires a client certificate\""
                    )
                ],
                error: "invalid_request",
                description: "this route requires a client certificate"
            )
        case .dpopBinding:
            return VerdictResponse(
                status: 401,
                headers: [
                    (
                        "WWW-Authenticate",
                        challenge + ", error=\"invalid_token\", error_description=\"the token's binding is not met\""
                    )
                ],
                error: "invalid_token",
                description: "the token's binding is not met"
            )
        case .mcpInvalidAnswer:
            return VerdictResponse(
                status: 502,
                error: "bad_gateway",
                description: "the upstream's tool list could not be read"
            )
        case .requestTargetTooLong:
            return VerdictResponse(status: 414, error: "uri_too_long", description: "the request target is too long")
        case .headersTooLarge:
            return VerdictResponse(
                status: 431,
                error: "headers_too_large",
                description: "the request headers are too large"
            )
        case .notFound:
            return VerdictResponse(status: 404, error: "not_found", description: "nothing is served here")
        case .upstreamUnreachable:
            return VerdictResponse(status: 502, error: "bad_gateway", description: "the upstream is unreachable")
        case .upstreamClosed:
            return VerdictResponse(
                status: 502,
                error: "bad_gateway",
                description: "the upstream closed the connection"
            )
        case .upstreamInvalidResponse:
            return VerdictResponse(status: 502, error: "bad_gateway", description: "the upstream's answer is invalid")
        case .upstreamTimeout:
            return VerdictResponse(
                status: 504,
                error: "upstream_timeout",
                description: "the upstream did not answer in time"
            )
        case .payloadTooLarge:
            return VerdictResponse(
                status: 413,
                error: "payload_too_large",
                description: "the request body is too large"
            )
        case .methodNotAllowed:
            return VerdictResponse(
                status: 405,
                headers: [("Allow", "GET, HEAD")],
                error: "method_not_allowed",
                description: "only GET and HEAD are answered here"
            )
        }
    }
}

extension GateError: Equatable {
    public static func == (lhs: GateError, rhs: GateError) -> Bool { lhs.code == rhs.code }
}
