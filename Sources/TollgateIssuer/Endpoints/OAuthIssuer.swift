import HTTPTypes
import Logging
import Synchronization
import TollgateCore

/// The issuer's HTTP endpoints as plain functions of a request and its body, independent of any
/// server framework: `tollgate serve` mounts them on its listener, another Swift server can call
/// `handle(_:body:)` from its own routes.
///
/// Paths are relative to the issuer URL's path (`https://idp.example/team` serves
/// `/team/oauth2/token`); discovery is served at both well-known locations.
public final class OAuthIssuer: Sendable {
    public let options: IssuerOptions
    let store: any IssuerStore
    public let keys: KeyRing
    let logger: Logger
    let now: @Sendable () -> Int
    /// The issuer URL's path, without a trailing slash (`""` for a bare host).
    let basePath: String
    /// Each endpoint's path under `basePath` (`options.endpoints`, or the default), and back.
    let endpointPaths: [Endpoint: String]
    let endpointsByPath: [String: Endpoint]
    /// The grants revoked within the last access-token lifetime, for the gate in this process.
    public let revokedGrants = RevokedGrantSet()
    /// Where `refreshRevokedGrants()` continues from (`revoked_at` of the store's rows).
    private let revocationsSeen = Mutex<Int?>(nil)
    /// The cost of the users' password hashes (`scrypt$N$r$p`), and the dummy hash per cost.
    let knownPasswordCost = Mutex<String?>(nil)
    let dummyHashes = Mutex<[String: String]>([:])
    /// The DPoP proofs the token endpoint took, so none is taken twice.
    let dpopReplays: DPoPReplayCache
    /// The server nonces of the token and userinfo endpoints (RFC 9449 §8–9).
    let dpopNonces: DPoPNonces
    /// Clients known by a metadata document URL, fetched and cached.
    let clientDocuments: ClientMetadataDocuments

    public init(
        options: IssuerOptions,
        store: any IssuerStore,
        keys: KeyRing,
        logger: Logger = Logger(label: "tollgate.issuer"),
        now: @escaping @Sendable () -> Int = { Int(wallClockSeconds()) }
    ) {
        self.options = options
        self.store = store
        self.keys = keys
        self.logger = logger
        self.now = now
        clientDocuments = ClientMetadataDocuments(
            options: options.clientMetadataDocuments,
            certificatesReachIssuer: options.clientCertificates
        )
        dpopReplays = DPoPReplayCache(
            capacity: 100_000,
            window: options.dpop.proofLifetime + options.dpop.clockSkew + 1
        )
        dpopNonces = DPoPNonces(secret: options.dpop.nonceSecret, purpose: .authorizationServer)
        basePath = Self.path(of: options.issuer)
        var paths: [Endpoint: String] = [:]
        for endpoint in Endpoint.allCases {
            paths[endpoint] = endpoint.configurationName.flatMap { options.endpoints[$0] } ?? endpoint.rawValue
        }
        // The sign-in and consent forms live under the authorization endpoint.
        if let authorization = paths[.authorization] {
            paths[.login] = authorization + "/login"
            paths[.consent] = authorization + "/consent"
        }
        endpointPaths = paths
        endpointsByPath = Dictionary(paths.map { ($0.value, $0.key) }, uniquingKeysWith: { first, _ in first })
    }

    /// The client `id` names: a client of the store, or (when client ID metadata documents are
    /// on) the one a URL's document describes; `nil` when there is none or it cannot be used
    /// (the reason is logged, never shown).
    func client(id: String) async throws -> RegisteredClient? {
        guard clientDocuments.names(id) else { return try await store.client(id: id) }
        do {
            return try await clientDocuments.client(at: id, now: Double(now()))
        } catch {
            logger.notice("client metadata document refused", metadata: ["reason": "\(error.reason)"])
            return nil
        }
    }

    /// Loads (or, on first start, generates) the signing keys from `store`.
    public static func start(
        options: IssuerOptions,
        store: any IssuerStore,
        algorithm: SigningKey.Algorithm = .rs256,
        others: Set<SigningKey.Algorithm> = [],
        logger: Logger = Logger(label: "tollgate.issuer")
    ) async throws -> OAuthIssuer {
        let keys = try await KeyRing.load(
            from: store,
            algorithm: algorithm,
            others: others,
            timing: KeyRing.Timing(jwksMaxAge: options.jwksMaxAge, tokenLifetime: options.longestSignedTokenTTL),
            now: Int(wallClockSeconds())
        )
        return OAuthIssuer(options: options, store: store, keys: keys, logger: logger)
    }

