import HTTPTypes
import Logging
import TollgateCore

/// The device authorization grant (RFC 8628): the device asks for a device code and a user code,
/// the person enters the user code on the verification page, signs in and confirms, and the
/// device's polls of the token endpoint then get the tokens once.
extension OAuthIssuer {
    /// Seconds a device waits between polls at first (RFC 8628 §3.2 default).
    static let deviceInterval = 5
    /// RFC 8628 §6.1: consonants only, so no word is spelled and no two letters look alike.
    static let userCodeAlphabet = Array("BCDFGHJKLMNPQRSTVWXZ")
    static let userCodeLength = 8

    // MARK: - Device authorization request (RFC 8628 §3.1, §3.2)

    func deviceAuthorization(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        let client = try await authenticateClient(request, form: form)
        guard options.grantTypes.contains(.deviceCode), client.grantTypes.contains(.deviceCode) else {
            throw IssuerError.unauthorizedClient("the client may not use the device authorization grant")
        }
        let requested = form["scope"].map { $0.split(separator: " ").map(String.init) }
        let scopes = try grantedScopes(requested: requested, client: client, userScopesAllowed: true)
        _ = try GrantRules.audience(forResource: form["resource"], scopes: scopes, options: options)
        let deviceCode = RandomToken.make()
        let expiresIn = options.codeTTL
        // A user code already in use is never reused: draw another (20^8 codes, a handful live).
        var userCode = Self.makeUserCode()
        var attempts = 0
        let grantID = RandomToken.make(bytes: 16)
        func record(_ userCode: String) -> DeviceAuthorizationRecord {
            var record = DeviceAuthorizationRecord(
                digest: RandomToken.digest(deviceCode),
                userCode: userCode,
                clientID: client.id,
                scopes: scopes,
                resource: form["resource"],
                interval: Self.deviceInterval,
                expiresAt: now() + expiresIn,
                grantID: grantID
            )
            record.value = keptValue(deviceCode)
            return record
        }
        while try await !store.saveDeviceAuthorization(record(userCode)) {
            attempts += 1
            guard attempts < 8 else { throw IssuerError.invalidRequest("no user code is free; try again") }
            userCode = Self.makeUserCode()
        }
        let display = Self.displayed(userCode)
        return .json(
            .object([
                "device_code": .string(deviceCode),
                "user_code": .string(display),
                "verification_uri": .string(url(.device)),
                "verification_uri_complete": .string(
                    url(.device) + "?" + FormURLEncoding.encode([("user_code", display)])
                ),
                "expires_in": .number(Double(expiresIn)),
                "interval": .number(Double(Self.deviceInterval)),
            ]),
            headers: IssuerResponse.noStore
        )
    }

