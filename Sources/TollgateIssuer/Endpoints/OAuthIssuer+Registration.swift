import HTTPTypes
import Logging
import TollgateCore

/// RFC 7591 dynamic client registration: refused unless `enable_dynamic_registration` is on,
/// because it lets any caller create a client. A registered client is always third-party (the
/// person is asked for consent) and gets only the issuer's grant types and scopes.
extension OAuthIssuer {
    func register(_ request: HTTPRequest, body: [UInt8]) async throws -> IssuerResponse {
        guard options.enableDynamicRegistration else {
            throw IssuerError(.registrationDisabled, "dynamic client registration is not enabled")
        }
        if let wait = try await registrationWait() {
            throw IssuerError(
                .tooManyRequests,
                "too many registrations from this address; try again later",
                retryAfter: wait
            )
        }
        let contentType = request.headerFields[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/json") else {
            throw Self.metadataError("the body must be application/json")
        }
        guard body.count <= Self.maximumMetadataBytes else {
            throw Self.metadataError("the metadata is larger than \(Self.maximumMetadataBytes) bytes")
        }
        guard let document = try? JSONParser.parse(body), let metadata = document.objectValue else {
            throw Self.metadataError("the body is not a JSON object")
        }
        func strings(_ name: String) throws(IssuerError) -> [String]? {
            guard let value = metadata[name] else { return nil }
            guard let array = value.arrayValue else { throw Self.metadataError("'\(name)' must be an array") }
            guard array.count <= Self.maximumListLength else {
                throw Self.metadataError("'\(name)' holds more than \(Self.maximumListLength) entries")
            }
            var result: [String] = []
            for element in array {
                guard let text = element.stringValue else { throw Self.metadataError("'\(name)' holds a non-string") }
                guard text.utf8.count <= Self.maximumURILength else {
                    throw Self.metadataError("an entry of '\(name)' is longer than \(Self.maximumURILength) bytes")
                }
                result.append(text)
            }
            return result
        }
        func string(_ name: String) throws(IssuerError) -> String? {
            guard let value = metadata[name] else { return nil }
            guard let text = value.stringValue else { throw Self.metadataError("'\(name)' must be a string") }
            return text
        }
        func flag(_ name: String) throws(IssuerError) -> Bool {
            guard let value = metadata[name] else { return false }
            guard case .bool(let flag) = value else { throw Self.metadataError("'\(name)' must be true or false") }
            return flag
        }
        // RFC 9449 §5.2 and RFC 8705 §3.4: a client that asks for sender-constrained tokens gets
        // them, never bearer tokens in their place.
        let requiresDPoP = try flag("dpop_bound_access_tokens")
        let certificateBound = try flag("tls_client_certificate_bound_access_tokens")
        if certificateBound && !options.clientCertificates {
            throw Self.metadataError(
                "no client certificate reaches this issuer: certificate-bound tokens are not offered"
            )
        }

        let method = try string("token_endpoint_auth_method") ?? "client_secret_basic"
        guard ["client_secret_basic", "client_secret_post", "none"].contains(method) else {
            throw Self.metadataError("token_endpoint_auth_method '\(method)' is not supported")
        }
        let grantNames = try strings("grant_types") ?? ["authorization_code"]
        var grants = Set<GrantType>()
        for name in grantNames {
            guard let grant = GrantType(rawValue: name), options.grantTypes.contains(grant) else {
                throw Self.metadataError("the grant type '\(name)' is not offered")
            }
            grants.insert(grant)
        }
        for responseType in try strings("response_types") ?? ["code"] where responseType != "code" {
            throw Self.metadataError("only the response type 'code' is offered")
        }
        let confidential = method != "none"
        // Open registration must not hand out tokens no person agreed to: client_credentials
        // (and so machine clients) are registered by an administrator only.
        if grants.contains(.clientCredentials) {
            throw Self.metadataError("client_credentials clients are not registered dynamically")
        }
        let redirectURIs = try strings("redirect_uris") ?? []
        if grants.contains(.authorizationCode) && redirectURIs.isEmpty {
            throw IssuerError(.invalidRedirectURI, "the authorization code grant needs redirect_uris")
        }
        let postLogout = try strings("post_logout_redirect_uris") ?? []
        for uri in redirectURIs + postLogout where !Self.isRegistrableRedirect(uri) {
            throw IssuerError(
                .invalidRedirectURI,
                "a redirect URI must be https, http on loopback, or a private-use scheme, without fragment"
            )
        }
        let known = Set(options.supportedScopes + options.apis.flatMap(\.scopes))
        let scopes = try string("scope").map { $0.split(separator: " ").map(String.init) } ?? options.supportedScopes
        for scope in scopes where !known.contains(scope) {
            throw Self.metadataError("the scope '\(scope)' is not offered")
        }
        let name = try string("client_name")
        if let name, name.count > Self.maximumNameLength || name.contains(where: \.isNewline) {
            throw Self.metadataError("client_name is longer than \(Self.maximumNameLength) characters or spans lines")
        }

        let kind: RegisteredClient.Kind
        if grants.contains(.deviceCode) && !grants.contains(.authorizationCode) {
            kind = .device
        } else if confidential {
            kind = .web
        } else {
            kind = redirectURIs.allSatisfy { $0.hasPrefix("https://") } ? .spa : .native
        }
        let secret = confidential ? RandomToken.make() : nil
        let storedSecret = secret.map { options.storeClientSecret == .hashed ? StoredSecret.hashing($0) : .keeping($0) }
        // OpenID Connect Registration §2: an algorithm this issuer holds a key of, or HS* when
        // the secret it is about to hand out is kept to sign with.
        let idTokenAlgorithm = try string("id_token_signed_response_alg")
        if let idTokenAlgorithm {
            guard idTokenAlgorithms.contains(idTokenAlgorithm) else {
                throw Self.metadataError(
                    "id_token_signed_response_alg must be one of \(idTokenAlgorithms.joined(separator: ", "))"
                )
            }
            if let refusal = IDTokenSigner.refusal(algorithm: idTokenAlgorithm, secret: storedSecret) {
                throw Self.metadataError(refusal)
            }
        }
        var client = RegisteredClient(
            id: RandomToken.make(bytes: 16),
            kind: kind,
            secret: storedSecret,
            redirectURIs: redirectURIs,
            postLogoutRedirectURIs: postLogout,
            scopes: scopes,
            grantTypes: grants,
            skipConsent: false,
            name: name,
            registeredDynamically: true
        )
        client.idTokenSignedResponseAlg = idTokenAlgorithm
        client.requiresDPoP = requiresDPoP ? true : nil
        client.certificateBoundAccessTokens = certificateBound ? true : nil
        try await store.saveClient(client)
        logger.info("client registered", metadata: ["client": "\(client.id)", "type": "\(kind.rawValue)"])
        var answer: [String: JSONValue] = [
            "client_id": .string(client.id),
            "client_id_issued_at": .number(Double(now())),
            "token_endpoint_auth_method": .string(method),
            "grant_types": .array(GrantType.allCases.filter(grants.contains).map { .string($0.rawValue) }),
            "response_types": .array(grants.contains(.authorizationCode) ? [.string("code")] : []),
            "redirect_uris": .array(redirectURIs.map(JSONValue.string)),
            "scope": .string(scopes.joined(separator: " ")),
        ]
        if !postLogout.isEmpty { answer["post_logout_redirect_uris"] = .array(postLogout.map(JSONValue.string)) }
        if let name { answer["client_name"] = .string(name) }
        if let idTokenAlgorithm { answer["id_token_signed_response_alg"] = .string(idTokenAlgorithm) }
        if requiresDPoP { answer["dpop_bound_access_tokens"] = .bool(true) }
        if certificateBound { answer["tls_client_certificate_bound_access_tokens"] = .bool(true) }
        if let secret {
            answer["client_secret"] = .string(secret)
            answer["client_secret_expires_at"] = .number(0)
        }
        return .json(.object(answer), status: .created, headers: IssuerResponse.noStore)
    }