    /// How the key ring times its stages for these options.
    public var keyTiming: KeyRing.Timing {
        KeyRing.Timing(jwksMaxAge: options.jwksMaxAge, tokenLifetime: options.longestSignedTokenTTL)
    }

    /// Moves the signing keys whose stage is over (see `KeyRing`); every replica runs it every
    /// `keyTiming.refreshInterval` seconds, which also picks up keys other replicas stored.
    public func advanceKeys() async throws {
        // A key that a client registered outside the configuration signs with stays.
        let registered = Set(
            try await store.clients().compactMap { client in
                client.revoked ? nil : client.idTokenSignedResponseAlg.flatMap(SigningKey.Algorithm.init)
            }
        )
        try await keys.advance(store: store, timing: keyTiming, now: now(), alsoInUse: registered)
    }

    /// Seconds between sweeps: a minute, or the refresh reuse interval when that is shorter, so
    /// a retry answer outlives its window by at most that much.
    public var sweepInterval: Int {
        options.refreshTokenReuseInterval > 0 ? min(60, options.refreshTokenReuseInterval) : 60
    }

    /// Deletes what expired and the refresh retry answers whose window closed; every replica
    /// runs it every `sweepInterval` seconds.
    public func sweep() async throws -> Int {
        let at = now()
        return try await store.deleteExpired(before: at, answersSpentBefore: at - options.refreshTokenReuseInterval)
    }

    /// Seconds between two reads of the store's revoked grants (`refreshRevokedGrants()`): the
    /// longest a JWT of a grant revoked by another replica still passes this process's gate.
    public static let revocationPollInterval = 2

    /// Reads the grants revoked since the last read (by any replica, or the administration
    /// commands) into `revokedGrants`, and forgets those whose tokens have all expired.
    public func refreshRevokedGrants() async throws {
        let at = now()
        // Replicas' clocks differ: read a minute back (inserting again is harmless).
        let since = revocationsSeen.withLock { $0 }.map { $0 - 60 } ?? 0
        for grant in try await store.revokedGrants(since: since, now: at) {
            revokedGrants.insert(grant.grantID, until: min(grant.until, grant.revokedAt + revokedGrantMemory))
        }
        revocationsSeen.withLock { $0 = at }
        revokedGrants.prune(now: at)
    }

    /// How long after its revocation a grant stays in `revokedGrants`: its JWTs live at most one
    /// access-token lifetime.
    var revokedGrantMemory: Int { options.longestAccessTokenTTL + 60 }

    /// Revokes `grantID` in the store and in this process's gate at once.
    func revokeGrant(_ grantID: String) async throws {
        let at = now()
        try await store.revokeGrant(grantID, until: at + options.grantLifetime, now: at)
        noteRevoked(grantID)
    }

    /// Tells this process's gate that the store revoked `grantID` (in a transaction of its own).
    func noteRevoked(_ grantID: String?) {
        guard let grantID else { return }
        revokedGrants.insert(grantID, until: now() + revokedGrantMemory)
    }

    // MARK: - Paths

    enum Endpoint: String, CaseIterable {
        case openIDConfiguration = "/.well-known/openid-configuration"
        case authorizationServerMetadata = "/.well-known/oauth-authorization-server"
        case jwks = "/oauth2/jwks"
        case token = "/oauth2/token"
        case introspection = "/oauth2/introspect"
        case revocation = "/oauth2/revoke"
        case authorization = "/oauth2/authorize"
        case login = "/oauth2/authorize/login"
        case consent = "/oauth2/authorize/consent"
        case userinfo = "/oauth2/userinfo"
        case endSession = "/oauth2/end_session"
        case deviceAuthorization = "/oauth2/device_authorization"
        case device = "/oauth2/device"
        case consentDecision = "/oauth2/consent"
        case registration = "/oauth2/register"

