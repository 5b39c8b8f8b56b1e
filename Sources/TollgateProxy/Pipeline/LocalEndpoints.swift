import HTTPTypes

/// Endpoints the listener answers itself, before routing and without a token (the in-process
/// issuer's): their requests are never proxied. The executable supplies them; the proxy knows
/// nothing of what they are.
public protocol LocalEndpoints: Sendable {
    /// Whether the normalised `path` is one of these endpoints.
    func handles(path: String) -> Bool
    /// The answer to `request`.
    func respond(to request: LocalRequest) async -> (HTTPResponse, [UInt8])
}

/// A request for a local endpoint, whole.
public struct LocalRequest: Sendable {
    public var head: HTTPRequest
    /// The whole body (at most `maximumLocalBodyBytes`).
    public var body: [UInt8]
    /// The connection's peer, or, when the peer is a trusted proxy, the last address of its
    /// `X-Forwarded-For`.
    public var clientAddress: String
    /// The RFC 8705 thumbprint of the client certificate: the TLS connection's, or one a proxy
    /// trusted to vouch for certificates forwarded in `Client-Cert`.
    public var clientCertificate: String?

    public init(head: HTTPRequest, body: [UInt8], clientAddress: String, clientCertificate: String?) {
        self.head = head
        self.body = body
        self.clientAddress = clientAddress
        self.clientCertificate = clientCertificate
    }
}

/// Request bodies for local endpoints are forms and small JSON documents.
let maximumLocalBodyBytes = 64 * 1024
