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

    func respond(to request: HTTPRequest, body: [UInt8]) async -> (HTTPResponse, [UInt8]) {
        let response = await issuer.handle(request, body: body)
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
        try await (store as? SQLiteIssuerStore)?.close()
    }

    static func start(_ configuration: TollgateConfiguration) async throws -> LocalIssuer? {
        guard let settings = configuration.localIssuer else { return nil }
        let store: any IssuerStore
        switch settings.storage {
        case .memory: store = MemoryIssuerStore()
        case .sqlite(let path): store = try await SQLiteIssuerStore.open(path: path)
        }
        let issuer = try await OAuthIssuer.start(settings: settings, store: store)
        let source = IssuerVerificationSource(issuer: issuer, issuerName: settings.name, audiences: settings.audiences)
        return LocalIssuer(
            issuer: issuer,
            endpoints: IssuerEndpoints(issuer: issuer),
            inProcess: InProcessIssuers(sources: [settings.name: (keys: source, introspection: source)]),
            store: store
        )
    }
}

/// Deletes the issuer's expired codes, sessions, pending sign-ins and tokens every minute, until
/// a graceful shutdown.
struct IssuerSweeperService: Service {
    let store: any IssuerStore
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let removed = try await store.deleteExpired(before: Int(wallClockSeconds()))
                    if removed > 0 { logger.debug("swept expired issuer records", metadata: ["count": "\(removed)"]) }
                } catch {
                    logger.warning("the issuer sweep failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(60))
            }
        }
    }
}
