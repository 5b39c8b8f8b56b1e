import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateIssuer
import TollgateProxy
import UnixSignals

@main
struct Tollgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tollgate",
        abstract: "Edge token verification: checks OAuth 2 access tokens in front of a service.",
        version: TollgateIssuer.version,
        subcommands: [Serve.self, Demo.self, CheckConfig.self, IssuerCommand.self, Inject.self]
    )

    /// The issuer module parses the `issuer:` section; it is registered before any command
    /// loads a configuration.
    static func main() async {
        LocalIssuerSettings.register()
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the proxy, the forward-auth endpoint and the admin listener.",
        discussion: """
            Reloads the configuration when the file changes or on SIGHUP (an invalid file is \
            refused and the running configuration keeps serving). SIGTERM or SIGINT drains: \
            /readyz turns false, new connections are refused, in-flight requests finish within \
            server.drain_grace.
            """
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file.")
    var config: String

    func run() async throws {
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        try await GateRunner.run(configuration, path: config)
    }
}

/// What `serve` and `demo` run: the issuer (when configured), the proxy, the admin listener and
/// the services that keep them current, until SIGTERM or SIGINT has drained them.
enum GateRunner {
    static func run(
        _ configuration: TollgateConfiguration,
        path: String,
        started: @Sendable (RunningProxy) -> Void = { _ in },
        services extra: [any Service] = []
    ) async throws {
        for warning in configuration.warnings { printError("warning: \(warning)") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "tollgate")
        // SIGHUP is trapped before anything listens: a reload asked for the moment the port
        // answers is queued, not the signal's default action (which ends the process).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        // SIGTERM and SIGINT too: one that arrives between the first answer and the service
        // group's start is then a graceful shutdown, not the default action.
        let stops = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let local: LocalIssuer?
        do {
            local = try await LocalIssuer.start(configuration)
        } catch {
            printError("error: cannot start the issuer: \(error)")
            throw ExitCode(1)
        }
        let proxy: RunningProxy
        do {
            proxy = try await RunningProxy.start(
                configuration: configuration,
                configurationPath: path,
                group: RunningProxy.makeEventLoopGroup(for: configuration),
                logger: logger,
                localEndpoints: local?.endpoints,
                inProcess: local?.inProcess ?? InProcessIssuers()
            )
        } catch {
            try? await local?.close()
            printError("error: cannot start: \(error)")
            throw ExitCode(1)
        }
        // One startup summary: a table on a terminal, one JSON line for a log collector.
        let summary = ConfigurationSummary(configuration)
        printError(isatty(STDERR_FILENO) != 0 ? summary.text : summary.json)
        logger.info(
            "listening",
            metadata: ["proxy": "\(configuration.listen)", "admin": "\(configuration.admin)", "port": "\(proxy.port)"]
        )
        started(proxy)
        let grace = Duration.milliseconds(Int64(configuration.server.drainGrace * 1000))
        let (keys, watcher, listeners) = proxy.services(grace: grace)
        // Shut down in reverse order: the listeners drain first, then reloads stop, then keys.
        var services: [any Service] = extra + [keys, watcher, SignalReloadService(proxy: proxy, signals: hangups)]
        if let local {
            services += [
                IssuerSweeperService(issuer: local.issuer, logger: logger),
                IssuerRevocationService(issuer: local.issuer, logger: logger),
                IssuerKeyService(issuer: local.issuer, logger: logger),
            ]
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(
                        service: StopOnSignalService(signals: stops),
                        successTerminationBehavior: .gracefullyShutdownGroup
                    )
                ]
                    + (services + [listeners]).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                logger: logger
            )
        )
        try await group.run()
        // The issuer's storage is closed last, after the listeners have drained.
        try? await local?.close()
    }
}

/// Ends on the first SIGTERM or SIGINT (trapped before the listeners open), which shuts the
/// group down gracefully: the listeners drain, then the services stop in reverse order.
struct StopOnSignalService: Service {
    let signals: UnixSignalsSequence

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in signals { return }
        }
    }
}

