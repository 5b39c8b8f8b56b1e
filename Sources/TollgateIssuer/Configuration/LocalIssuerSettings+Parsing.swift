import TollgateCore

/// The `issuer:` section of the configuration file, parsed here, in the issuer module, with
/// messages that name the file, line and field; `register()` hands this parser to TollgateCore's
/// loader (call it once, before any configuration is loaded).
extension LocalIssuerSettings: LocalIssuerSection {
    public func sameSection(as other: any LocalIssuerSection) -> Bool {
        guard var other = other as? LocalIssuerSettings else { return false }
        other.line = line
        return self == other
    }

    /// Registers this module's parser of the `issuer:` section with TollgateCore's loader.
    public static func register() {
        IssuerSectionParser.register { node, context throws(ConfigurationError) in
            try LocalIssuerSettingsParser(context: context).localIssuer(node)
        }
    }
}

extension TollgateConfiguration {
    /// The `issuer:` section, as this module parsed it.
    public var issuerSettings: LocalIssuerSettings? { localIssuer as? LocalIssuerSettings }
}

struct LocalIssuerSettingsParser {
    let context: ConfigurationContext

    static let algorithmNames = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA"

    /// `postgres: {url: postgres://user@host:port/database, password_file | password_env}`;
    /// the password never in the URL.
    func postgresStorage(_ node: ConfigurationNode) throws(ConfigurationError) -> LocalIssuerSettings.Postgres {
        let members = try node.mapping(allowed: ["url", "password_file", "password_env", "password", "tls"])
        if let inline = members["password"] {
            throw inline.error("secrets are not written in the file; use password_file or password_env")
        }
        let urlNode = try members.required("url")
        let url = try urlNode.nonEmptyString()
        guard let parsed = LocalIssuerSettings.Postgres.parse(url) else {
            throw urlNode.error("expected postgres://USER@HOST[:PORT]/DATABASE (the password from a file or env)")
        }
        if parsed.hadPassword {
            throw urlNode.error("the URL holds a password; use password_file or password_env")
        }
        var settings = parsed.settings
        if members.has("password_file") || members.has("password_env") {
            settings.password = try context.secret(members, file: "password_file", env: "password_env", owner: node)
        }
        // TLS by default, but for a database on this machine; `tls: false` says so explicitly.
        settings.tls = !["127.0.0.1", "::1", "[::1]", "localhost"].contains(settings.host)
        if let tls = members["tls"] { settings.tls = try tls.bool() }
        return settings
    }

    func issuerLimits(_ node: ConfigurationNode) throws(ConfigurationError) -> LocalIssuerSettings.Limits {
        let members = try node.mapping(allowed: [
            "account_failures", "address_failures", "wait_increment", "max_wait", "failure_reset",
            "user_code_failures_per_address", "user_code_failures_total", "registrations_per_hour",
        ])
        var limits = LocalIssuerSettings.Limits()
        func seconds(_ value: ConfigurationNode) throws(ConfigurationError) -> Int {
            let seconds = try value.duration()
            guard seconds >= 1 else { throw value.error("at least 1s") }
            return Int(seconds.rounded(.up))
        }
        if let value = members["account_failures"] { limits.accountFailures = try value.positiveInteger() }
        if let value = members["address_failures"] { limits.addressFailures = try value.positiveInteger() }
        if let value = members["wait_increment"] { limits.waitIncrement = try seconds(value) }
        if let value = members["max_wait"] { limits.maxWait = try seconds(value) }
        if let value = members["failure_reset"] { limits.failureReset = try seconds(value) }
        if let value = members["user_code_failures_per_address"] {
            limits.userCodeFailuresPerAddress = try value.positiveInteger()
        }
        if let value = members["user_code_failures_total"] {
            limits.userCodeFailuresTotal = try value.positiveInteger()
        }
        if let value = members["registrations_per_hour"] {
            limits.registrationsPerHour = try value.positiveInteger()
        }
        if limits.maxWait < limits.waitIncrement {
            throw (members["max_wait"] ?? node).error("max_wait is shorter than wait_increment")
        }
        return limits
    }

    /// A lifetime: seconds, or a duration such as `15m` or `30d`; at least one second.
    func lifetime(_ node: ConfigurationNode) throws(ConfigurationError) -> Int {
        let seconds = try node.duration()
        guard seconds >= 1 else { throw node.error("at least 1s") }
        guard seconds <= Double(Self.longestLifetime) else { throw node.error("at most 10 years (3650d)") }
        return Int(seconds.rounded(.up))
    }

