import Crypto
import HTTPTypes
import Logging
import TollgateCore

extension OAuthIssuer {
    static let sessionCookie = "tollgate_session"
    /// The pre-session cookie forms are bound to: on https with the `__Host-` prefix (RFC 6265bis
    /// §4.1.3.2: `Secure`, `Path=/`, no `Domain`), so a sibling subdomain cannot plant one it
    /// knows and defeat the binding.
    var browserCookie: String { options.issuer.hasPrefix("https://") ? "__Host-tollgate_browser" : "tollgate_browser" }
    /// How long a sign-in lasts, and how long a login or consent form stays valid.
    static let sessionTTL = 8 * 3600
    static let formTTL = 600

    // MARK: - The authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2)

    func authorize(_ request: HTTPRequest, parameters: [String: String]) async throws -> IssuerResponse {
        // Until the client and its redirect URI are known good, errors are a page, never a
        // redirect (RFC 6749 §4.1.2.1).
        guard let clientID = parameters["client_id"], let client = try await client(id: clientID), !client.revoked
        else { throw IssuerError(.unknownClient, "The application is not known.") }
        let redirectURI: String
        if let given = parameters["redirect_uri"] {
            guard client.redirectURIs.contains(given) else {
                throw IssuerError(.unregisteredRedirect, "The redirect address is not registered for this application.")
            }
            redirectURI = given
        } else if client.redirectURIs.count == 1 {
            redirectURI = client.redirectURIs[0]
        } else {
            throw IssuerError(.unregisteredRedirect, "The request names no redirect address.")
        }
        let state = parameters["state"]
        let responseMode = parameters["response_mode"]
        let usableMode = responseMode == nil || responseMode == "query" || responseMode == "form_post"
        // RFC 9700 §4.11.2: a redirect URI anybody could register is not trusted with an
        // automatic redirect; the person sees the error instead.
        let target = AuthorizationTarget(
            redirectURI: redirectURI,
            state: state,
            responseMode: usableMode ? responseMode : nil,
            trusted: client.registeredDynamically != true
        )
        func fail(_ code: IssuerError.Code, _ description: String) -> IssuerResponse {
            respond(IssuerError(code, description), target: target)
        }
        guard usableMode else {
            return fail(.invalidRequest, "response_mode must be query or form_post")
        }
        // OpenID Connect Core §6: request objects are not supported, and saying so beats
        // silently ignoring what they carry (a prompt=login among them).
        if parameters["request"] != nil {
            return fail(.requestNotSupported, "request objects are not supported")
        }
        if parameters["request_uri"] != nil {
            return fail(.requestURINotSupported, "request_uri is not supported")
        }
        guard parameters["response_type"] == "code" else {
            return fail(.unsupportedResponseType, "only response_type=code is supported")
        }
        guard options.grantTypes.contains(.authorizationCode), client.grantTypes.contains(.authorizationCode) else {
            return fail(.unauthorizedClient, "the client may not use the authorization code flow")
        }
        let challenge = parameters["code_challenge"]
        if let method = parameters["code_challenge_method"], method != "S256" {
            return fail(.invalidRequest, "only the S256 code challenge method is supported")
        }
        if challenge != nil && parameters["code_challenge_method"] == nil {
            // RFC 7636 defaults to plain, which is refused.
            return fail(.invalidRequest, "the code challenge method must be S256")
        }
        if let challenge, !GrantRules.isPKCEValue(challenge) {
            return fail(.invalidRequest, "the code challenge is malformed")
        }
        if challenge == nil && options.requiresPKCE(client) {
            return fail(.invalidRequest, "PKCE is required: send code_challenge with code_challenge_method=S256")
        }
        let requested = (parameters["scope"] ?? "").split(separator: " ").map(String.init)
        let scopes: [String]
        do {
            scopes = try grantedScopes(
                requested: requested.isEmpty ? nil : requested,
                client: client,
                userScopesAllowed: true
            )
        } catch {
            return fail(.invalidScope, error.description)
        }
        let prompt = Set((parameters["prompt"] ?? "").split(separator: " ").map(String.init))
        var maxAge: Int?
        if let text = parameters["max_age"] {
            guard let value = Int(text), value >= 0 else { return fail(.invalidRequest, "max_age is not a number") }
            maxAge = value
        }
        // RFC 9470 §4: a client sent back by a resource's step-up challenge names the `acr` values
        // it needs. Tokens carry what this issuer's sign-in is; when it is none of them, saying so
        // beats a token the resource would refuse again.
        if let values = parameters["acr_values"] {
            let wanted = values.split(separator: " ").map(String.init)
            guard wanted.isEmpty || wanted.contains(options.acr) else {
                return fail(
                    .unmetAuthenticationRequirements,
                    "this issuer signs people in with \(options.acr) only, not one of acr_values"
                )
            }
        }
        do {
            _ = try GrantRules.audience(forResource: parameters["resource"], scopes: scopes, options: options)
        } catch {
            return fail(error.code, error.description)
        }
        var pending = PendingAuthorization(
            id: RandomToken.make(),
            csrfToken: RandomToken.make(),
            clientID: client.id,
            redirectURI: redirectURI,
            scopes: scopes,
            state: state,
            nonce: parameters["nonce"],
            codeChallenge: challenge,
            resource: parameters["resource"],
            maxAge: maxAge,
            prompt: prompt,
            loginHint: parameters["login_hint"],
            expiresAt: now() + Self.formTTL,
            responseMode: responseMode == "form_post" ? "form_post" : nil
        )
        if let jkt = parameters["dpop_jkt"] {
            guard jkt.utf8.count == 43, Base64URL.decode(jkt)?.count == 32 else {
                return fail(.invalidRequest, "dpop_jkt is not a JWK thumbprint")
            }
            pending.dpopJKT = jkt
        }
        let binding = browserBinding(request)
        pending.browser = RandomToken.digest(binding.value)
        let session = try await currentSession(request)
        let fresh = session.map { session in maxAge.map { now() - session.authenticatedAt <= $0 } ?? true } ?? false
        if let session, fresh, !prompt.contains("login") {
            pending.username = session.username
            pending.authenticatedAt = session.authenticatedAt
        } else if prompt.contains("none") {
            return fail(.loginRequired, "the user is not signed in")
        }
        try await store.savePendingAuthorization(pending)
        var response =
            pending.username == nil
            ? loginPage(pending, message: nil)
            : try await continueAuthorization(pending, client: client, cookie: nil, request: request)
        if let cookie = binding.setCookie {
            response.head.headerFields.append(HTTPField(name: .setCookie, value: cookie))
        }
        return response
    }