/// Reloads the configuration on SIGHUP, until a graceful shutdown.
struct SignalReloadService: Service {
    let proxy: RunningProxy
    /// Trapped before the listeners open; signals received since are buffered.
    let signals: UnixSignalsSequence

    func run() async throws {
        guard let path = proxy.configurationPath else { return }
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await proxy.runtime.reload(from: path)
            }
        }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and print the resolved route table."
    )

    @Argument(help: "The YAML configuration file.")
    var file: String

    func run() throws {
        let configuration: TollgateConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: file)
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        print("configuration \(file) is valid")
        let summary = ConfigurationSummary(configuration)
        print("issuers:")
        print(summary.issuerTable)
        if let local = configuration.issuerSettings {
            print("issuer in this process: \(local.name) \(local.issuer) [\(local.signingAlgorithm)]")
            switch local.storage {
            case .memory: print("  storage: memory (lost on restart)")
            case .sqlite(let path): print("  storage: sqlite \(path)")
            case .postgres(let postgres):
                print(
                    "  storage: postgres \(postgres.username)@\(postgres.host):\(postgres.port)/\(postgres.database)"
                        + (postgres.tls ? " (TLS)" : "")
                )
            }
            print(
                "  dynamic registration: \(local.enableDynamicRegistration ? "enabled" : "off"); JWKS max-age \(local.jwksMaxAge)s"
            )
            print("  grant types: \(local.grantTypes.joined(separator: ", "))")
            print(
                "  access tokens: \(local.jwtAccessToken ? "JWT for API scopes, else opaque" : "opaque"), \(local.accessTokenTTL)s;"
                    + " ID tokens \(local.idTokenTTL)s; refresh tokens \(local.refreshTokenTTL)s"
            )
            let algorithms = Set([local.signingAlgorithm] + local.clients.compactMap(\.idTokenSigningAlgorithm))
            print("  signing algorithms: \(algorithms.sorted().joined(separator: ", ")) (a key each)")
            let scopeClaims = IssuerOptions(settings: local).scopeClaims
            for scope in scopeClaims.keys.sorted() {
                print("  scope \(scope) releases: \(scopeClaims[scope]!.joined(separator: " "))")
            }
            for api in local.apis {
                let claims = api.claims.isEmpty ? "" : "; claims in its tokens: \(api.claims.joined(separator: " "))"
                print("  api \(api.audience): \(api.scopes.joined(separator: " "))\(claims)")
            }
            for client in local.clients {
                var settings: [String] = []
                let pkce =
                    client.requirePKCE ?? (["web", "machine"].contains(client.type) || local.requirePKCEForPublic)
                if client.type != "machine" { settings.append(pkce ? "PKCE required" : "PKCE optional") }
                if let ttl = client.accessTokenTTL { settings.append("access \(ttl)s") }
                if let ttl = client.refreshTokenTTL { settings.append("refresh \(ttl)s") }
                if let ttl = client.idTokenTTL { settings.append("ID token \(ttl)s") }
                if let algorithm = client.idTokenSigningAlgorithm { settings.append("ID tokens \(algorithm)") }
                let suffix = settings.isEmpty ? "" : " [\(settings.joined(separator: ", "))]"
                print("  client \(client.id) (\(client.type)): \(client.scopes.joined(separator: " "))\(suffix)")
            }
        }
        print("routes (first match wins):")
        print(summary.routeTable)
        for warning in configuration.warnings { printError("warning: \(warning)") }
    }
}

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleOutput.writeToStandardError(string)
    }
}

struct IssuerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issuer",
        abstract: "Administer the issuer in this process.",
        subcommands: [
            HashPassword.self, RotateKeys.self, CreateClient.self, AddUser.self, ListClients.self, RevokeClient.self,
            RotateSecret.self,
        ]
    )
}

struct HashPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Read a password on standard input and print its scrypt hash for users[].password_hash_file."
    )

    func run() throws {
        guard var password = readLine(strippingNewline: true), !password.isEmpty else {
            printError("error: no password on standard input")
            throw ExitCode(2)
        }
        print(try PasswordHash.make(password))
        password = ""
    }
}
