import Crypto
import Foundation
import HTTPTypes
import TollgateCore

/// The built-in sign-in, consent and error pages: plain HTML, every value escaped, never framed,
/// never cached.
extension OAuthIssuer {
    func loginPage(_ pending: PendingAuthorization, message: String?) -> IssuerResponse {
        var body = "<h1>Sign in</h1>"
        body += "<p>to continue to <b>\(Self.escape(pending.clientID))</b></p>"
        if let message { body += "<p class=\"error\">\(Self.escape(message))</p>" }
        body += "<form method=\"post\" action=\"\(Self.escape(path(.login)))\">"
        body += hidden(pending)
        body += "<label>User name <input name=\"username\" autocomplete=\"username\" required"
        if let hint = pending.loginHint { body += " value=\"\(Self.escape(hint))\"" }
        body += "></label>"
        body +=
            "<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>"
        body += "<button type=\"submit\">Sign in</button></form>"
        return page("Sign in", body, status: message == nil ? .ok : .unauthorized)
    }

    func consentPage(_ pending: PendingAuthorization, client: RegisteredClient, cookie: String?) -> IssuerResponse {
        var body = "<h1>Allow access?</h1>"
        if let code = pending.deviceUserCode {
            body += "<p>Check that your device shows <b>\(Self.escape(Self.displayed(code)))</b>.</p>"
        }
        body += "<p><b>\(Self.escape(client.id))</b> asks to:</p><ul>"
        for scope in pending.scopes { body += "<li>\(Self.escape(scope))</li>" }
        body += "</ul><form method=\"post\" action=\"\(Self.escape(path(.consent)))\">"
        body += hidden(pending)
        body += "<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> "
        body += "<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>"
        var response = page("Allow access?", body, status: .ok)
        if let cookie { response.head.headerFields.append(HTTPField(name: .setCookie, value: cookie)) }
        return response
    }

    /// The device verification page: the user code, and the sign-in fields without a session.
    func deviceEntryPage(
        csrf: String,
        userCode: String?,
        signedIn: Bool,
        message: String?
    ) -> IssuerResponse {
        var body = "<h1>Connect a device</h1><p>Enter the code your device shows.</p>"
        if let message { body += "<p class=\"error\">\(Self.escape(message))</p>" }
        body += "<form method=\"post\" action=\"\(Self.escape(path(.device)))\">"
        body += "<input type=\"hidden\" name=\"csrf\" value=\"\(Self.escape(csrf))\">"
        body += "<label>Code <input name=\"user_code\" autocomplete=\"off\" autocapitalize=\"characters\" required"
        if let userCode { body += " value=\"\(Self.escape(userCode))\"" }
        body += "></label>"
        if !signedIn {
            body += "<label>User name <input name=\"username\" autocomplete=\"username\" required></label>"
            body += "<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\""
            body += " required></label>"
        }
        body += "<button type=\"submit\">Continue</button></form>"
        return page("Connect a device", body, status: message == nil ? .ok : .badRequest)
    }

    /// The OAuth 2.0 Form Post Response Mode page: a form of hidden fields (every value
    /// escaped) that a fixed script posts to the client's redirect URI at once; without
    /// scripts, a button does.
    func formPostPage(to uri: String, _ pairs: [(String, String)]) -> IssuerResponse {
        var body = "<form method=\"post\" action=\"\(Self.escape(uri))\">"
        for (name, value) in pairs {
            body += "<input type=\"hidden\" name=\"\(Self.escape(name))\" value=\"\(Self.escape(value))\">"
        }
        body += "<noscript><button type=\"submit\">Continue</button></noscript></form>"
        body += "<script>\(Self.formPostScript)</script>"
        var response = page("Continue", body, status: .ok)
        response.head.headerFields[.contentSecurityPolicy] =
            "default-src 'none'; style-src 'unsafe-inline'; script-src '\(Self.formPostScriptHash)'; frame-ancestors 'none'"
        return response
    }

    static let formPostScript = "document.forms[0].submit()"
    /// CSP `script-src` of exactly that script.
    static let formPostScriptHash =
        "sha256-" + Data(SHA256.hash(data: Array(formPostScript.utf8))).base64EncodedString()

    /// Asks the signed-in person to confirm a sign-out that was not proven to come from their
    /// own application (no valid `id_token_hint` naming them): a cross-site link cannot sign
    /// them out.
    func logoutConfirmationPage(csrf: String, carried: [(String, String)]) -> IssuerResponse {
        var body = "<h1>Sign out?</h1><p>An application asks to sign you out.</p>"
        body += "<form method=\"post\" action=\"\(Self.escape(path(.endSession)))\">"
        body += "<input type=\"hidden\" name=\"logout_csrf\" value=\"\(Self.escape(csrf))\">"
        for (name, value) in carried {
            body += "<input type=\"hidden\" name=\"\(Self.escape(name))\" value=\"\(Self.escape(value))\">"
        }
        body += "<button type=\"submit\" name=\"confirm\" value=\"yes\">Sign out</button></form>"
        return page("Sign out?", body, status: .ok)
    }

    func noticePage(_ title: String, _ message: String, link: String? = nil) -> IssuerResponse {
        var body = "<h1>\(Self.escape(title))</h1><p>\(Self.escape(message))</p>"
        if let link { body += "<p><a href=\"\(Self.escape(link))\">Return to the application</a></p>" }
        return page(title, body, status: .ok)
    }

    func errorPage(_ message: String, status: HTTPResponse.Status) -> IssuerResponse {
        page("Cannot continue", "<h1>Cannot continue</h1><p>\(Self.escape(message))</p>", status: status)
    }

    private func hidden(_ pending: PendingAuthorization) -> String {
        "<input type=\"hidden\" name=\"request\" value=\"\(Self.escape(pending.id))\">"
            + "<input type=\"hidden\" name=\"csrf\" value=\"\(Self.escape(pending.csrfToken))\">"
    }

    func page(_ title: String, _ body: String, status: HTTPResponse.Status) -> IssuerResponse {
        let html =
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(Self.escape(title))</title>"
            + "<meta name=\"viewport\" content=\"width=device-width\"><style>body{font:16px system-ui;max-width:24em;"
            + "margin:4em auto}label{display:block;margin:1em 0}input{display:block;width:100%}"
            + ".error{color:#b00}</style></head><body>\(body)</body></html>"
        var fields = HTTPFields()
        fields[.contentType] = "text/html; charset=utf-8"
        fields[.cacheControl] = "no-store"
        fields[HTTPField.Name("X-Frame-Options")!] = "DENY"
        fields[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        fields[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return IssuerResponse(head: HTTPResponse(status: status, headerFields: fields), body: Array(html.utf8))
    }

    static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.append(character)
            }
        }
        return output
    }
}
