/// How the proxy's listener treats connections (DESIGN step 1).
public struct ServerSettings: Sendable, Equatable {
    /// Total bytes of all request header lines; more is answered 431.
    public var maximumHeaderBytes = 32 * 1024
    /// Number of request header fields; more is answered 431.
    public var maximumHeaderCount = 100
    /// Length of the request target; longer is answered 414.
    public var maximumRequestLine = 8 * 1024
    /// A client must send a complete request head within this time after connecting or after
    /// its previous response.
    public var headerTimeout: Double = 10
    /// A keep-alive connection with no request in flight is closed after this time.
    public var idleTimeout: Double = 60
    /// The origin clients reach this listener at (`https://api.example`): the `htu` of a DPoP
    /// proof is compared with it, never with a client's `Host`.
    public var publicURL: String?
    /// Whether `trusted_proxies` also vouch for client certificates in RFC 9440 `Client-Cert`
    /// (off: only a certificate presented over this listener's TLS binds).
    public var trustsClientCertHeader = false
    /// SIGTERM/SIGINT: how long in-flight requests may still run.
    public var drainGrace: Double = 30
    /// Accept HTTP/2 without TLS when the client starts with the HTTP/2 preface (prior knowledge).
    public var h2c = true
    /// Terminate TLS on the listener (ALPN `h2`, `http/1.1`).
    public var tls: TLSFiles?
    /// Peers whose `X-Forwarded-*` headers are believed (appended to, not replaced) and who may
    /// name the original request on the forward-auth endpoint.
    public var trustedProxies: [AddressRange] = []
    /// One JSON line per request on standard output.
    public var accessLog = true
    /// Bytes of log lines that may wait for a slow reader of standard output; past that, lines
    /// are dropped and counted rather than blocking a request.
    public var accessLogBufferBytes = 4 << 20
    /// Event loop threads; `nil`: one per CPU this process may run on (its affinity mask), so a
    /// sidecar pinned to one core runs one loop instead of contending with itself.
    public var threads: Int?

    public init() {}
}

/// A PEM certificate chain and private key, by file path.
public struct TLSFiles: Sendable, Equatable {
    public var certificateFile: String
    public var keyFile: String
    /// CA certificates (PEM) client certificates are checked against (RFC 8705); `nil`: none asked.
    public var clientCAFile: String?
    /// Without one the handshake fails; otherwise a client may present none.
    public var requiresClientCertificate = false

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// The service behind the proxy.
public struct UpstreamSettings: Sendable, Equatable {
    public var url: String
    public var connectTimeout: Double = 2
    /// Time to the first byte of the upstream's response head; past it the client gets 504.
    public var responseTimeout: Double = 60
    /// Idle keep-alive connections kept per event loop.
    public var maximumIdleConnections = 64
    /// Speak HTTP/2 without TLS to the upstream (gRPC services); HTTP/1.1 otherwise.
    public var h2c = false

    public init(url: String) {
        self.url = url
    }

    /// Scheme, host and port of `url` (validated when loaded).
    public var endpoint: (secure: Bool, host: String, port: Int, basePath: String) {
        let secure = url.hasPrefix("https://")
        var rest = Substring(url.dropFirst(secure ? 8 : 7))
        var basePath = ""
        if let slash = rest.firstIndex(of: "/") {
            basePath = String(rest[slash...])
            rest = rest[..<slash]
        }
        if basePath == "/" { basePath = "" }
        var host = String(rest)
        var port = secure ? 443 : 80
        if rest.hasPrefix("[") {
            if let close = rest.firstIndex(of: "]") {
                host = String(rest[rest.index(after: rest.startIndex)..<close])
                let after = rest[rest.index(after: close)...]
                if after.hasPrefix(":"), let value = Int(after.dropFirst()) { port = value }
            }
        } else if let colon = rest.lastIndex(of: ":"), let value = Int(rest[rest.index(after: colon)...]) {
            host = String(rest[..<colon])
            port = value
        }
        return (secure, host, port, basePath)
    }
}

/// The forward-auth endpoint for gateways (nginx `auth_request`, Traefik ForwardAuth, Envoy
/// ext_authz, Caddy `forward_auth`).
public struct ForwardAuthSettings: Sendable, Equatable {
    /// Requests to this path on the listener are answered by forward-auth, never proxied.
    public var path: String = "/_tollgate/auth"

    public init() {}
}

/// An http(s) origin: scheme and authority only, lower-cased, without a default port.
public struct PublicOrigin: Sendable, Equatable {
    public let text: String

    public init?(_ value: String) {
        let lowered = value.lowercased()
        let scheme: String
        if lowered.hasPrefix("https://") {
            scheme = "https"
        } else if lowered.hasPrefix("http://") {
            scheme = "http"
        } else {
            return nil
        }
        var authority = String(lowered.dropFirst(scheme.count + 3))
        if authority.hasSuffix("/") { authority.removeLast() }
        guard !authority.isEmpty,
            !authority.contains(where: { "/?#@ \t\\".contains($0) || !$0.isASCII || $0.asciiValue! < 0x21 })
        else { return nil }
        let defaultPort = scheme == "https" ? ":443" : ":80"
        if authority.hasSuffix(defaultPort) { authority.removeLast(defaultPort.count) }
        text = scheme + "://" + authority
    }
}
