import HTTPTypes
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

    static func start(_ configuration: TollgateConfiguration) async throws -> LocalIssuer? {
        guard let settings = configuration.localIssuer else { return nil }
        let issuer = try await OAuthIssuer.start(settings: settings, store: MemoryIssuerStore())
        let source = IssuerVerificationSource(issuer: issuer, issuerName: settings.name, audiences: settings.audiences)
        return LocalIssuer(
            issuer: issuer,
            endpoints: IssuerEndpoints(issuer: issuer),
            inProcess: InProcessIssuers(sources: [settings.name: (keys: source, introspection: source)])
        )
    }
}