    /// After sign-in: consent when needed, then the code.
    func continueAuthorization(
        _ pending: PendingAuthorization,
        client: RegisteredClient,
        cookie: String?,
        request: HTTPRequest
    ) async throws
        -> IssuerResponse
    {
        guard let username = pending.username else { return loginPage(pending, message: nil) }
        let consented = try await store.consentedScopes(username: username, clientID: client.id)
        let needsConsent =
            pending.prompt.contains("consent") || (!client.skipConsent && !Set(pending.scopes).isSubset(of: consented))
        if needsConsent {
            if pending.prompt.contains("none") {
                try await store.deletePendingAuthorization(id: pending.id)
                return respond(
                    IssuerError(.consentRequired, "the user has not consented"),
                    target: AuthorizationTarget(
                        redirectURI: pending.redirectURI,
                        state: pending.state,
                        responseMode: pending.responseMode,
                        trusted: client.registeredDynamically != true
                    )
                )
            }
            if let page = options.consentPage {
                return try await consentPageRedirect(page, pending: pending, cookie: cookie, request: request)
            }
            return consentPage(pending, client: client, cookie: cookie)
        }
        return try await issueCode(pending, cookie: cookie)
    }

    func issueCode(_ pending: PendingAuthorization, cookie: String?) async throws -> IssuerResponse {
        guard let code = try await saveCode(for: pending) else {
            throw IssuerError(.formExpired, "The sign-in did not complete.")
        }
        var response = authorizationResponse(
            to: pending.redirectURI,
            mode: pending.responseMode,
            ["code": code, "state": pending.state]
        )
        if let cookie { response.head.headerFields.append(HTTPField(name: .setCookie, value: cookie)) }
        return response
    }

