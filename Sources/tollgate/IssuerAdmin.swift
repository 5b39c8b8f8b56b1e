import ArgumentParser
import TollgateCore
import TollgateIssuer

/// The `issuer:` section of a configuration file and its storage, opened for one command.
struct IssuerAdminContext {
    let settings: LocalIssuerSettings
    let options: IssuerOptions
    let store: any IssuerStore

    static func open(_ path: String) async throws -> IssuerAdminContext {
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: path)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        guard let settings = configuration.issuerSettings else {
            printError("error: \(path) has no issuer: section")
            throw ExitCode(2)
        }
        if case .memory = settings.storage {
            printError("error: the issuer keeps its state in memory; only the running process can change it")
            throw ExitCode(2)
        }
        let store = try await IssuerStorage.open(settings.storage)
        return IssuerAdminContext(settings: settings, options: IssuerOptions(settings: settings), store: store)
    }

    /// Runs `body`, then closes the storage whatever happened.
    static func with(_ path: String, _ body: (IssuerAdminContext) async throws -> Void) async throws {
        let context = try await open(path)
        do {
            try await body(context)
        } catch let failure as IssuerAdministration.Failure {
            try? await context.store.close()
            printError("error: \(failure)")
            throw ExitCode(1)
        } catch {
            try? await context.store.close()
            throw error
        }
        try await context.store.close()
    }
}

struct RotateKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-keys",
        abstract:
            "Start a signing key rotation: a new key is published now and signs once it has been published for longer than the JWKS max-age."
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    @Option(
        help:
            "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA (default: the configured signing_algorithm); each algorithm's key rotates on its own."
    )
    var algorithm: String?

    func run() async throws {
        try await IssuerAdminContext.with(config) { context in
            let name = algorithm ?? context.settings.signingAlgorithm
            guard let algorithm = SigningKey.Algorithm(rawValue: name) else {
                throw IssuerAdministration.Failure.invalid(
                    "'\(name)' is not one of \(SigningKey.Algorithm.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            let now = Int(wallClockSeconds())
            let timing = KeyRing.Timing(
                jwksMaxAge: context.options.jwksMaxAge,
                tokenLifetime: context.options.longestSignedTokenTTL
            )
            let key = try await KeyRing.rotate(store: context.store, algorithm: algorithm, timing: timing, now: now)
            print("new \(key.algorithm) key \(key.keyID): published now, signing in \(timing.publishedBeforeSigning)s")
            print("the current key stays published for \(timing.tokenLifetime)s after that, until its tokens expire")
        }
    }
}

struct CreateClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-client",
        abstract: "Register a client; a confidential client's secret is printed once."
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    @Option(name: .customLong("id"), help: "The client id, such as @team/web.")
    var clientID: String

    @Option(help: "web, spa, native, machine or device.")
    var type: String

    @Option(name: .customLong("redirect-uri"), help: "A redirect URI (repeatable).")
    var redirectURIs: [String] = []

    @Option(name: .customLong("post-logout-redirect-uri"), help: "A post-logout redirect URI (repeatable).")
    var postLogoutRedirectURIs: [String] = []

    @Option(name: .customLong("scope"), help: "A scope the client may be granted (repeatable).")
    var scopes: [String] = []

    @Option(name: .customLong("grant-type"), help: "A grant type (repeatable; default: the type's).")
    var grantTypes: [String] = []

    @Flag(help: "A first-party client: no consent page.")
    var skipConsent = false

    @Option(name: .customLong("require-pkce"), help: "true (the default for every type) or false.")
    var requirePKCE: Bool?

    @Option(
        name: .customLong("access-token-ttl"),
        help: "Its access tokens' lifetime (30m, 3600; default: the issuer's)."
    )
    var accessTokenTTL: String?

    @Option(name: .customLong("refresh-token-ttl"), help: "Its refresh tokens' lifetime (default: the issuer's).")
    var refreshTokenTTL: String?

    @Option(name: .customLong("id-token-ttl"), help: "Its ID tokens' lifetime (default: the issuer's).")
    var idTokenTTL: String?

    @Option(
        name: .customLong("id-token-signed-response-alg"),
        help: "Its ID tokens' algorithm (default: signing_algorithm; HS256/384/512 with a secret kept plain)."
    )
    var idTokenAlgorithm: String?

    func run() async throws {
        try await IssuerAdminContext.with(config) { context in
            guard let kind = RegisteredClient.Kind(rawValue: type) else {
                throw IssuerAdministration.Failure.invalid("the type must be web, spa, native, machine or device")
            }
            var grants: Set<GrantType>?
            if !grantTypes.isEmpty {
                grants = []
                for name in grantTypes {
                    let full = name == "device_code" ? GrantType.deviceCode.rawValue : name
                    guard let grant = GrantType(rawValue: full) else {
                        throw IssuerAdministration.Failure.invalid("'\(name)' is not a grant type")
                    }
                    grants?.insert(grant)
                }
            }
            let settings = IssuerAdministration.ClientSettings(
                requirePKCE: requirePKCE,
                accessTokenTTL: try accessTokenTTL.map { try seconds($0) },
                refreshTokenTTL: try refreshTokenTTL.map { try seconds($0) },
                idTokenTTL: try idTokenTTL.map { try seconds($0) },
                idTokenSignedResponseAlg: idTokenAlgorithm
            )
            let (client, secret) = try await IssuerAdministration.createClient(
                id: clientID,
                kind: kind,
                redirectURIs: redirectURIs,
                postLogoutRedirectURIs: postLogoutRedirectURIs,
                scopes: scopes,
                grantTypes: grants,
                skipConsent: skipConsent,
                settings: settings,
                options: context.options,
                store: context.store
            )
            print("client \(client.id) (\(client.kind.rawValue)) created")
            if let secret { print("client_secret: \(secret)  (shown once; \(storage(of: client)))") }
        }
    }
}