        /// Its name under `endpoints:`; `nil` for those that do not move (discovery, and the
        /// forms, which follow the authorization endpoint).
        var configurationName: String? {
            switch self {
            case .openIDConfiguration, .authorizationServerMetadata, .login, .consent: nil
            case .jwks: "jwks"
            case .token: "token"
            case .introspection: "introspection"
            case .revocation: "revocation"
            case .authorization: "authorization"
            case .userinfo: "userinfo"
            case .endSession: "end_session"
            case .deviceAuthorization: "device_authorization"
            case .device: "device"
            case .consentDecision: "consent"
            case .registration: "registration"
            }
        }

        static let configurationNames = allCases.compactMap(\.configurationName)
    }

    /// The path of `endpoint`, the issuer URL's path included.
    func path(_ endpoint: Endpoint) -> String { basePath + (endpointPaths[endpoint] ?? endpoint.rawValue) }

    /// The URL of `endpoint`.
    func url(_ endpoint: Endpoint) -> String {
        var base = options.issuer
        while base.hasSuffix("/") { base.removeLast() }
        return base + (endpointPaths[endpoint] ?? endpoint.rawValue)
    }

    /// The paths this issuer answers, for a server's route table.
    public var paths: [String] {
        var paths = Endpoint.allCases.map { path($0) }
        // RFC 8414 §3.1: for an issuer with a path, the well-known part comes first.
        if !basePath.isEmpty { paths.append(Endpoint.authorizationServerMetadata.rawValue + basePath) }
        return paths
    }

    /// Whether `path` (without query) is one of the issuer's.
    public func handles(path: String) -> Bool { endpoint(for: path) != nil }

    func endpoint(for path: String) -> Endpoint? {
        if !basePath.isEmpty, path == Endpoint.authorizationServerMetadata.rawValue + basePath {
            return .authorizationServerMetadata
        }
        guard path.hasPrefix(basePath) else { return nil }
        return endpointsByPath[String(path.dropFirst(basePath.utf8.count))]
    }

    static func path(of url: String) -> String {
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        // ["https:", "", "host", "rest"]
        guard parts.count == 4, parts[0].hasSuffix(":"), parts[1].isEmpty else { return "" }
        let rest = "/" + parts[3]
        guard let slash = rest.firstIndex(of: "/") else { return "" }
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        return path
    }

    // MARK: - Requests

    /// Answers one request from the client at `clientAddress` (for the per-address limits; `nil`
    /// when unknown, and only the per-account limits apply). `clientCertificate` is the RFC 8705
    /// thumbprint (base64url SHA-256 of the DER) of the certificate the client presented over
    /// TLS, when it did: tokens of clients declared for certificate-bound tokens are bound to it.
    /// `body` is the whole request body (the caller bounds its size).
    public func handle(
        _ request: HTTPRequest,
        body: [UInt8],
        clientAddress: String?,
        clientCertificate: String? = nil
    ) async -> IssuerResponse {
        await Self.$clientAddress.withValue(clientAddress) {
            await Self.$clientCertificate.withValue(clientCertificate) { await handle(request, body: body) }
        }
    }

    /// The client certificate of the request being answered (`handle(_:body:clientAddress:clientCertificate:)`).
    @TaskLocal static var clientCertificate: String?

