import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TollgateCore

/// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP
/// authorization rules' way for a client to be known without registering): a `client_id` that
/// is an https URL names a JSON document, fetched here, that describes the client.
///
/// The URL is anyone's to choose, so the fetch is held like an attacker's request: https only
/// (http only to a loopback host, and only when `allow_loopback_http`), no query, fragment, user
/// information or dot segments; the host resolved once and the connection made to that address
/// (no second lookup an attacker's DNS could answer otherwise), refused when it is private,
/// loopback, link-local or otherwise not public unless allowed; no redirects; a short timeout; a
/// small size bound. The document must name the URL as its `client_id`, list its redirect URIs
/// and use `none` as its token endpoint authentication (no shared secret can live in a public
/// document; `private_key_jwt` is not supported). Such a client is public and third-party: the
/// person is always asked, on a page that names the client by its id, the document's URL (a
/// `client_name` could be anyone's).
final class ClientMetadataDocuments: Sendable {
    let options: ClientMetadataDocumentOptions
    /// Documents and refusals, by URL, until they expire (a refusal for 30 s, so a URL that
    /// fails is not fetched again at every request).
    private let cache = Mutex<[String: (result: Result<RegisteredClient, Refusal>, expires: Double)]>([:])
    private static let maximumCachedDocuments = 10_000
    /// Fetches in flight, bounded: each holds a resolver thread and a connection.
    private let inFlight = Mutex(0)
    private static let maximumInFlight = 8
    private static let refusalSeconds = 30.0
    /// Host lookups block a thread (getaddrinfo): on threads of their own, so slow names stall
    /// nothing else.
    private static let resolver: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()

    /// Whether client certificates reach the token endpoint: a document asking for
    /// certificate-bound tokens is refused where none can (as dynamic registration refuses it).
    let certificatesReachIssuer: Bool

    init(options: ClientMetadataDocumentOptions, certificatesReachIssuer: Bool) {
        self.options = options
        self.certificatesReachIssuer = certificatesReachIssuer
    }

    struct Refusal: Error, Sendable {
        let reason: String
    }

    /// Whether `clientID` is a document URL this issuer would fetch (the rest of `client_id`s are
    /// looked up in the store).
    func names(_ clientID: String) -> Bool {
        options.enabled && (clientID.hasPrefix("https://") || clientID.hasPrefix("http://"))
    }

    /// The client `url` describes, from the cache or fetched.
    func client(at url: String, now: Double) async throws(Refusal) -> RegisteredClient {
        if let cached = cache.withLock({ $0[url] }), cached.expires > now { return try cached.result.get() }
        let started = inFlight.withLock { count in
            guard count < Self.maximumInFlight else { return false }
            count += 1
            return true
        }
        guard started else { throw Refusal(reason: "too many client metadata documents are being fetched") }
        defer { inFlight.withLock { $0 -= 1 } }
        let result: Result<RegisteredClient, Refusal>
        var seconds = Self.refusalSeconds
        do throws(Refusal) {
            let target = try checkedURL(url)
            let (body, maxAge) = try await fetch(url, target: target)
            result = .success(
                try Self.client(from: body, url: url, certificatesReachIssuer: certificatesReachIssuer)
            )
            seconds = min(
                max(maxAge ?? Double(options.defaultCacheSeconds), Double(options.minimumCacheSeconds)),
                Double(options.maximumCacheSeconds)
            )
        } catch {
            result = .failure(error)
        }
        cache.withLock { cache in
            if cache.count >= Self.maximumCachedDocuments { cache = cache.filter { $0.value.expires > now } }
            if cache.count < Self.maximumCachedDocuments { cache[url] = (result, now + seconds) }
        }
        return try result.get()
    }

    struct Target {
        let scheme: String
        /// Lower-cased, as checked.
        let host: String
        /// As the URL writes it (the HTTP client's own lookup key).
        let writtenHost: String
        let port: Int
    }

