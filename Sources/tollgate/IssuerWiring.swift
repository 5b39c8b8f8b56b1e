import HTTPTypes
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateIssuer
import TollgateProxy

/// Mounts the in-process issuer's endpoints on the proxy's listener (the proxy knows only
/// `LocalEndpoints`, the issuer only swift-http-types).
struct IssuerEndpoints: LocalEndpoints {
    let issuer: OAuthIssuer

    func handles(path: String) -> Bool { issuer.handles(path: path) }

    func respond(to request: LocalRequest) async -> (HTTPResponse, [UInt8]) {
        let response = await issuer.handle(
            request.head,
            body: request.body,
            clientAddress: request.clientAddress,
            clientCertificate: request.clientCertificate
        )
        return (response.head, response.body)
    }
}

/// The issuer of the configuration's `issuer:` section, and what the proxy needs of it.
struct LocalIssuer {
    let issuer: OAuthIssuer
    let endpoints: IssuerEndpoints
    let inProcess: InProcessIssuers
    let store: any IssuerStore

    func close() async throws {
        try await store.close()
    }

    static func start(_ configuration: TollgateConfiguration) async throws -> LocalIssuer? {
        guard var settings = configuration.issuerSettings else { return nil }
        // One `dpop:` section for the gate and the token endpoint alike.
        settings.dpop = configuration.dpop
        settings.clientCertificates =
            configuration.server.tls?.clientCAFile != nil || configuration.server.trustsClientCertHeader
        let store = try await IssuerStorage.open(settings.storage)
        let issuer = try await OAuthIssuer.start(settings: settings, store: store)
        // Grants revoked before this start are refused from the first request.
        try await issuer.refreshRevokedGrants()
        let source = IssuerVerificationSource(issuer: issuer, issuerName: settings.name, audiences: settings.audiences)
        return LocalIssuer(
            issuer: issuer,
            endpoints: IssuerEndpoints(issuer: issuer),
            inProcess: InProcessIssuers(
                sources: [settings.name: .init(keys: source, introspection: source, revocations: source)]
            ),
            store: store
        )
    }
}

/// Opens the storage a configuration names.
enum IssuerStorage {
    static func open(_ storage: LocalIssuerSettings.Storage) async throws -> any IssuerStore {
        switch storage {
        case .memory: MemoryIssuerStore()
        case .sqlite(let path): try await SQLiteIssuerStore.open(path: path)
        case .postgres(let settings): try await PostgresIssuerStore.open(settings)
        }
    }
}

/// Moves the issuer's signing keys through their stages and picks up keys other processes
/// stored (`tollgate issuer rotate-keys`, other replicas), every `keyTiming.refreshInterval`.
struct IssuerKeyService: Service {
    let issuer: OAuthIssuer
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(issuer.keyTiming.refreshInterval))
                do {
                    let before = issuer.keys.snapshot.active.keyID
                    try await issuer.advanceKeys()
                    let after = issuer.keys.snapshot.active.keyID
                    if before != after {
                        logger.info(
                            "issuer signing key rotated",
                            metadata: ["active": "\(after)", "retired": "\(before)"]
                        )
                    }
                } catch  where !Task.isCancelled {
                    logger.warning("the issuer's keys could not be refreshed", metadata: ["error": "\(error)"])
                } catch {}
            }
        }
    }
}

/// Reads the grants other replicas and the administration commands revoked into the issuer's
/// revoked set every `OAuthIssuer.revocationPollInterval` seconds, so the gate in this process
/// refuses their JWT access tokens.
struct IssuerRevocationService: Service {
    let issuer: OAuthIssuer
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await issuer.refreshRevokedGrants()
                } catch  where !Task.isCancelled {
                    logger.warning("the issuer's revoked grants could not be read", metadata: ["error": "\(error)"])
                } catch {}
                try? await Task.sleep(for: .seconds(OAuthIssuer.revocationPollInterval))
            }
        }
    }
}

/// Deletes the issuer's expired codes, sessions, pending sign-ins and tokens every minute, until
/// a graceful shutdown.
struct IssuerSweeperService: Service {
    let issuer: OAuthIssuer
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let removed = try await issuer.sweep()
                    if removed > 0 { logger.debug("swept expired issuer records", metadata: ["count": "\(removed)"]) }
                } catch  where !Task.isCancelled {
                    logger.warning("the issuer sweep failed", metadata: ["error": "\(error)"])
                } catch {}
                try? await Task.sleep(for: .seconds(issuer.sweepInterval))
            }
        }
    }
}
