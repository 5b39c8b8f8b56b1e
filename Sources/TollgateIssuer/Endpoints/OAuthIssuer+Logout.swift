import HTTPTypes
import Logging
import TollgateCore

extension OAuthIssuer {
    /// OpenID Connect RP-Initiated Logout 1.0: ends the browser's session, then returns to a
    /// registered `post_logout_redirect_uri` (with `state`) or shows a signed-out page. The
    /// `id_token_hint` must be an ID token this issuer signed (it may have expired); it names
    /// the client when `client_id` is absent, and must agree with it when both are given.
    func endSession(_ request: HTTPRequest, parameters: [String: String]) async throws -> IssuerResponse {
        var hintedClient: String?
        if let hint = parameters["id_token_hint"] {
            guard let audience = verifiedAudience(ofIDToken: hint) else {
                return errorPage(
                    "The sign-out request carries an ID token this issuer did not sign.",
                    status: .badRequest
                )
            }
            hintedClient = audience
        }
        if let named = parameters["client_id"], let hintedClient, named != hintedClient {
            return errorPage("The ID token was issued to another application.", status: .badRequest)
        }
        let clientID = parameters["client_id"] ?? hintedClient
        var destination: String?
        if let uri = parameters["post_logout_redirect_uri"] {
            guard let clientID, let client = try await store.client(id: clientID),
                client.postLogoutRedirectURIs.contains(uri)
            else {
                return errorPage(
                    "The address to return to is not registered for this application.",
                    status: .badRequest
                )
            }
            destination = uri
        }
        if let value = Self.cookie(named: Self.sessionCookie, in: request) {
            try await store.deleteSession(digest: RandomToken.digest(value))
            logger.info("signed out", metadata: ["client": "\(clientID ?? "-")"])
        }
        let expired =
            "\(Self.sessionCookie)=; Path=\(basePath.isEmpty ? "/" : basePath); HttpOnly; SameSite=Lax; Max-Age=0"
            + (options.issuer.hasPrefix("https://") ? "; Secure" : "")
        var response: IssuerResponse
        if let destination {
            var pairs: [(String, String)] = []
            if let state = parameters["state"] { pairs.append(("state", state)) }
            var fields = HTTPFields()
            fields[.location] =
                pairs.isEmpty
                ? destination : destination + (destination.contains("?") ? "&" : "?") + FormURLEncoding.encode(pairs)
            fields[.cacheControl] = "no-store"
            response = .empty(status: .found, headers: fields)
        } else {
            response = errorPage("You are signed out.", status: .ok)
        }
        response.head.headerFields.append(HTTPField(name: .setCookie, value: expired))
        return response
    }

    /// The `aud` of an ID token whose signature verifies with a published key and whose `iss`
    /// is this issuer; `nil` otherwise. Expiry is not checked: a hint may be old.
    func verifiedAudience(ofIDToken token: String) -> String? {
        guard case .success(let jws) = CompactJWS.parse(token, maximumSize: 16 * 1024),
            case .success = JWSVerifier(allowedAlgorithms: [.rs256, .es256]).verify(jws, keySet: keys.snapshot.keySet),
            let claims = try? JSONParser.parse(jws.payload), claims["iss"]?.stringValue == options.issuer
        else { return nil }
        return claims["aud"]?.stringValue ?? claims["aud"]?.arrayValue?.first?.stringValue
    }
}