/// A duration of the command line (`30m`, `1d`, `3600`) in whole seconds.
func seconds(_ text: String) throws -> Int {
    guard let value = ConfigurationNode.parseDuration(text), value >= 0, value <= 3650 * 86400 else {
        throw IssuerAdministration.Failure.invalid("'\(text)' is not a duration such as 30m, 1d or 3600, up to 3650d")
    }
    return Int(value.rounded(.up))
}

/// How the client's secret is kept, as the store says.
func storage(of client: RegisteredClient) -> String {
    client.secret?.form == .plain
        ? "it is stored as it is (store_client_secret: plain)"
        : "only its SHA-256 digest is stored (store_client_secret: hashed)"
}

struct RotateSecret: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-secret",
        abstract: "Give a client a new secret, printed once; the old one is accepted until the grace ends."
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    @Argument(help: "The client id.")
    var clientID: String

    @Option(help: "How long the old secret stays accepted (such as 1h or 7d; default 0: refused at once).")
    var grace = "0"

    func run() async throws {
        try await IssuerAdminContext.with(config) { context in
            let now = Int(wallClockSeconds())
            let (client, secret) = try await IssuerAdministration.rotateSecret(
                id: clientID,
                grace: try seconds(grace),
                options: context.options,
                declared: context.settings.clients.contains { $0.id == clientID },
                store: context.store,
                now: now
            )
            print("client_secret: \(secret)  (shown once; \(storage(of: client)))")
            if let until = client.previousSecretExpiresAt {
                print("the previous secret is accepted for \(until - now)s more (until \(until), Unix time)")
            } else {
                print("the previous secret is no longer accepted")
            }
        }
    }
}

struct AddUser: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-user",
        abstract: "Add or replace a user of the built-in sign-in; the password is read on standard input."
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    @Option(help: "The user name.")
    var username: String

    @Option(
        name: .customLong("claim"),
        help: """
            A claim as name=value (repeatable), such as email=ada@example.com; true, false, a JSON \
            list (["admins"]) or object ({"roles":["a"]}) keeps its type, anything else is text.
            """
    )
    var claims: [String] = []

    func run() async throws {
        var parsed: [String: JSONValue] = [:]
        for claim in claims {
            guard let equals = claim.firstIndex(of: "="), equals != claim.startIndex else {
                printError("error: a claim is name=value, not '\(claim)'")
                throw ExitCode(2)
            }
            let text = String(claim[claim.index(after: equals)...])
            // Booleans, lists and objects keep their type; anything else (numbers included: a
            // phone number or an id with leading zeros is text) stays a string.
            let typed = text == "true" || text == "false" || text.hasPrefix("[") || text.hasPrefix("{")
            parsed[String(claim[..<equals])] =
                typed ? (try? JSONParser.parse(Array(text.utf8))) ?? .string(text) : .string(text)
        }
        guard let password = readLine(strippingNewline: true), !password.isEmpty else {
            printError("error: no password on standard input")
            throw ExitCode(2)
        }
        try await IssuerAdminContext.with(config) { context in
            try await IssuerAdministration.addUser(
                username: username,
                password: password,
                claims: parsed,
                store: context.store
            )
            print("user \(username) saved")
        }
    }
}

struct ListClients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list-clients",
        abstract: "List the registered clients (never their secrets)."
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    func run() async throws {
        try await IssuerAdminContext.with(config) { context in
            for client in try await context.store.clients() {
                let grants = GrantType.allCases.filter(client.grantTypes.contains).map(\.rawValue)
                var line = "\(client.id)\t\(client.kind.rawValue)\t\(client.revoked ? "revoked" : "active")"
                line += "\tgrants=\(grants.joined(separator: ","))\tscopes=\(client.scopes.joined(separator: " "))"
                if !client.redirectURIs.isEmpty {
                    line += "\tredirect_uris=\(client.redirectURIs.joined(separator: ","))"
                }
                if client.kind != .machine {
                    line += "\tpkce=\(context.options.requiresPKCE(client) ? "required" : "optional")"
                }
                if let ttl = client.accessTokenTTL { line += "\taccess_token_ttl=\(ttl)" }
                if let ttl = client.refreshTokenTTL { line += "\trefresh_token_ttl=\(ttl)" }
                if let ttl = client.idTokenTTL { line += "\tid_token_ttl=\(ttl)" }
                if let algorithm = client.idTokenSignedResponseAlg { line += "\tid_token_alg=\(algorithm)" }
                if let until = client.previousSecretExpiresAt, until > Int(wallClockSeconds()) {
                    line += "\tprevious_secret_until=\(until)"
                }
                print(line)
            }
        }
    }
}

struct RevokeClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-client",
        abstract: "Revoke a client and every token it holds."
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    @Argument(help: "The client id.")
    var clientID: String

    func run() async throws {
        try await IssuerAdminContext.with(config) { context in
            try await IssuerAdministration.revokeClient(id: clientID, store: context.store)
            print("client \(clientID) revoked, with its tokens")
        }
    }
}