    /// The URL's parts, or why it cannot be a client ID (draft §3: https, a path, no query,
    /// fragment, user information or dot segments).
    func checkedURL(_ url: String) throws(Refusal) -> Target {
        guard url.utf8.count <= 2048, url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw Refusal(reason: "the client_id URL is too long or has characters a URL cannot")
        }
        let scheme = url.hasPrefix("https://") ? "https" : "http"
        let rest = url.dropFirst(scheme.count + 3)
        guard let slash = rest.firstIndex(of: "/") else { throw Refusal(reason: "the client_id URL has no path") }
        let authority = rest[..<slash]
        let path = rest[slash...]
        if url.contains("?") || url.contains("#") || authority.contains("@") {
            throw Refusal(reason: "the client_id URL has a query, a fragment or user information")
        }
        if path.count < 2
            || path.split(separator: "/", omittingEmptySubsequences: false).contains(where: {
                $0 == "." || $0 == ".."
            })
        {
            throw Refusal(reason: "the client_id URL's path is empty or has dot segments")
        }
        var host = String(authority)
        var port = scheme == "https" ? 443 : 80
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else {
                throw Refusal(reason: "the client_id URL's host is invalid")
            }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), value > 0, value < 65536 else {
                    throw Refusal(reason: "the client_id URL's port is invalid")
                }
                port = value
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let value = Int(host[host.index(after: colon)...]), value > 0, value < 65536 else {
                throw Refusal(reason: "the client_id URL's port is invalid")
            }
            port = value
            host = String(host[..<colon])
        }
        let writtenHost = host
        host = host.lowercased()
        guard !host.isEmpty else { throw Refusal(reason: "the client_id URL has no host") }
        let loopbackName = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        if scheme == "http" {
            guard options.allowLoopbackHTTP, loopbackName else {
                throw Refusal(reason: "a client_id URL must be https")
            }
        } else if port != 443 && !(options.allowLoopbackHTTP && loopbackName) {
            // Another port would make the issuer a port scanner of any host.
            throw Refusal(reason: "a client_id URL's port must be 443")
        }
        return Target(scheme: scheme, host: host, writtenHost: writtenHost, port: port)
    }

    /// One GET, to the address the host resolved to when it was checked.
    private func fetch(_ url: String, target: Target) async throws(Refusal) -> ([UInt8], Double?) {
        let address: SocketAddress
        do {
            address = try await Self.resolver.runIfActive {
                try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
            }
        } catch {
            throw Refusal(reason: "the client_id URL's host does not resolve")
        }
        guard let ip = address.ipAddress else { throw Refusal(reason: "the client_id URL's host does not resolve") }
        if let problem = Self.addressProblem(
            address,
            allowLoopback: options.allowLoopbackHTTP,
            allowPrivate: options.allowPrivateAddresses
        ) {
            throw Refusal(reason: "the client_id URL's host is \(problem)")
        }
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(Int64(options.timeout)), read: .seconds(Int64(options.timeout)))
        configuration.decompression = .disabled
        // The connection goes to the address just checked, whatever a second lookup would say;
        // keyed by the host both as written and lower-cased, so the client's lookup finds it.
        configuration.dnsOverride[target.host] = ip
        configuration.dnsOverride[target.writtenHost] = ip
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { client.shutdown { _ in } }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        do {
            let response = try await client.execute(request, timeout: .seconds(Int64(options.timeout)))
            guard response.status == .ok else {
                throw Refusal(reason: "the client metadata document answered \(response.status.code)")
            }
            let body = try await response.body.collect(upTo: options.maximumBytes)
            let maxAge = OutboundHTTP.maxAge(fromCacheControl: response.headers.first(name: "cache-control"))
            return (Array(body.readableBytesView), maxAge)
        } catch let refusal as Refusal {
            throw refusal
        } catch is NIOTooManyBytesError {
            throw Refusal(reason: "the client metadata document is larger than \(options.maximumBytes) bytes")
        } catch {
            throw Refusal(reason: "the client metadata document could not be fetched")
        }
    }

    /// What is wrong with fetching from `address`, or `nil`: loopback (allowed with loopback
    /// http), private, link-local, shared, unspecified, multicast and reserved ranges.
    static func addressProblem(_ address: SocketAddress, allowLoopback: Bool, allowPrivate: Bool) -> String? {
        guard var bytes = address.addressBytes else { return "not an IP address" }
        if bytes.count == 16 {
            let isLoopback = bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
            if isLoopback { return allowLoopback ? nil : "a loopback address" }
            if bytes.allSatisfy({ $0 == 0 }) { return "the unspecified address" }
            if bytes[0..<10].allSatisfy({ $0 == 0 })
                && (bytes[10] == 0xFF && bytes[11] == 0xFF || bytes[10..<12] == [0, 0])
            {
                // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d): judged as IPv4.
                bytes = Array(bytes[12...])
            } else {
                if bytes[0] == 0xFF { return "a multicast address" }
                let privateRange =
                    bytes[0] & 0xFE == 0xFC  // fc00::/7, unique local
                    || (bytes[0] == 0xFE && bytes[1] & 0x80 == 0x80)  // fe80::/10 link-local, fec0::/10 site-local
                    || (bytes[0] == 0x20 && bytes[1] == 0x02)  // 2002::/16, 6to4: any IPv4 behind it
                    || (bytes[0..<4] == [0x00, 0x64, 0xFF, 0x9B]
                        && (bytes[4..<12].allSatisfy { $0 == 0 } || bytes[4..<6] == [0, 1]))  // NAT64
                return privateRange && !allowPrivate ? "a private, link-local or translated address" : nil
            }
        }
        guard bytes.count == 4 else { return "not an IP address" }
        let (a, b) = (bytes[0], bytes[1])
        if a == 127 { return allowLoopback ? nil : "a loopback address" }
        if a == 0 || a >= 224 { return "a reserved or multicast address" }
        let isPrivate =
            a == 10 || (a == 172 && b & 0xF0 == 16) || (a == 192 && b == 168) || (a == 169 && b == 254)
            || (a == 100 && b & 0xC0 == 64) || (a == 192 && b == 0 && bytes[2] == 0) || (a == 198 && b & 0xFE == 18)
        if isPrivate { return allowPrivate ? nil : "a private or link-local address" }
        return nil
    }

    /// The client a document describes, or why it cannot be one.
    static func client(
        from body: [UInt8],
        url: String,
        certificatesReachIssuer: Bool
    ) throws(Refusal) -> RegisteredClient {
        guard let document = try? JSONParser.parse(body), let metadata = document.objectValue else {
            throw Refusal(reason: "the client metadata document is not a JSON object")
        }
        guard metadata["client_id"] == .string(url) else {
            throw Refusal(reason: "the document's client_id is not its URL")
        }
        if metadata["client_secret"] != nil || metadata["client_secret_expires_at"] != nil {
            throw Refusal(reason: "a client metadata document cannot carry a secret")
        }
        let method = metadata["token_endpoint_auth_method"]?.stringValue ?? "none"
        guard method == "none" else {
            throw Refusal(reason: "token_endpoint_auth_method '\(method.prefix(40))' is not supported (only none)")
        }
        func strings(_ name: String) throws(Refusal) -> [String]? {
            guard let value = metadata[name] else { return nil }
            guard let array = value.arrayValue, array.count <= 20 else {
                throw Refusal(reason: "'\(name)' must be an array of at most 20 entries")
            }
            var result: [String] = []
            for element in array {
                guard let text = element.stringValue, text.utf8.count <= 2048 else {
                    throw Refusal(reason: "'\(name)' holds a non-string or an overlong entry")
                }
                result.append(text)
            }
            return result
        }
        guard let redirectURIs = try strings("redirect_uris"), !redirectURIs.isEmpty else {
            throw Refusal(reason: "the document lists no redirect_uris")
        }
        for uri in redirectURIs where !OAuthIssuer.isRegistrableRedirect(uri) {
            throw Refusal(reason: "a redirect URI must be https, http on loopback, or a private-use scheme")
        }
        var grants: Set<GrantType> = [.authorizationCode]
        if let names = try strings("grant_types") {
            grants = []
            for name in names {
                switch name {
                case "authorization_code": grants.insert(.authorizationCode)
                case "refresh_token": grants.insert(.refreshToken)
                default: throw Refusal(reason: "only the authorization_code and refresh_token grants are offered")
                }
            }
        }
        var name: String?
        if case .string(let given)? = metadata["client_name"] {
            guard given.count <= 100, !given.contains(where: { $0.isNewline || $0.unicodeScalars.first!.value < 0x20 })
            else { throw Refusal(reason: "client_name is longer than 100 characters or has control characters") }
            name = given
        }
        // RFC 9449 §5.2 and RFC 8705 §3.4: sender-constrained tokens asked for are given (or the
        // token requests fail), never bearer tokens in their place.
        func flag(_ name: String) throws(Refusal) -> Bool? {
            guard let value = metadata[name] else { return nil }
            guard case .bool(let flag) = value else { throw Refusal(reason: "\(name) must be true or false") }
            return flag ? true : nil
        }
        var client = RegisteredClient(
            id: url,
            kind: redirectURIs.allSatisfy { $0.hasPrefix("https://") } ? .spa : .native,
            secret: nil,
            redirectURIs: redirectURIs,
            scopes: [],
            grantTypes: grants,
            skipConsent: false,
            name: name,
            registeredDynamically: true
        )
        client.requiresDPoP = try flag("dpop_bound_access_tokens")
        client.certificateBoundAccessTokens = try flag("tls_client_certificate_bound_access_tokens")
        if client.certificateBoundAccessTokens == true && !certificatesReachIssuer {
            throw Refusal(reason: "no client certificate reaches this issuer: certificate-bound tokens are not offered")
        }
        return client
    }
}
