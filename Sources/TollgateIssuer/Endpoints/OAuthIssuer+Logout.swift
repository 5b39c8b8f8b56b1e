import HTTPTypes
import Logging
import TollgateCore

extension OAuthIssuer {
    /// OpenID Connect RP-Initiated Logout 1.0. The `id_token_hint` must be an ID token this
    /// issuer signed (it may have expired); it names the client when `client_id` is absent, and
    /// must agree with it when both are given.
    ///
    /// The session ends without asking only when the hint names the signed-in person; anything
    /// else (no hint, another person's) shows a confirmation page whose form is bound to the
    /// session, so a cross-site link or image cannot sign anyone out (logout CSRF). The browser
    /// is sent back only to a `post_logout_redirect_uri` registered for the hinted client, never
    /// on a bare `client_id` (an open redirect).
    func endSession(_ request: HTTPRequest, parameters: [String: String]) async throws -> IssuerResponse {
        var hint: (client: String, subject: String)?
        if let token = parameters["id_token_hint"] {
            guard let verified = try await verifiedHint(token) else {
                throw IssuerError(
                    .badSignOutRequest,
                    "The sign-out request carries an ID token this issuer did not sign."
                )
            }
            hint = verified
        }
        if let named = parameters["client_id"], let hint, named != hint.client {
            throw IssuerError(.badSignOutRequest, "The ID token was issued to another application.")
        }
        let hintedClient = try await hint.asyncMap { try await store.client(id: $0.client) } ?? nil
        // Redirected to only with a hint; without one, a URI registered for the named (configured)
        // client is offered as a link once signed out.
        var destination: String?
        var returnLink: String?
        if let uri = parameters["post_logout_redirect_uri"] {
            if let hintedClient {
                // A client anybody could register (and so hint with an ID token of its own)
                // is not trusted with an automatic redirect.
                guard hintedClient.postLogoutRedirectURIs.contains(uri), hintedClient.registeredDynamically != true
                else {
                    throw IssuerError(
                        .badSignOutRequest,
                        "The address to return to is not registered for this application."
                    )
                }
                destination = uri
            } else if let named = parameters["client_id"], let client = try await store.client(id: named),
                client.postLogoutRedirectURIs.contains(uri), client.registeredDynamically != true
            {
                returnLink = uri
            } else {
                throw IssuerError(
                    .badSignOutRequest,
                    "The address to return to is not registered for this application."
                )
            }
        }
        let cookieValue = Self.cookie(named: Self.sessionCookie, in: request)
        var session: LoginSession?
        if let cookieValue, let found = try await store.session(digest: RandomToken.digest(cookieValue)),
            found.expiresAt > now()
        {
            session = found
        }
        if let session, let cookieValue {
            let named =
                hint.map { hint in
                    hintedClient.map { subject(for: session.username, client: $0) == hint.subject } ?? false
                } ?? false
            let confirmed =
                request.method == .post && parameters["confirm"] == "yes"
                && parameters["logout_csrf"].map {
                    StoredSecret.keeping(Self.logoutFormToken(cookieValue)).matches($0)
                } ?? false
            guard named || confirmed else {
                var carried: [(String, String)] = []
                for name in ["id_token_hint", "client_id", "post_logout_redirect_uri", "state"] {
                    if let value = parameters[name] { carried.append((name, value)) }
                }
                return logoutConfirmationPage(csrf: Self.logoutFormToken(cookieValue), carried: carried)
            }
            try await store.deleteSession(digest: RandomToken.digest(cookieValue))
            logger.info("signed out", metadata: ["client": "\(hint?.client ?? "-")"])
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
            response = noticePage("Signed out", "You are signed out.", link: returnLink)
        }
        if cookieValue != nil { response.head.headerFields.append(HTTPField(name: .setCookie, value: expired)) }
        return response
    }

    /// The confirmation form's anti-forgery token for the session whose cookie is `value`.
    static func logoutFormToken(_ value: String) -> String {
        RandomToken.digest("tollgate sign-out\u{0}" + value)
    }

    /// The `aud` and `sub` of an ID token (`typ` absent or `JWT`) whose signature verifies — with
    /// a published key, or for HS256/384/512 with the secret of the client it names, when that
    /// client's ID tokens are signed so — and whose `iss` is this issuer; `nil` otherwise.
    /// Expiry is not checked: a hint may be old.
    func verifiedHint(_ token: String) async throws -> (client: String, subject: String)? {
        guard case .success(let jws) = CompactJWS.parse(token, maximumSize: 16 * 1024),
            // An ID token, not one of the issuer's JWT access tokens (`typ: at+jwt`).
            jws.type == nil || jws.type?.lowercased() == "jwt",
            let claims = try? JSONParser.parse(jws.payload), claims["iss"]?.stringValue == options.issuer,
            let audience = claims["aud"]?.stringValue ?? claims["aud"]?.arrayValue?.first?.stringValue,
            let subject = claims["sub"]?.stringValue
        else { return nil }
        var keySet = keys.snapshot.keySet
        var allowed = Set(JWSAlgorithm.allCases.filter { !$0.isSymmetric })
        if let symmetric = JWSAlgorithm(rawValue: jws.algorithmName), symmetric.isSymmetric {
            // Only the algorithm the named client registered, with its own secret.
            // Not for a client anyone can register: it could mint a hint for any `sub` and sign
            // people out without asking.
            guard let client = try await store.client(id: audience), let secret = client.secret,
                secret.form == .plain, client.idTokenSignedResponseAlg == symmetric.rawValue,
                client.registeredDynamically != true
            else { return nil }
            keySet = JSONWebKeySet(keys: [VerificationKey.hmac(secret: secret.value)])
            allowed = [symmetric]
        }
        guard case .success = JWSVerifier(allowedAlgorithms: allowed).verify(jws, keySet: keySet) else { return nil }
        return (audience, subject)
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