    /// Ten years, in seconds: the longest lifetime or grace accepted anywhere.
    static let longestLifetime = 3650 * 86400

    /// `endpoints: {token: /oidc/token, …}`: absolute paths (under the issuer URL's path), no
    /// query, fragment, dot segment or well-known path, none twice — the sign-in and consent
    /// forms (the authorization path plus `/login` and `/consent`) included.
    func endpoints(_ node: ConfigurationNode) throws(ConfigurationError) -> [String: String] {
        let names = OAuthIssuer.Endpoint.configurationNames
        let members = try node.mapping(allowed: [
            "authorization", "token", "introspection", "revocation", "userinfo", "jwks", "end_session",
            "device_authorization", "device", "registration", "consent",
        ])
        var paths: [String: String] = [:]
        var taken: [String: String] = [:]
        for name in names {
            if let value = members[name] {
                let path = try value.nonEmptyString()
                let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                guard path.hasPrefix("/"), path.count > 1, !path.hasSuffix("/"), !path.contains("//"),
                    !path.hasPrefix("/.well-known"),
                    path.allSatisfy({ $0.isASCII && !$0.isWhitespace && !"?#%\\".contains($0) }),
                    !segments.contains(where: { $0 == "." || $0 == ".." })
                else {
                    throw value.error(
                        "expected an absolute path such as /oidc/token (no query, fragment, dot segment or /.well-known)"
                    )
                }
                paths[name] = path
            }
        }
        for endpoint in OAuthIssuer.Endpoint.allCases {
            var path = endpoint.configurationName.flatMap { paths[$0] } ?? endpoint.rawValue
            var label = endpoint.configurationName ?? endpoint.rawValue
            if endpoint == .login || endpoint == .consent {
                path =
                    (paths["authorization"] ?? OAuthIssuer.Endpoint.authorization.rawValue)
                    + (endpoint == .login ? "/login" : "/consent")
                label = "the authorization endpoint's \(endpoint == .login ? "sign-in" : "consent") form"
            }
            if let other = taken[path] {
                throw (endpoint.configurationName.flatMap { members[$0] } ?? node).error(
                    "\(path) is both \(other) and \(label)"
                )
            }
            taken[path] = label
        }
        return paths
    }

    /// `claims: {SCOPE: [CLAIM, …]}`: what each scope releases.
    func scopeClaims(_ node: ConfigurationNode) throws(ConfigurationError) -> [String: [String]] {
        guard case .object(let scopes) = try node.json() else {
            throw node.error("expected a mapping of scope: [claims]")
        }
        let members = try node.mapping(allowed: Set(scopes.keys))
        var mapping: [String: [String]] = [:]
        for scope in scopes.keys.sorted() {
            let value = try members.required(scope)
            if scope.isEmpty || scope.contains(" ") || scope.contains("\"") || scope == "openid"
                || scope == "offline_access"
            {
                throw value.error(
                    "'\(scope)' cannot release claims (empty, a space or quote, or openid/offline_access)"
                )
            }
            mapping[scope] = try claimNames(value)
        }
        return mapping
    }

    /// A list of claim names, none of which a token decides itself.
    func claimNames(_ node: ConfigurationNode) throws(ConfigurationError) -> [String] {
        let names = try node.stringList()
        for name in names where ClaimRelease.reservedNames.contains(name) {
            throw node.error("'\(name)' is a registered claim the token itself sets; it cannot be a person's claim")
        }
        return names
    }

    /// A user's `claims:`, each with its JSON type (`email_verified: true`, `groups: [admins]`,
    /// `realm_access: {roles: [...]}`).
    func userClaims(_ node: ConfigurationNode) throws(ConfigurationError) -> [String: JSONValue] {
        guard case .object(let claims) = try node.json() else { throw node.error("expected a mapping of claim: value") }
        let members = try node.mapping(allowed: Set(claims.keys))
        for name in claims.keys.sorted() where ClaimRelease.reservedNames.contains(name) {
            throw try members.required(name).error(
                "'\(name)' is a registered claim the token itself sets; it cannot be a person's claim"
            )
        }
        return claims
    }