    /// Answers one request. `body` is the whole request body (the caller bounds its size).
    public func handle(_ request: HTTPRequest, body: [UInt8]) async -> IssuerResponse {
        let target = request.path ?? "/"
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        guard let endpoint = endpoint(for: path) else {
            return respond(IssuerError(.notFound, "no such endpoint"))
        }
        do {
            switch endpoint {
            case .openIDConfiguration, .authorizationServerMetadata:
                try requireMethod(request, [.get, .head])
                return .json(discoveryDocument(), headers: cacheFor(options.jwksMaxAge))
            case .jwks:
                try requireMethod(request, [.get, .head])
                var fields = cacheFor(options.jwksMaxAge)
                fields[.contentType] = "application/jwk-set+json"
                return IssuerResponse(
                    head: HTTPResponse(status: .ok, headerFields: fields),
                    body: Array(keys.snapshot.document.utf8)
                )
            case .token:
                try requireMethod(request, [.post])
                return try await token(request, form: try form(request, body))
            case .introspection:
                try requireMethod(request, [.post])
                return try await introspect(request, form: try form(request, body))
            case .revocation:
                try requireMethod(request, [.post])
                return try await revoke(request, form: try form(request, body))
            case .authorization:
                try requireMethod(request, [.get, .post])
                let parameters = request.method == .post ? try form(request, body) : try query(of: target)
                return try await authorize(request, parameters: parameters)
            case .login:
                try requireMethod(request, [.post])
                return try await login(request, form: try form(request, body))
            case .consent:
                try requireMethod(request, [.post])
                return try await consent(request, form: try form(request, body))
            case .userinfo:
                try requireMethod(request, [.get, .post])
                return try await userinfo(request, body: body)
            case .endSession:
                try requireMethod(request, [.get, .post])
                let parameters = request.method == .post ? try form(request, body) : try query(of: target)
                return try await endSession(request, parameters: parameters)
            case .deviceAuthorization:
                try requireMethod(request, [.post])
                return try await deviceAuthorization(request, form: try form(request, body))
            case .device:
                try requireMethod(request, [.get, .post])
                if request.method == .get { return try await devicePage(request, parameters: try query(of: target)) }
                return try await deviceEntry(request, form: try form(request, body))
            case .consentDecision:
                try requireMethod(request, [.post])
                return try await consentDecision(request, body: body)
            case .registration:
                try requireMethod(request, [.post])
                return try await register(request, body: body)
            }
        } catch let error as IssuerError {
            return respond(error)
        } catch let error as MethodNotAllowed {
            var response = respond(IssuerError(.methodNotAllowed, "method not allowed"))
            response.head.headerFields[.allow] = error.allowed.map(\.rawValue).joined(separator: ", ")
            return response
        } catch {
            logger.error("issuer request failed", metadata: ["endpoint": "\(endpoint.rawValue)", "error": "\(error)"])
            return respond(IssuerError(.serverError, "the request could not be completed"))
        }
    }

    /// The answer to `error`, as `IssuerError`'s table says: a page for the person; at the
    /// authorization endpoint with a known redirect URI, the client's redirect when the URI is
    /// trusted and a page when it is not; otherwise the JSON answer with its challenge.
    func respond(_ error: IssuerError, target: AuthorizationTarget? = nil) -> IssuerResponse {
        let entry = error.entry
        var response: IssuerResponse
        switch (entry.presentation, target) {
        case (.page, _):
            response = errorPage(error.description, status: entry.status)
        case (.protocolError, let target?) where target.trusted:
            response = authorizationResponse(
                to: target.redirectURI,
                mode: target.responseMode,
                ["error": entry.error, "error_description": error.description, "state": target.state]
            )
        case (.protocolError, .some):
            response = errorPage(
                "The application's request cannot be completed: \(error.description).",
                status: entry.status
            )
        case (.protocolError, nil):
            return error.response(realm: options.issuer)
        }
        if let wait = error.retryAfter { response.head.headerFields[.retryAfter] = String(max(1, wait)) }
        return response
    }

    struct MethodNotAllowed: Error {
        let allowed: [HTTPRequest.Method]
    }

    func requireMethod(_ request: HTTPRequest, _ allowed: [HTTPRequest.Method]) throws {
        if !allowed.contains(request.method) { throw MethodNotAllowed(allowed: allowed) }
    }

    func cacheFor(_ seconds: Int) -> HTTPFields {
        var fields = HTTPFields()
        fields[.cacheControl] = "public, max-age=\(seconds)"
        return fields
    }

    /// The form body (RFC 6749 §3.2: `application/x-www-form-urlencoded`, no parameter twice).
    func form(_ request: HTTPRequest, _ body: [UInt8]) throws(IssuerError) -> [String: String] {
        let contentType = request.headerFields[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            throw .invalidRequest("the body must be application/x-www-form-urlencoded")
        }
        guard let pairs = FormURLEncoding.decode(body) else { throw .invalidRequest("the form is malformed") }
        var form: [String: String] = [:]
        for (name, value) in pairs {
            if form[name] != nil { throw .invalidRequest("'\(name)' is given more than once") }
            form[name] = value
        }
        return form
    }

    /// The query of `target` as parameters, none of them twice.
    func query(of target: String) throws(IssuerError) -> [String: String] {
        guard let question = target.firstIndex(of: "?") else { return [:] }
        guard let pairs = FormURLEncoding.decode(Array(target[target.index(after: question)...].utf8)) else {
            throw .invalidRequest("the query is malformed")
        }
        var parameters: [String: String] = [:]
        for (name, value) in pairs {
            if parameters[name] != nil { throw .invalidRequest("'\(name)' is given more than once") }
            parameters[name] = value
        }
        return parameters
    }