    /// Stores the code `pending` earned, with the grant it starts, and ends `pending`; `nil`
    /// when nobody signed in for it.
    func saveCode(for pending: PendingAuthorization) async throws -> String? {
        guard let username = pending.username, let authenticatedAt = pending.authenticatedAt else { return nil }
        let code = RandomToken.make()
        var record = AuthorizationCodeRecord(
            digest: RandomToken.digest(code),
            clientID: pending.clientID,
            redirectURI: pending.redirectURI,
            username: username,
            scopes: pending.scopes,
            nonce: pending.nonce,
            codeChallenge: pending.codeChallenge,
            resource: pending.resource,
            authenticatedAt: authenticatedAt,
            expiresAt: now() + options.codeTTL,
            redeemed: false,
            familyID: RandomToken.make(bytes: 16)
        )
        record.value = keptValue(code)
        record.dpopJKT = pending.dpopJKT
        try await store.saveCode(record)
        try await store.deletePendingAuthorization(id: pending.id)
        return code
    }

    // MARK: - The forms

    func login(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        guard var pending = try await validPending(form, request: request) else {
            throw IssuerError(.formExpired, "This sign-in form has expired or was not sent by this site. Start again.")
        }
        guard let client = try await client(id: pending.clientID) else {
            throw IssuerError(.unknownClient, "The application is not known.")
        }
        let username = form["username"] ?? ""
        if let wait = try await reserveSignIn(username: username) {
            return tooManyAttempts(loginPage(pending, message: Self.waitMessage), retryAfter: wait)
        }
        guard let user = try await verifiedUser(username: username, password: form["password"] ?? "") else {
            logger.info("sign-in refused", metadata: ["client": "\(client.id)"])
            return loginPage(pending, message: "The user name or password is not right.")
        }
        try await signInSucceeded(username: user.username)
        let cookieValue = RandomToken.make()
        let authenticatedAt = now()
        try await store.saveSession(
            LoginSession(
                digest: RandomToken.digest(cookieValue),
                username: user.username,
                authenticatedAt: authenticatedAt,
                expiresAt: authenticatedAt + Self.sessionTTL
            )
        )
        pending.username = user.username
        pending.authenticatedAt = authenticatedAt
        pending.csrfToken = RandomToken.make()
        pending.prompt.remove("login")
        try await store.savePendingAuthorization(pending)
        return try await continueAuthorization(
            pending,
            client: client,
            cookie: sessionCookie(cookieValue),
            request: request
        )
    }

    func consent(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        guard var pending = try await validPending(form, request: request), let username = pending.username,
            let session = try await currentSession(request), session.username == username
        else {
            throw IssuerError(.formExpired, "This consent form has expired or was not sent by this site. Start again.")
        }
        if let userCode = pending.deviceUserCode {
            let allow = form["decision"] == "allow"
            guard try await decideDevice(pending, userCode: userCode, allow: allow) else {
                throw IssuerError(.deviceRequestSettled, "The device's request has expired or was already answered.")
            }
            return allow
                ? noticePage("Device connected", "You can go back to your device.")
                : noticePage("Request denied", "The device was not given access.")
        }
        guard form["decision"] == "allow" else {
            try await store.deletePendingAuthorization(id: pending.id)
            return authorizationResponse(
                to: pending.redirectURI,
                mode: pending.responseMode,
                ["error": "access_denied", "error_description": "the user denied the request", "state": pending.state]
            )
        }
        try await store.saveConsent(username: username, clientID: pending.clientID, scopes: Set(pending.scopes))
        pending.prompt.remove("consent")
        return try await issueCode(pending, cookie: nil)
    }

