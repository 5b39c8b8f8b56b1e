import HTTPTypes

/// Endpoints the listener answers itself, before routing and without a token (the in-process
/// issuer's): their requests are never proxied. The executable supplies them; the proxy knows
/// nothing of what they are.
public protocol LocalEndpoints: Sendable {
    /// Whether the normalised `path` is one of these endpoints.
    func handles(path: String) -> Bool
    /// The answer to `request`, whose whole body is `body` (at most `maximumBodyBytes`), from the
    /// client at `clientAddress`: the connection's peer, or, when the peer is a trusted proxy,
    /// the last address of its `X-Forwarded-For`.
    func respond(to request: HTTPRequest, body: [UInt8], clientAddress: String) async -> (HTTPResponse, [UInt8])
}

/// Request bodies for local endpoints are forms and small JSON documents.
let maximumLocalBodyBytes = 64 * 1024