    static func metadataError(_ description: String) -> IssuerError {
        IssuerError(.invalidClientMetadata, description)
    }

    /// The registration metadata's limits: the whole document, each URI, each list, the name.
    static let maximumMetadataBytes = 16 * 1024
    static let maximumURILength = 2048
    static let maximumListLength = 10
    static let maximumNameLength = 200

    /// RFC 8252 and OAuth 2.1 §2.3.1: `https`, `http` only on a loopback address, or a private-use
    /// scheme in reverse-DNS form (with a dot); never a fragment, never user information
    /// (`http://127.0.0.1:1@evil.example/` is evil.example), no whitespace, control characters
    /// or backslashes that parsers read differently.
    static func isRegistrableRedirect(_ uri: String) -> Bool {
        guard !uri.contains("#"), !uri.contains("@"), !uri.contains("\\"),
            uri.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }),
            let colon = uri.firstIndex(of: ":")
        else { return false }
        let scheme = uri[..<colon].lowercased()
        let rest = uri[uri.index(after: colon)...]
        switch scheme {
        case "https":
            return rest.hasPrefix("//") && rest.count > 2 && !host(of: uri).isEmpty
        case "http":
            let authority = host(of: uri).lowercased()
            for loopback in ["127.0.0.1", "[::1]", "localhost"] {
                if authority == loopback { return true }
                if authority.hasPrefix(loopback + ":") {
                    let port = authority.dropFirst(loopback.count + 1)
                    return !port.isEmpty && port.count <= 5 && port.allSatisfy(\.isASCII) && port.allSatisfy(\.isNumber)
                }
            }
            return false
        case "javascript", "data", "file", "vbscript":
            return false
        default:
            return scheme.contains(".") && !rest.isEmpty
        }
    }
}