    /// The pending request a form names, when its anti-forgery token matches and the form comes
    /// from the browser that loaded it (its pre-session cookie): a form loaded in one browser
    /// and posted from another is refused (login CSRF).
    func validPending(_ form: [String: String], request: HTTPRequest) async throws -> PendingAuthorization? {
        guard let id = form["request"], let token = form["csrf"],
            let pending = try await store.pendingAuthorization(id: id), pending.expiresAt > now(),
            StoredSecret.keeping(pending.csrfToken).matches(token),
            let bound = pending.browser, let cookie = Self.cookie(named: browserCookie, in: request),
            StoredSecret.keeping(bound).matches(RandomToken.digest(cookie))
        else { return nil }
        return pending
    }

    /// The browser's pre-session cookie (random, `HttpOnly`, `SameSite=Lax`), and the
    /// `Set-Cookie` to send when the request had none.
    func browserBinding(_ request: HTTPRequest) -> (value: String, setCookie: String?) {
        if let value = Self.cookie(named: browserCookie, in: request), RandomToken.isWellFormed(value) {
            return (value, nil)
        }
        let value = RandomToken.make()
        var cookie = "\(browserCookie)=\(value); Path=\(options.issuer.hasPrefix("https://") ? "/" : cookiePath)"
        cookie += "; HttpOnly; SameSite=Lax"
        if options.issuer.hasPrefix("https://") { cookie += "; Secure" }
        return (value, cookie)
    }

    func currentSession(_ request: HTTPRequest) async throws -> LoginSession? {
        guard let value = Self.cookie(named: Self.sessionCookie, in: request) else { return nil }
        guard let session = try await store.session(digest: RandomToken.digest(value)), session.expiresAt > now() else {
            return nil
        }
        return session
    }

    static func cookie(named name: String, in request: HTTPRequest) -> String? {
        for field in request.headerFields[values: .cookie] {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                if trimmed.hasPrefix(name + "=") { return String(trimmed.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }

    func sessionCookie(_ value: String) -> String {
        cookieHeader(Self.sessionCookie, value, maxAge: Self.sessionTTL)
    }

    var cookiePath: String { basePath.isEmpty ? "/" : basePath }

    /// A cookie of the issuer's: on its path, `HttpOnly`, `SameSite=Lax`, `Secure` on https.
    func cookieHeader(_ name: String, _ value: String, maxAge: Int?) -> String {
        var cookie = "\(name)=\(value); Path=\(cookiePath); HttpOnly; SameSite=Lax"
        if let maxAge { cookie += "; Max-Age=\(maxAge)" }
        if options.issuer.hasPrefix("https://") { cookie += "; Secure" }
        return cookie
    }

    /// The authorization response's parameters (with RFC 9207 `iss`), in the order they are sent.
    func responsePairs(_ parameters: [String: String?]) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for key in ["code", "error", "error_description", "state"] {
            if let value = parameters[key] ?? nil { pairs.append((key, value)) }
        }
        pairs.append(("iss", options.issuer))
        return pairs
    }

    /// The authorization response to the client: a redirect with the parameters in the query,
    /// or with `response_mode=form_post` a page that posts them to the redirect URI (OAuth 2.0
    /// Form Post Response Mode).
    func authorizationResponse(to uri: String, mode: String?, _ parameters: [String: String?]) -> IssuerResponse {
        if mode == "form_post" { return formPostPage(to: uri, responsePairs(parameters)) }
        return redirect(to: uri, parameters)
    }

    /// A redirect to the client with `parameters` (and RFC 9207 `iss`) in the query.
    func redirect(to uri: String, _ parameters: [String: String?]) -> IssuerResponse {
        let location = uri + (uri.contains("?") ? "&" : "?") + FormURLEncoding.encode(responsePairs(parameters))
        var fields = HTTPFields()
        fields[.location] = location
        fields[.cacheControl] = "no-store"
        return .empty(status: .found, headers: fields)
    }
}