    // MARK: - Discovery

    func discoveryDocument() -> JSONValue {
        let grants = GrantType.allCases.filter { options.grantTypes.contains($0) }.map { JSONValue.string($0.rawValue) }
        // Each scope once, in order, though two APIs (or an API and the OpenID scopes) share it.
        var scopes: [String] = []
        for scope in options.supportedScopes + options.apis.flatMap(\.scopes) where !scopes.contains(scope) {
            scopes.append(scope)
        }
        var document = discoveryFields(grants: grants, scopes: scopes)
        if options.grantTypes.contains(.deviceCode) {
            document["device_authorization_endpoint"] = .string(url(.deviceAuthorization))
        }
        if options.enableDynamicRegistration { document["registration_endpoint"] = .string(url(.registration)) }
        if options.clientMetadataDocuments.enabled { document["client_id_metadata_document_supported"] = .bool(true) }
        // RFC 8705 §3.3: tokens bound to the client certificate of the token request.
        if options.clientCertificates { document["tls_client_certificate_bound_access_tokens"] = .bool(true) }
        document["dpop_signing_alg_values_supported"] = .array(
            options.dpop.algorithms.map(\.rawValue).sorted().map(JSONValue.string)
        )
        return .object(document)
    }

    /// The algorithms an ID token can be signed with: each one the key ring holds an active key
    /// of, and the HS algorithms when client secrets are kept plain (the secret is the key).
    var idTokenAlgorithms: [String] {
        let held = keys.snapshot.activeByAlgorithm.keys.sorted().map(\.rawValue)
        // HS256 (a registered client's 43-byte secret is long enough for it); HS384 and HS512
        // only for clients declared with a secret long enough (`symmetricAlgorithms`).
        let symmetric = ["HS256", "HS384", "HS512"].filter { $0 == "HS256" || options.symmetricAlgorithms.contains($0) }
        return held + (options.storeClientSecret == .plain ? symmetric : [])
    }

    /// The ID token's own claims, then every claim a scope the issuer offers releases.
    private var claimsSupported: [String] {
        var names = ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "at_hash", "azp"]
        let offered = options.supportedScopes.flatMap { options.scopeClaims[$0] ?? [] }
        for name in offered + options.apis.flatMap(\.claims) where !names.contains(name) { names.append(name) }
        return names
    }

    private func discoveryFields(grants: [JSONValue], scopes: [String]) -> [String: JSONValue] {
        [
            "issuer": .string(options.issuer),
            "jwks_uri": .string(url(.jwks)),
            "token_endpoint": .string(url(.token)),
            "introspection_endpoint": .string(url(.introspection)),
            "revocation_endpoint": .string(url(.revocation)),
            "authorization_endpoint": .string(url(.authorization)),
            "userinfo_endpoint": .string(url(.userinfo)),
            "end_session_endpoint": .string(url(.endSession)),
            "claims_supported": .array(claimsSupported.map(JSONValue.string)),
            "acr_values_supported": .array([.string(options.acr)]),
            "grant_types_supported": .array(grants),
            // OAuth 2.1: the authorization code flow only, no implicit or hybrid response types.
            "response_types_supported": .array([.string("code")]),
            "response_modes_supported": .array([.string("query"), .string("form_post")]),
            // OpenID Connect Discovery: the defaults would say request_uri is supported.
            "request_parameter_supported": .bool(false),
            "request_uri_parameter_supported": .bool(false),
            "scopes_supported": .array(scopes.map(JSONValue.string)),
            "token_endpoint_auth_methods_supported": .array(
                ["client_secret_basic", "client_secret_post", "none"].map(JSONValue.string)
            ),
            "introspection_endpoint_auth_methods_supported": .array(
                ["client_secret_basic", "client_secret_post"].map(JSONValue.string)
            ),
            "revocation_endpoint_auth_methods_supported": .array(
                ["client_secret_basic", "client_secret_post", "none"].map(JSONValue.string)
            ),
            "code_challenge_methods_supported": .array([.string("S256")]),
            "subject_types_supported": .array([.string(options.pairwiseSecret == nil ? "public" : "pairwise")]),
            "id_token_signing_alg_values_supported": .array(idTokenAlgorithms.map(JSONValue.string)),
            "authorization_response_iss_parameter_supported": .bool(true),
        ]
    }
}
