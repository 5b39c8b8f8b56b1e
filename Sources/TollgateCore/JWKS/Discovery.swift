import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// OpenID Connect Discovery 1.0 / RFC 8414: finds an issuer's `jwks_uri`.
enum Discovery {
    static func documentURL(issuer: String) -> String {
        var base = issuer
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/.well-known/openid-configuration"
    }

    static func jwksURI(
        issuer: String,
        client: HTTPClient,
        policy: KeySetRefreshPolicy
    ) async throws(OutboundHTTP.Failure)
        -> String
    {
        let url = documentURL(issuer: issuer)
        if let problem = OutboundHTTP.checkScheme(of: url, allowInsecureHTTP: policy.allowInsecureHTTP) {
            throw problem
        }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await OutboundHTTP.execute(
            request,
            client: client,
            timeout: .milliseconds(Int64(policy.timeout * 1000)),
            maximumBodyBytes: policy.maximumBodyBytes
        )
        guard response.status == .ok else {
            throw OutboundHTTP.Failure(reason: "the discovery document answered \(response.status.code)")
        }
        guard let document = try? JSONParser.parse(response.body.readableBytesView) else {
            throw OutboundHTTP.Failure(reason: "the discovery document is not JSON")
        }
        // OpenID Connect Discovery §4.3: the document's issuer must be exactly the one asked for.
        guard document["issuer"]?.stringValue == issuer else {
            throw OutboundHTTP.Failure(reason: "the discovery document names a different issuer")
        }
        guard let jwksURI = document["jwks_uri"]?.stringValue else {
            throw OutboundHTTP.Failure(reason: "the discovery document has no jwks_uri")
        }
        if let problem = OutboundHTTP.checkScheme(of: jwksURI, allowInsecureHTTP: policy.allowInsecureHTTP) {
            throw problem
        }
        return jwksURI
    }
}
