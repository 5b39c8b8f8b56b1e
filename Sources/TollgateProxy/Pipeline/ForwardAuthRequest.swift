import NIOHTTP1
import TollgateCore

/// Reads a header by name: a request head as received, or NIO's collection.
protocol FieldLookup {
    /// The first value named `name` (lower-case), compared case-insensitively.
    func first(name: String) -> String?
}

extension HTTPHeaders: FieldLookup {}
extension RequestHead: FieldLookup {}

/// A forward-auth check (nginx `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`): which
/// request the gate is asked about, and the answer to an allowed one. The original request
/// comes in `X-Forwarded-Method` and `X-Forwarded-Uri` (or nginx's `X-Original-URI`), or, for
/// Envoy, as the path after the configured prefix.
struct ForwardAuthRequest: Equatable {
    /// The method and origin-form target to evaluate in place of the check's own.
    var method: String
    var target: String

    /// The request a check at `target` asks about, or `nil` when `target` is not the configured
    /// forward-auth path (nor under it).
    static func parse(
        method: String,
        target: String,
        headers: some FieldLookup,
        configuredPath: String?
    ) -> ForwardAuthRequest? {
        guard let configuredPath else { return nil }
        var envoyTarget: String?
        if RequestPipeline.pathOf(target) == configuredPath {
            envoyTarget = nil
        } else if target.hasPrefix(configuredPath + "/") {
            // Envoy ext_authz: the original path follows the configured prefix.
            envoyTarget = String(target.dropFirst(configuredPath.utf8.count))
        } else {
            return nil
        }
        let forwardedMethod = headers.first(name: "x-forwarded-method") ?? method
        let forwardedTarget =
            headers.first(name: "x-forwarded-uri") ?? headers.first(name: "x-original-uri") ?? envoyTarget ?? target
        return ForwardAuthRequest(method: forwardedMethod, target: forwardedTarget)
    }

    /// The answer to an allowed check: 200 with the claim headers the configuration forwards.
    /// - Throws: `GateError(.unsafeClaimValue)` when a claim cannot be written as a header.
    static func allowedAnswer(
        for token: VerifiedToken?,
        mapping: ClaimHeaderMapping
    ) throws(GateError)
        -> VerdictResponse
    {
        guard let token else { return VerdictResponse(status: 200, headers: []) }
        switch mapping.headers(for: token) {
        case .success(let claimHeaders):
            return VerdictResponse(status: 200, headers: claimHeaders.map { ($0.name, $0.value) })
        case .failure: throw GateError(.unsafeClaimValue)
        }
    }
}
