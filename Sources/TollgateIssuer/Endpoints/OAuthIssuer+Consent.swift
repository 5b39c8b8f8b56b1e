import HTTPTypes
import TollgateCore

/// The JSON consent endpoint, for applications that render their own consent page
/// (`consent_page`): `POST {"consent_code": "…", "accept": true}` from the signed-in browser, or
/// `{"accept": true}` alone, as better-auth's `authClient.oauth2.consent({ accept: true })`
/// sends it: the consent code then comes from the cookie set with the redirect to the page
/// (`HttpOnly`, `SameSite=Lax`, and the code is bound to the signed-in user either way).
/// The answer names where the browser goes next (`redirect_uri`: the client with its code or
/// `access_denied`), or, for a device's request, the device's new state.
///
/// Cross-site forms cannot send `application/json` without a CORS preflight, which this
/// endpoint never grants, and the consent code is an unguessable value bound to the signed-in
/// user, so it needs no separate anti-forgery token.
extension OAuthIssuer {
    func consentDecision(_ request: HTTPRequest, body: [UInt8]) async throws -> IssuerResponse {
        let contentType = request.headerFields[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/json") else {
            throw IssuerError.invalidRequest("the body must be application/json")
        }
        guard let document = try? JSONParser.parse(body), let accept = document["accept"]?.boolValue,
            let code = document["consent_code"]?.stringValue ?? Self.cookie(named: Self.consentCookie, in: request),
            // The page the answer comes from, when the browser says, names the same request.
            Self.refererConsentCode(request).map({ $0 == code }) ?? true
        else {
            throw IssuerError.invalidRequest(
                "expected {\"accept\": boolean} from the browser sent to the consent page, or with \"consent_code\""
            )
        }
        guard let session = try await currentSession(request) else {
            return .json(
                .object(["error": .string("login_required"), "error_description": .string("sign in first")]),
                status: .unauthorized,
                headers: IssuerResponse.noStore
            )
        }
        guard let pending = try await store.pendingAuthorization(id: code), pending.expiresAt > now(),
            pending.username == session.username, !pending.clientID.isEmpty
        else { throw IssuerError.invalidRequest("the consent code is not valid") }
        if let userCode = pending.deviceUserCode {
            guard try await decideDevice(pending, userCode: userCode, allow: accept) else {
                throw IssuerError.invalidRequest("the device's request has expired or was already answered")
            }
            return .json(.object(["status": .string(accept ? "approved" : "denied")]), headers: spentConsentCookie)
        }
        var parameters: [String: String?] = ["state": pending.state]
        if accept {
            try await store.saveConsent(
                username: session.username,
                clientID: pending.clientID,
                scopes: Set(pending.scopes)
            )
            guard let code = try await saveCode(for: pending) else {
                throw IssuerError.invalidRequest("the consent code is not valid")
            }
            parameters["code"] = code
        } else {
            try await store.deletePendingAuthorization(id: pending.id)
            parameters["error"] = "access_denied"
            parameters["error_description"] = "the user denied the request"
        }
        // With form_post the page posts `parameters` to the redirect URI itself.
        if pending.responseMode == "form_post" {
            var fields: [String: JSONValue] = [:]
            for (name, value) in responsePairs(parameters) { fields[name] = .string(value) }
            return .json(
                .object([
                    "redirect_uri": .string(pending.redirectURI), "response_mode": .string("form_post"),
                    "parameters": .object(fields),
                ]),
                headers: spentConsentCookie
            )
        }
        let next = redirect(to: pending.redirectURI, parameters)
        return .json(
            .object(["redirect_uri": .string(next.head.headerFields[.location] ?? pending.redirectURI)]),
            headers: spentConsentCookie
        )
    }

    /// The `consent_code` of the page the request comes from (`Referer`), when it has one.
    static func refererConsentCode(_ request: HTTPRequest) -> String? {
        guard let referer = request.headerFields[.referer], let question = referer.firstIndex(of: "?") else {
            return nil
        }
        let query = referer[referer.index(after: question)...].prefix { $0 != "#" }
        return FormURLEncoding.decode(Array(query.utf8))?.first { $0.0 == "consent_code" }?.1
    }

    /// The cookie that carries the consent code to the JSON endpoint.
    static let consentCookie = "tollgate_consent"

    /// `no-store`, and the consent cookie cleared: its code is spent.
    var spentConsentCookie: HTTPFields {
        var fields = IssuerResponse.noStore
        fields.append(HTTPField(name: .setCookie, value: cookieHeader(Self.consentCookie, "", maxAge: 0)))
        return fields
    }

    /// The application's own consent page for `pending`: `consent_page?consent_code=…&client_id=…&scope=…`,
    /// with the code in the consent cookie — unless the browser's cookie already names another
    /// request still waiting: then the cookie is cleared, and each page must name its code, so
    /// a second request opened in the same browser (by a page the person never looks at) cannot
    /// take the place of the one the person is shown.
    func consentPageRedirect(
        _ page: String,
        pending: PendingAuthorization,
        cookie: String?,
        request: HTTPRequest
    ) async throws -> IssuerResponse {
        let query = FormURLEncoding.encode([
            ("consent_code", pending.id), ("client_id", pending.clientID),
            ("scope", pending.scopes.joined(separator: " ")),
        ])
        var fields = HTTPFields()
        fields[.location] = page + (page.contains("?") ? "&" : "?") + query
        fields[.cacheControl] = "no-store"
        if let cookie { fields.append(HTTPField(name: .setCookie, value: cookie)) }
        var carried = true
        if let earlier = Self.cookie(named: Self.consentCookie, in: request), earlier != pending.id,
            let waiting = try await store.pendingAuthorization(id: earlier), waiting.expiresAt > now()
        {
            carried = false
        }
        fields.append(
            HTTPField(
                name: .setCookie,
                value: carried
                    ? cookieHeader(Self.consentCookie, pending.id, maxAge: max(1, pending.expiresAt - now()))
                    : cookieHeader(Self.consentCookie, "", maxAge: 0)
            )
        )
        return .empty(status: .found, headers: fields)
    }
}