    static func makeUserCode() -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<userCodeLength).map { _ in userCodeAlphabet.randomElement(using: &generator)! })
    }

    /// `BCDFGHJK` → `BCDF-GHJK`.
    static func displayed(_ code: String) -> String {
        let half = code.index(code.startIndex, offsetBy: code.count / 2)
        return code[..<half] + "-" + code[half...]
    }

    /// What the person typed, as stored: letters upper-cased, everything else (dashes, spaces)
    /// dropped (RFC 8628 §6.1).
    static func normalizedUserCode(_ typed: String) -> String {
        String(typed.uppercased().filter { $0.isLetter && $0.isASCII })
    }

    // MARK: - The verification page (RFC 8628 §3.3)

    /// `GET`: the form for the user code (pre-filled from `verification_uri_complete`), with
    /// the sign-in fields when there is no session. It writes nothing: the form's anti-forgery
    /// token is derived from the browser's pre-session cookie.
    func devicePage(_ request: HTTPRequest, parameters: [String: String]) async throws -> IssuerResponse {
        let binding = browserBinding(request)
        let session = try await currentSession(request)
        var response = deviceEntryPage(
            csrf: Self.deviceFormToken(binding.value),
            userCode: parameters["user_code"],
            signedIn: session != nil,
            message: nil
        )
        if let cookie = binding.setCookie {
            response.head.headerFields.append(HTTPField(name: .setCookie, value: cookie))
        }
        return response
    }

    /// The device page's anti-forgery token for the browser whose pre-session cookie is `value`.
    static func deviceFormToken(_ value: String) -> String {
        RandomToken.digest("tollgate device form\u{0}" + value)
    }

    /// `POST`: the user code (and the credentials, without a session) → the confirmation page.
    /// Wrong codes are counted per address and in all (`limits`), so guessing a live code is
    /// bounded far below the code space (README: Security model).
    func deviceEntry(_ request: HTTPRequest, form: [String: String]) async throws -> IssuerResponse {
        guard let browser = Self.cookie(named: browserCookie, in: request), let token = form["csrf"],
            StoredSecret.keeping(Self.deviceFormToken(browser)).matches(token)
        else {
            throw IssuerError(.formExpired, "This form has expired or was not sent by this site. Start again.")
        }
        let csrf = Self.deviceFormToken(browser)
        let typed = form["user_code"] ?? ""
        var session = try await currentSession(request)
        func again(_ message: String) -> IssuerResponse {
            deviceEntryPage(csrf: csrf, userCode: typed, signedIn: session != nil, message: message)
        }
        if let wait = try await reserveUserCode() {
            return tooManyAttempts(again(Self.waitMessage), retryAfter: wait)
        }
        let userCode = Self.normalizedUserCode(typed)
        guard userCode.count == Self.userCodeLength,
            let device = try await store.deviceAuthorization(userCode: userCode),
            device.status == .pending, device.expiresAt > now(),
            let client = try await store.client(id: device.clientID), !client.revoked
        else {
            logger.info("device user code not accepted")
            return again("That code is not valid or has expired.")
        }
        try await userCodeAccepted()
        var cookie: String?
        if session == nil {
            let username = form["username"] ?? ""
            if let wait = try await reserveSignIn(username: username) {
                return tooManyAttempts(again(Self.waitMessage), retryAfter: wait)
            }
            guard let user = try await verifiedUser(username: username, password: form["password"] ?? "") else {
                return again("The user name or password is not right.")
            }
            try await signInSucceeded(username: user.username)
            let value = RandomToken.make()
            let signed = LoginSession(
                digest: RandomToken.digest(value),
                username: user.username,
                authenticatedAt: now(),
                expiresAt: now() + Self.sessionTTL
            )
            try await store.saveSession(signed)
            session = signed
            cookie = sessionCookie(value)
        }
        guard let session else { return again("Sign in to continue.") }
        let pending = PendingAuthorization(
            id: RandomToken.make(),
            csrfToken: RandomToken.make(),
            clientID: client.id,
            redirectURI: "",
            scopes: device.scopes,
            prompt: [],
            username: session.username,
            authenticatedAt: session.authenticatedAt,
            deviceUserCode: userCode,
            expiresAt: now() + Self.formTTL,
            browser: RandomToken.digest(browser)
        )
        try await store.savePendingAuthorization(pending)
        // A device is always confirmed by the person, first-party or not: the user code is what
        // an attacker would phish with.
        return consentPage(pending, client: client, cookie: cookie)
    }

    /// The person's decision on a device's request, from the consent form or the JSON consent
    /// endpoint.
    func decideDevice(_ pending: PendingAuthorization, userCode: String, allow: Bool) async throws -> Bool {
        guard let username = pending.username else { return false }
        try await store.deletePendingAuthorization(id: pending.id)
        let settled = try await store.decideDeviceAuthorization(
            userCode: userCode,
            username: allow ? username : nil,
            authenticatedAt: pending.authenticatedAt ?? now(),
            now: now()
        )
        if settled && allow {
            try await store.saveConsent(username: username, clientID: pending.clientID, scopes: Set(pending.scopes))
        }
        return settled
    }
}