    func localIssuer(_ node: ConfigurationNode) throws(ConfigurationError) -> LocalIssuerSettings {
        let members = try node.mapping(allowed: [
            "name", "issuer", "supported_scopes", "access_token_ttl", "refresh_token_ttl", "code_ttl",
            "enable_dynamic_registration", "require_pkce_for_public", "jwt_access_token", "store_client_secret",
            "store_tokens", "pairwise_secret_file", "pairwise_secret_env", "pairwise_secret", "grant_types",
            "signing_algorithm", "storage", "apis", "clients", "users", "consent_page", "jwks_max_age",
            "refresh_token_reuse_interval", "limits", "claims", "id_token_ttl", "endpoints",
            "client_id_metadata_documents",
        ])
        let urlNode = try members.required("issuer")
        let url = try urlNode.nonEmptyString()
        guard url.hasPrefix("https://") || url.hasPrefix("http://"), !url.contains("?"), !url.contains("#") else {
            throw urlNode.error("must be an http(s) URL without query or fragment")
        }
        var settings = LocalIssuerSettings(
            issuer: url,
            storage: .sqlite(context.baseDirectory + "/tollgate-issuer.sqlite")
        )
        settings.line = node.line
        if let value = members["name"] { settings.name = try value.nonEmptyString() }
        if let value = members["supported_scopes"] { settings.supportedScopes = try value.stringList() }
        if let value = members["access_token_ttl"] { settings.accessTokenTTL = try lifetime(value) }
        if let value = members["refresh_token_ttl"] { settings.refreshTokenTTL = try lifetime(value) }
        if let value = members["id_token_ttl"] { settings.idTokenTTL = try lifetime(value) }
        if let value = members["code_ttl"] { settings.codeTTL = try lifetime(value) }
        if let value = members["jwks_max_age"] { settings.jwksMaxAge = try value.positiveInteger() }
        if let value = members["refresh_token_reuse_interval"] {
            let seconds = try value.duration()
            guard seconds <= 300 else {
                throw value.error("at most 5m: the answer kept for the retry is a live token")
            }
            settings.refreshTokenReuseInterval = Int(seconds.rounded(.up))
        }
        if let value = members["limits"] {
            settings.limits = try issuerLimits(value)
        }
        if let node = members["client_id_metadata_documents"] {
            let documents = try node.mapping(allowed: [
                "enabled", "allow_loopback_http", "allow_private_addresses", "max_bytes", "timeout",
            ])
            var options = ClientMetadataDocumentOptions()
            options.enabled = try documents["enabled"]?.bool() ?? true
            options.allowLoopbackHTTP = try documents["allow_loopback_http"]?.bool() ?? false
            options.allowPrivateAddresses = try documents["allow_private_addresses"]?.bool() ?? false
            if let value = documents["max_bytes"] { options.maximumBytes = try value.positiveInteger() }
            if let value = documents["timeout"] { options.timeout = max(1, Int(try value.duration())) }
            settings.clientMetadataDocuments = options
        }
        if let value = members["enable_dynamic_registration"] {
            settings.enableDynamicRegistration = try value.bool()
        }
        if let value = members["require_pkce_for_public"] { settings.requirePKCEForPublic = try value.bool() }
        if let value = members["jwt_access_token"] { settings.jwtAccessToken = try value.bool() }
        for key in ["store_client_secret", "store_tokens"] {
            guard let value = members[key] else { continue }
            let text = try value.string()
            guard text == "hashed" || text == "plain" else { throw value.error("expected 'hashed' or 'plain'") }
            if key == "store_client_secret" {
                settings.storeClientSecret = text
            } else {
                settings.storeTokens = text
            }
        }
        if let inline = members["pairwise_secret"] {
            throw inline.error(
                "secrets are not written in the file; use pairwise_secret_file or pairwise_secret_env"
            )
        }
        if members.has("pairwise_secret_file") || members.has("pairwise_secret_env") {
            let secret = try context.secret(
                members,
                file: "pairwise_secret_file",
                env: "pairwise_secret_env",
                owner: node
            )
            if secret.value.count < 32 {
                throw (members["pairwise_secret_file"] ?? members["pairwise_secret_env"])!.error(
                    "the pairwise secret must be at least 32 characters"
                )
            }
            settings.pairwiseSecret = secret
        }
        let knownGrants: Set<String> = [
            "authorization_code", "client_credentials", "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "device_code",
        ]
        if let value = members["grant_types"] {
            let list = try value.stringList()
            for grant in list where !knownGrants.contains(grant) {
                throw value.error("'\(grant)' is not a grant type (implicit and password are not offered)")
            }
            settings.grantTypes = list.map {
                $0 == "device_code" ? "urn:ietf:params:oauth:grant-type:device_code" : $0
            }
        }
        if let value = members["signing_algorithm"] {
            let text = try value.string()
            guard SigningKey.Algorithm(rawValue: text) != nil else {
                throw value.error("expected \(Self.algorithmNames) (HS256/384/512 only per client, for ID tokens)")
            }
            settings.signingAlgorithm = text
        }
        if let value = members["storage"] {
            let storage = try value.mapping(allowed: ["memory", "sqlite", "postgres"])
            if let postgres = storage["postgres"] {
                if storage.has("memory") || storage.has("sqlite") {
                    throw value.error("give one of sqlite, postgres or memory")
                }
                settings.storage = .postgres(try postgresStorage(postgres))
            }
            switch (storage["memory"], storage["sqlite"]) {
            case (nil, nil) where storage.has("postgres"):
                break
            case (let memory?, nil):
                guard try memory.bool() else { throw memory.error("give sqlite: PATH, or memory: true") }
                settings.storage = .memory
            case (nil, let sqlite?):
                let path = try sqlite.nonEmptyString()
                settings.storage = .sqlite(path.hasPrefix("/") ? path : context.baseDirectory + "/" + path)
            case (.some, .some):
                throw value.error("give sqlite or memory, not both")
            case (nil, nil):
                throw value.error("give sqlite: PATH or memory: true")
            }
        }
        if let value = members["endpoints"] { settings.endpoints = try endpoints(value) }
        if let value = members["claims"] {
            settings.claims = try scopeClaims(value)
            for scope in settings.claims.keys.sorted() where !settings.supportedScopes.contains(scope) {
                settings.supportedScopes.append(scope)
            }
        }
        var allScopes = Set(settings.supportedScopes)
        if let value = members["consent_page"] {
            let page = try value.nonEmptyString()
            guard page.hasPrefix("https://") || page.hasPrefix("http://") || page.hasPrefix("/"),
                !page.contains("#")
            else { throw value.error("must be an http(s) URL or an absolute path, without fragment") }
            settings.consentPage = page
        }
        if let value = members["apis"] {
            for element in try value.sequence() {
                let api = try element.mapping(allowed: ["audience", "scopes", "claims"])
                let audience = try api.required("audience").nonEmptyString()
                let scopes = try api.required("scopes").stringList()
                for scope in scopes where scope.isEmpty || scope.contains(" ") || scope.contains("\"") {
                    throw element.error("the scope '\(scope)' is empty or contains a space or quote")
                }
                if settings.apis.contains(where: { $0.audience == audience }) {
                    throw element.error("the API '\(audience)' is defined twice")
                }
                allScopes.formUnion(scopes)
                var claims: [String] = []
                if let node = api["claims"] { claims = try claimNames(node) }
                settings.apis.append(LocalIssuerSettings.API(audience: audience, scopes: scopes, claims: claims))
            }
        }
        if let value = members["clients"] {
            for element in try value.sequence() {
                let client = try element.mapping(allowed: [
                    "client_id", "type", "client_secret_file", "client_secret_env", "client_secret",
                    "redirect_uris", "post_logout_redirect_uris", "scopes", "grant_types", "skip_consent",
                    "introspection", "require_pkce", "access_token_ttl", "refresh_token_ttl", "id_token_ttl",
                    "id_token_signed_response_alg", "dpop_bound_access_tokens",
                    "tls_client_certificate_bound_access_tokens",
                ])
                let id = try client.required("client_id").nonEmptyString()
                let typeNode = try client.required("type")
                let type = try typeNode.string()
                guard ["web", "spa", "native", "machine", "device"].contains(type) else {
                    throw typeNode.error("expected web, spa, native, machine or device")
                }
                if let inline = client["client_secret"] {
                    throw inline.error(
                        "secrets are not written in the file; use client_secret_file or client_secret_env"
                    )
                }
                var secret: Secret?
                let confidential = type == "web" || type == "machine"
                if confidential {
                    secret = try context.secret(
                        client,
                        file: "client_secret_file",
                        env: "client_secret_env",
                        owner: element
                    )
                } else if let node = client["client_secret_file"] ?? client["client_secret_env"] {
                    throw node.error("a \(type) client is public and holds no secret")
                }
                let scopes = try client["scopes"]?.stringList() ?? []
                for scope in scopes where !allScopes.contains(scope) {
                    throw element.error("the scope '\(scope)' is neither a supported scope nor an API's")
                }
                var grants: [String]?
                if let node = client["grant_types"] {
                    let list = try node.stringList()
                    for grant in list where !knownGrants.contains(grant) {
                        throw node.error("'\(grant)' is not a grant type")
                    }
                    grants = list.map { $0 == "device_code" ? "urn:ietf:params:oauth:grant-type:device_code" : $0 }
                }
                if settings.clients.contains(where: { $0.id == id }) {
                    throw element.error("the client '\(id)' is defined twice")
                }
                var mayIntrospect = false
                if let node = client["introspection"] {
                    switch try node.string() {
                    case "allowed": mayIntrospect = true
                    case "own": mayIntrospect = false
                    default: throw node.error("expected 'allowed' (any client's tokens) or 'own'")
                    }
                    if !confidential { throw node.error("a \(type) client is public and cannot introspect") }
                }
                for uri in try client["redirect_uris"]?.stringList() ?? []
                where uri.contains("@") || uri.contains("#") {
                    throw element.error("the redirect URI '\(uri)' holds user information or a fragment")
                }
                var idTokenAlgorithm: String?
                if let node = client["id_token_signed_response_alg"] {
                    let name = try node.string()
                    guard SigningKey.Algorithm(rawValue: name) != nil || IDTokenSigner.symmetric[name] != nil else {
                        throw node.error("expected \(Self.algorithmNames), HS256, HS384 or HS512")
                    }
                    let stored = secret.map {
                        settings.storeClientSecret == "plain" ? StoredSecret.keeping($0.value) : .hashing($0.value)
                    }
                    if let refusal = IDTokenSigner.refusal(algorithm: name, secret: stored) {
                        throw node.error(refusal)
                    }
                    idTokenAlgorithm = name
                }
                var requirePKCE: Bool?
                if let node = client["require_pkce"] {
                    requirePKCE = try node.bool()
                    if requirePKCE == false && !confidential && settings.requirePKCEForPublic {
                        throw node.error(
                            "a \(type) client is public: it must use PKCE while require_pkce_for_public is on"
                        )
                    }
                }
                settings.clients.append(
                    LocalIssuerSettings.Client(
                        id: id,
                        type: type,
                        secret: secret,
                        redirectURIs: try client["redirect_uris"]?.stringList() ?? [],
                        postLogoutRedirectURIs: try client["post_logout_redirect_uris"]?.stringList() ?? [],
                        scopes: scopes,
                        grantTypes: grants,
                        skipConsent: try client["skip_consent"]?.bool() ?? false,
                        mayIntrospect: mayIntrospect,
                        requirePKCE: requirePKCE,
                        requiresDPoP: try client["dpop_bound_access_tokens"]?.bool() ?? false,
                        certificateBoundAccessTokens: try client["tls_client_certificate_bound_access_tokens"]?.bool()
                            ?? false,
                        accessTokenTTL: try client["access_token_ttl"].map { node throws(ConfigurationError) in
                            try lifetime(node)
                        },
                        refreshTokenTTL: try client["refresh_token_ttl"].map { node throws(ConfigurationError) in
                            try lifetime(node)
                        },
                        idTokenTTL: try client["id_token_ttl"].map { node throws(ConfigurationError) in
                            try lifetime(node)
                        },
                        idTokenSigningAlgorithm: idTokenAlgorithm
                    )
                )
            }
        }
        if let value = members["users"] {
            for element in try value.sequence() {
                let user = try element.mapping(allowed: [
                    "username", "password_hash_file", "password_hash_env", "password", "password_hash", "claims",
                ])
                if let inline = user["password"] ?? user["password_hash"] {
                    throw inline.error(
                        "passwords are not written in the file; use password_hash_file or password_hash_env"
                    )
                }
                let username = try user.required("username").nonEmptyString()
                let hash = try context.secret(
                    user,
                    file: "password_hash_file",
                    env: "password_hash_env",
                    owner: element
                )
                guard hash.value.hasPrefix("scrypt$"), hash.value.split(separator: "$").count == 6 else {
                    throw element.error(
                        "the password hash is not a scrypt hash (make one with tollgate issuer hash-password)"
                    )
                }
                var claims: [String: JSONValue] = [:]
                if let node = user["claims"] { claims = try userClaims(node) }
                if settings.users.contains(where: { $0.username == username }) {
                    throw element.error("the user '\(username)' is defined twice")
                }
                settings.users.append(
                    LocalIssuerSettings.User(username: username, passwordHash: hash, claims: claims)
                )
            }
        }
        return settings
    }
}
