import Yams

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads and validates the YAML configuration. Every error names the file, the line and the
/// field; nothing is half-applied: a file either loads whole or not at all.
public enum ConfigurationLoader {
    /// Loads `path`; secret and key files named in it are read relative to its directory.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> TollgateConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(file: path, line: nil, field: "", message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: path, line: nil, field: "", message: "the file is not UTF-8")
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        return try parse(yaml: text, file: path, baseDirectory: directory, environment: environment)
    }

    public static func parse(
        yaml: String,
        file: String = "<memory>",
        baseDirectory: String = ".",
        environment: [String: String] = [:]
    ) throws(ConfigurationError) -> TollgateConfiguration {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                throw ConfigurationError(file: file, line: nil, field: "", message: "the file is empty")
            }
            root = composed
        } catch let error as ConfigurationError {
            throw error
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        } catch {
            throw ConfigurationError(file: file, line: nil, field: "", message: "not valid YAML")
        }
        let context = ConfigurationContext(file: file, baseDirectory: baseDirectory, environment: environment)
        return try context.configuration(ConfigurationNode(node: root, field: "", file: file))
    }

    private static func yamlError(_ error: YamlError, file: String) -> ConfigurationError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigurationError(file: file, line: mark.line, column: mark.column, field: "", message: problem)
        default:
            return ConfigurationError(file: file, line: nil, field: "", message: "not valid YAML: \(error)")
        }
    }

}

/// What a configuration file's parts are parsed with: the file, the directory that secret and key
/// files are read from, the environment that `*_env` names are read from.
public struct ConfigurationContext: Sendable {
    public let file: String
    public let baseDirectory: String
    let environment: [String: String]

    func configuration(_ root: ConfigurationNode) throws(ConfigurationError) -> TollgateConfiguration {
        let top = try root.mapping(allowed: [
            "listen", "upstream", "admin", "realm", "issuers", "routes", "default", "forward", "token",
            "paths", "cache", "server", "forward_auth", "issuer", "dpop",
        ])
        var configuration = TollgateConfiguration()
        configuration.file = file
        if let node = top["listen"] { configuration.listen = try address(node) }
        if let node = top["admin"] { configuration.admin = try address(node) }
        if let node = top["upstream"] { configuration.upstream = try upstream(node) }
        if let node = top["server"] { configuration.server = try server(node) }
        if let node = top["forward_auth"] { configuration.forwardAuth = try forwardAuth(node) }
        if let node = top["realm"] {
            let realm = try node.nonEmptyString()
            if realm.contains("\"") || realm.contains("\\") {
                throw node.error("must not contain quotes or backslashes")
            }
            configuration.realm = realm
        }
        if let node = top["issuers"] {
            var names = Set<String>()
            var issuerURLs = Set<String>()
            for element in try node.sequence() {
                let issuer = try issuerConfiguration(element)
                if !names.insert(issuer.policy.name).inserted {
                    throw element.error("the issuer name '\(issuer.policy.name)' is used twice")
                }
                // A JWT picks its issuer by `iss`; a second entry with the same value would
                // never be consulted.
                if !issuerURLs.insert(issuer.policy.issuer).inserted {
                    throw element.error("the issuer '\(issuer.policy.issuer)' is configured twice")
                }
                configuration.issuers.append(issuer)
            }
        }
        if let node = top["issuer"] {
            let local = try IssuerSectionParser.parse(node, context: self)
            if configuration.issuers.contains(where: {
                $0.policy.name == local.name || $0.policy.issuer == local.issuer
            }) {
                throw node.error(
                    "an entry of issuers: has the same name or issuer URL as the issuer in this process"
                )
            }
            configuration.issuerSection = IssuerSection(local)
            var policy = IssuerPolicy(
                name: local.name,
                issuer: local.issuer,
                audiences: local.audiences,
                // Every asymmetric algorithm: each key of its ring names its own (RFC 8725 §3.1).
                algorithms: Set(JWSAlgorithm.allCases.filter { !$0.isSymmetric })
            )
            policy.leeway = 30
            configuration.issuers.append(
                IssuerConfiguration(
                    policy: policy,
                    keySource: .inProcess,
                    refresh: KeySetRefreshPolicy(),
                    line: node.line
                )
            )
        }
        if let node = top["paths"] {
            let members = try node.mapping(allowed: ["allow_encoded_slash", "allow_semicolon"])
            if let flag = members["allow_encoded_slash"] { configuration.paths.allowEncodedSlash = try flag.bool() }
            if let flag = members["allow_semicolon"] { configuration.paths.allowSemicolon = try flag.bool() }
        }
        if let node = top["token"] {
            let members = try node.mapping(allowed: ["header", "cookie", "query"])
            if let header = members["header"] { configuration.token.header = try headerName(header) }
            if let cookie = members["cookie"] { configuration.token.cookie = try cookie.nonEmptyString() }
            if let query = members["query"] { configuration.token.queryParameter = try query.nonEmptyString() }
        }
        if let node = top["cache"] {
            let members = try node.mapping(allowed: ["max_entries"])
            if let entries = members["max_entries"] { configuration.cacheEntries = try entries.positiveInteger() }
        }
        if let node = top["forward"] { configuration.forward = try forward(node) }
        if let node = top["dpop"] { configuration.dpop = try dpop(node) }
        var defaultAction = DefaultAction.deny
        if let node = top["default"] {
            let text = try node.string()
            guard let action = DefaultAction(rawValue: text) else {
                throw node.error("expected 'deny' or 'authenticated', found '\(text)'")
            }
            if action == .authenticated && configuration.issuers.isEmpty {
                throw node.error("'authenticated' needs at least one issuer")
            }
            defaultAction = action
        }
        var routes: [Route] = []
        if let node = top["routes"] {
            let issuerNames = Set(configuration.issuers.map(\.policy.name))
            let presentsCertificates =
                configuration.server.tls?.clientCAFile != nil || configuration.server.trustsClientCertHeader
            for (index, element) in try node.sequence().enumerated() {
                routes.append(
                    try route(
                        element,
                        index: index,
                        issuerNames: issuerNames,
                        presentsCertificates: presentsCertificates
                    )
                )
            }
        }
        configuration.routes = RouteTable(routes: routes, defaultAction: defaultAction)
        return configuration
    }

    func upstream(_ node: ConfigurationNode) throws(ConfigurationError) -> UpstreamSettings {
        func url(_ node: ConfigurationNode) throws(ConfigurationError) -> String {
            let url = try node.nonEmptyString()
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw node.error("expected an http:// or https:// URL")
            }
            let endpoint = UpstreamSettings(url: url).endpoint
            guard !endpoint.host.isEmpty, (1...65535).contains(endpoint.port) else {
                throw node.error("expected an http:// or https:// URL with a host")
            }
            if url.contains("?") || url.contains("#") { throw node.error("must not hold a query or fragment") }
            return url
        }
        if node.node.scalar != nil { return UpstreamSettings(url: try url(node)) }
        let members = try node.mapping(allowed: [
            "url", "connect_timeout", "response_timeout", "max_idle_connections", "h2c",
        ])
        var settings = UpstreamSettings(url: try url(try members.required("url")))
        if let value = members["connect_timeout"] { settings.connectTimeout = try value.duration() }
        if let value = members["response_timeout"] { settings.responseTimeout = try value.duration() }
        if let value = members["max_idle_connections"] {
            settings.maximumIdleConnections = try value.positiveInteger()
        }
        if let value = members["h2c"] { settings.h2c = try value.bool() }
        if settings.h2c && settings.endpoint.secure { throw members["h2c"]!.error("h2c needs an http:// upstream") }
        return settings
    }

    func server(_ node: ConfigurationNode) throws(ConfigurationError) -> ServerSettings {
        let members = try node.mapping(allowed: [
            "max_header_bytes", "max_headers", "max_request_line", "header_timeout", "idle_timeout",
            "drain_grace", "h2c", "tls", "trusted_proxies", "access_log", "access_log_buffer_bytes", "threads",
            "public_url", "trust_client_cert_header",
        ])
        var settings = ServerSettings()
        if let value = members["max_header_bytes"] { settings.maximumHeaderBytes = try value.positiveInteger() }
        if let value = members["max_headers"] { settings.maximumHeaderCount = try value.positiveInteger() }
        if let value = members["max_request_line"] { settings.maximumRequestLine = try value.positiveInteger() }
        if let value = members["header_timeout"] { settings.headerTimeout = try value.duration() }
        if let value = members["idle_timeout"] { settings.idleTimeout = try value.duration() }
        if let value = members["drain_grace"] { settings.drainGrace = try value.duration() }
        if let value = members["h2c"] { settings.h2c = try value.bool() }
        if let value = members["access_log"] { settings.accessLog = try value.bool() }
        if let value = members["access_log_buffer_bytes"] {
            settings.accessLogBufferBytes = try value.positiveInteger()
        }
        if let value = members["threads"] { settings.threads = try value.positiveInteger() }
        if let value = members["trust_client_cert_header"] { settings.trustsClientCertHeader = try value.bool() }
        if let value = members["public_url"] {
            let text = try value.nonEmptyString()
            guard let origin = PublicOrigin(text) else {
                throw value.error("must be an http(s) origin such as https://api.example (no path, query or user)")
            }
            settings.publicURL = origin.text
        }
        if let value = members["trusted_proxies"] { try trustedProxies(value, into: &settings) }
        if settings.trustsClientCertHeader && settings.trustedProxies.isEmpty {
            throw members["trust_client_cert_header"]!.error(
                "Client-Cert is taken only from server.trusted_proxies, and none are listed"
            )
        }
        if let value = members["tls"] {
            let tls = try value.mapping(allowed: [
                "certificate_file", "key_file", "client_ca_file", "client_certificate",
            ])
            let certificate = try tls.required("certificate_file")
            let key = try tls.required("key_file")
            var files = TLSFiles(
                certificateFile: resolve(try certificate.nonEmptyString()),
                keyFile: resolve(try key.nonEmptyString())
            )
            _ = try readFile(certificate)
            _ = try readFile(key)
            if let node = tls["client_ca_file"] {
                _ = try readFile(node)
                files.clientCAFile = resolve(try node.nonEmptyString())
            }
            if let node = tls["client_certificate"] {
                guard files.clientCAFile != nil else { throw node.error("needs client_ca_file") }
                switch try node.string() {
                case "optional": files.requiresClientCertificate = false
                case "required": files.requiresClientCertificate = true
                case let other: throw node.error("expected optional or required, found '\(other)'")
                }
            }
            settings.tls = files
        }
        return settings
    }

    func forwardAuth(_ node: ConfigurationNode) throws(ConfigurationError) -> ForwardAuthSettings {
        let members = try node.mapping(allowed: ["path"])
        var settings = ForwardAuthSettings()
        if let value = members["path"] {
            let path = try value.nonEmptyString()
            try requireNormalised(path, node: value, allowBraces: false)
            settings.path = path
        }
        return settings
    }

    func trustedProxies(_ value: ConfigurationNode, into settings: inout ServerSettings) throws(ConfigurationError) {
        for element in try value.sequence() {
            let text = try element.nonEmptyString()
            guard let range = AddressRange(text) else {
                throw element.error("expected an IP address or CIDR block, found '\(text)'")
            }
            settings.trustedProxies.append(range)
        }
    }

    func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : baseDirectory + "/" + path
    }

    func address(_ node: ConfigurationNode) throws(ConfigurationError) -> String {
        let text = try node.nonEmptyString()
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            UInt16(text[text.index(after: colon)...]) != nil
        else {
            throw node.error("expected host:port, found '\(text)'")
        }
        return text
    }

    func headerName(_ node: ConfigurationNode) throws(ConfigurationError) -> String {
        let name = try node.nonEmptyString()
        let allowed = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        guard name.allSatisfy({ allowed.contains($0) }) else {
            throw node.error("'\(name)' is not a valid header name")
        }
        return name
    }

    func issuerConfiguration(_ node: ConfigurationNode) throws(ConfigurationError) -> IssuerConfiguration {
        let members = try node.mapping(allowed: [
            "name", "issuer", "discovery", "jwks_uri", "jwks_file", "audiences", "algorithms", "leeway",
            "token_type", "max_token_size", "scope_claim", "allow_insecure_http", "hmac_secret_file",
            "hmac_secret_env", "jwks", "introspection", "dpop",
        ])
        let name = try members.required("name").nonEmptyString()
        let issuerNode = try members.required("issuer")
        let issuer = try issuerNode.nonEmptyString()
        var policy = IssuerPolicy(name: name, issuer: issuer, audiences: [])
        if let audiences = members["audiences"] { policy.audiences = try audiences.stringList() }
        if let leeway = members["leeway"] { policy.leeway = try leeway.duration() }
        if let type = members["token_type"] { policy.requiredTokenType = try type.nonEmptyString() }
        if let size = members["max_token_size"] { policy.maximumTokenSize = try size.positiveInteger() }
        if let claim = members["scope_claim"] { policy.scopeClaim = try claim.nonEmptyString() }
        if let node = members["dpop"] { policy.dpop = try dpopMode(node) }
        if let node = members["algorithms"] {
            var algorithms = Set<JWSAlgorithm>()
            for element in try node.sequence() {
                let text = try element.nonEmptyString()
                if text.lowercased() == "none" { throw element.error("'none' can never be allowed") }
                guard let algorithm = JWSAlgorithm(rawValue: text) else {
                    let known = JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
                    throw element.error("unknown algorithm '\(text)' (known: \(known))")
                }
                algorithms.insert(algorithm)
            }
            if algorithms.isEmpty { throw node.error("must name at least one algorithm") }
            policy.algorithms = algorithms
        }
        var refresh = KeySetRefreshPolicy()
        if let flag = members["allow_insecure_http"] { refresh.allowInsecureHTTP = try flag.bool() }
        if let node = members["jwks"] { try keySetPolicy(node, into: &refresh) }

        let sources = ["discovery", "jwks_uri", "jwks_file"].filter { members.has($0) }
        if sources.count > 1 {
            throw node.error(
                "give only one of discovery, jwks_uri and jwks_file (found \(sources.joined(separator: ", ")))"
            )
        }
        var keySource: KeySetSource?
        if let flag = members["discovery"] {
            if try flag.bool() { keySource = .discovery(issuer: issuer) }
        } else if let uri = members["jwks_uri"] {
            let url = try uri.nonEmptyString()
            if let problem = OutboundHTTP.checkScheme(of: url, allowInsecureHTTP: refresh.allowInsecureHTTP) {
                throw uri.error(problem.reason)
            }
            keySource = .jwksURI(url)
        } else if let path = members["jwks_file"] {
            let text = try readFile(path)
            do {
                let document = Array(text.utf8)
                keySource = .fixed(JSONWebKeySetBox(try JSONWebKeySet.parse(document), document: document))
            } catch {
                throw path.error(error.reason)
            }
        }
        if case .discovery = keySource,
            let problem = OutboundHTTP.checkScheme(of: issuer, allowInsecureHTTP: refresh.allowInsecureHTTP)
        {
            throw issuerNode.error("discovery: \(problem.reason)")
        }

        var hmacSecret: Secret?
        if members.has("hmac_secret_file") || members.has("hmac_secret_env") {
            hmacSecret = try secret(members, file: "hmac_secret_file", env: "hmac_secret_env", owner: node)
            if hmacSecret!.value.utf8.count < 32 {
                throw (members["hmac_secret_file"] ?? members["hmac_secret_env"])!.error(
                    "an HMAC secret must be at least 32 bytes"
                )
            }
        }
        let symmetric = policy.algorithms.filter(\.isSymmetric)
        if !symmetric.isEmpty && hmacSecret == nil {
            throw (members["algorithms"] ?? node).error(
                "HS256/384/512 need hmac_secret_file or hmac_secret_env on this issuer"
            )
        }
        var introspection: IntrospectionSettings?
        if let node = members["introspection"] {
            introspection = try introspectionSettings(node, allowInsecureHTTP: refresh.allowInsecureHTTP)
        }
        if introspection?.signedResponses == true && keySource == nil {
            throw members["introspection"]!.error(
                "signed introspection answers are verified with the issuer's keys: give discovery, jwks_uri or jwks_file"
            )
        }
        if keySource == nil && hmacSecret == nil && introspection == nil {
            throw node.error(
                "needs a key source (discovery, jwks_uri or jwks_file), an HMAC secret or introspection"
            )
        }
        return IssuerConfiguration(
            policy: policy,
            keySource: keySource,
            refresh: refresh,
            hmacSecret: hmacSecret,
            introspection: introspection,
            line: node.line
        )
    }

    func keySetPolicy(_ node: ConfigurationNode, into refresh: inout KeySetRefreshPolicy) throws(ConfigurationError) {
        let members = try node.mapping(allowed: [
            "min_refresh", "max_refresh", "default_refresh", "cooldown", "max_stale", "timeout",
        ])
        if let value = members["min_refresh"] { refresh.minimumRefresh = try value.duration() }
        if let value = members["max_refresh"] { refresh.maximumRefresh = try value.duration() }
        if let value = members["default_refresh"] { refresh.defaultRefresh = try value.duration() }
        if let value = members["cooldown"] { refresh.unknownKeyCooldown = try value.duration() }
        if let value = members["max_stale"] { refresh.maximumStale = try value.duration() }
        if let value = members["timeout"] { refresh.timeout = try value.duration() }
        if refresh.minimumRefresh > refresh.maximumRefresh {
            throw (members["min_refresh"] ?? node).error("min_refresh is larger than max_refresh")
        }
    }

    func introspectionSettings(
        _ node: ConfigurationNode,
        allowInsecureHTTP: Bool
    ) throws(ConfigurationError)
        -> IntrospectionSettings
    {
        let members = try node.mapping(allowed: [
            "endpoint", "client_id", "client_secret_file", "client_secret_env", "client_secret", "auth_method",
            "cache_ttl", "negative_cache_ttl", "timeout", "signed",
        ])
        if let inline = members["client_secret"] {
            throw inline.error("secrets are not written in the file; use client_secret_file or client_secret_env")
        }
        let endpointNode = try members.required("endpoint")
        let endpoint = try endpointNode.nonEmptyString()
        if let problem = OutboundHTTP.checkScheme(of: endpoint, allowInsecureHTTP: allowInsecureHTTP) {
            throw endpointNode.error(problem.reason)
        }
        let clientID = try members.required("client_id").nonEmptyString()
        let clientSecret = try secret(members, file: "client_secret_file", env: "client_secret_env", owner: node)
        var settings = IntrospectionSettings(endpoint: endpoint, clientID: clientID, clientSecret: clientSecret)
        settings.allowInsecureHTTP = allowInsecureHTTP
        if let method = members["auth_method"] {
            let text = try method.string()
            guard let parsed = IntrospectionSettings.ClientAuthentication(rawValue: text) else {
                throw method.error("expected client_secret_basic or client_secret_post, found '\(text)'")
            }
            settings.authentication = parsed
        }
        if let value = members["cache_ttl"] { settings.cacheTTL = try value.duration() }
        if let value = members["negative_cache_ttl"] { settings.negativeCacheTTL = try value.duration() }
        if let value = members["timeout"] { settings.timeout = try value.duration() }
        if let value = members["signed"] { settings.signedResponses = try value.bool() }
        return settings
    }

    /// A secret from `fileKey` (a file, relative to the configuration) or `envKey` (an
    /// environment variable), exactly one of them.
    public func secret(
        _ members: ConfigurationNode.Members,
        file fileKey: String,
        env envKey: String,
        owner: ConfigurationNode
    ) throws(ConfigurationError) -> Secret {
        switch (members[fileKey], members[envKey]) {
        case (let fileNode?, nil):
            var text = try readFile(fileNode)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            if text.isEmpty { throw fileNode.error("the secret file is empty") }
            return Secret(text)
        case (nil, let envNode?):
            let variable = try envNode.nonEmptyString()
            guard let value = environment[variable], !value.isEmpty else {
                throw envNode.error("the environment variable \(variable) is not set")
            }
            return Secret(value)
        case (.some(let fileNode), .some):
            throw fileNode.error("give \(fileKey) or \(envKey), not both")
        case (nil, nil):
            throw owner.error("needs \(fileKey) or \(envKey)")
        }
    }

    func readFile(_ node: ConfigurationNode) throws(ConfigurationError) -> String {
        let path = try node.nonEmptyString()
        let resolved = path.hasPrefix("/") ? path : baseDirectory + "/" + path
        // Only a regular file of sensible size: `/dev/zero` or a FIFO would hang the load.
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
            attributes[.type] as? FileAttributeType == .typeRegular
        else {
            throw node.error("cannot read '\(path)' (not a regular file)")
        }
        let size = attributes[.size] as? Int ?? (attributes[.size] as? UInt64).map { Int($0) } ?? 0
        if size > 1 << 20 {
            throw node.error("'\(path)' is larger than 1 MiB")
        }
        guard let data = FileManager.default.contents(atPath: resolved),
            let text = String(data: data, encoding: .utf8)
        else {
            throw node.error("cannot read '\(path)'")
        }
        return text
    }

    func forward(_ node: ConfigurationNode) throws(ConfigurationError) -> ClaimHeaderMapping {
        let members = try node.mapping(allowed: ["claims", "payload_header", "strip"])
        var entries: [ClaimHeaderMapping.Entry] = []
        let reserved: Set<String> = [
            "authorization", "host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
            "trailer", "keep-alive", "proxy-authorization", "cookie",
        ]
        if let claims = members["claims"] {
            guard let mapping = claims.node.mapping else {
                throw claims.error("expected a mapping of header: claim")
            }
            for (key, value) in mapping {
                let headerNode = ConfigurationNode(
                    node: key,
                    field: "\(claims.field).\(key.string ?? "?")",
                    file: file
                )
                let header = try headerName(headerNode)
                if reserved.contains(header.lowercased()) {
                    throw headerNode.error("'\(header)' cannot carry a claim")
                }
                let claim = try ConfigurationNode(node: value, field: headerNode.field, file: file).nonEmptyString()
                entries.append(.init(header: header, claim: claim))
            }
        }
        var payloadHeader: String?
        if let node = members["payload_header"] {
            payloadHeader = try headerName(node)
            if reserved.contains(payloadHeader!.lowercased()) {
                throw node.error("'\(payloadHeader!)' is reserved")
            }
        }
        var strip: [String] = []
        if let node = members["strip"] {
            for element in try node.sequence() { strip.append(try headerName(element)) }
        }
        return ClaimHeaderMapping(entries: entries, payloadHeader: payloadHeader, extraStrippedHeaders: strip)
    }

    /// - Parameter presentsCertificates: whether a client certificate can reach the gate at all
    ///   (`server.tls.client_ca_file`, or a trusted proxy's `Client-Cert`).
    func route(
        _ node: ConfigurationNode,
        index: Int,
        issuerNames: Set<String>,
        presentsCertificates: Bool
    ) throws(ConfigurationError) -> Route {
        let members = try node.mapping(
            allowed: [
                "name", "match", "auth", "issuers", "require", "upgrades", "allow_override_headers", "resource",
                "forward_token", "mcp", "dpop", "client_certificate",
            ]
        )
        let name = try members["name"]?.nonEmptyString() ?? "routes[\(index)]"
        let matchNode = try members.required("match")
        let match = try matchNode.mapping(allowed: ["path", "prefix", "glob", "methods"])
        let kinds = ["path", "prefix", "glob"].filter { match.has($0) }
        guard kinds.count == 1 else {
            throw matchNode.error("give exactly one of path, prefix and glob")
        }
        let patternNode = match[kinds[0]]!
        let patternText = try patternNode.nonEmptyString()
        guard patternText.hasPrefix("/") else { throw patternNode.error("must start with '/'") }
        let pattern: PathPattern
        switch kinds[0] {
        case "path":
            try requireNormalised(patternText, node: patternNode, allowBraces: true)
            pattern = .path(patternText)
        case "prefix":
            try requireNormalised(patternText, node: patternNode, allowBraces: false)
            var prefix = patternText
            if prefix.count > 1 && prefix.hasSuffix("/") { prefix.removeLast() }
            pattern = .prefix(prefix)
        default:
            pattern = PathPattern.globPattern(patternText)
        }
        var methods: Set<String>?
        if let node = match["methods"] {
            let list = try node.stringList()
            for method in list where !method.allSatisfy({ $0.isLetter && $0.isASCII }) {
                throw node.error("'\(method)' is not an HTTP method")
            }
            methods = Set(list.map { $0.uppercased() })
        }
        var authentication = RouteAuthentication.required(issuers: nil)
        if let node = members["auth"] {
            switch try node.string() {
            case "none": authentication = .none
            case "required": break
            case let other: throw node.error("expected 'none' or 'required', found '\(other)'")
            }
        }
        if let node = members["issuers"] {
            guard authentication != .none else { throw node.error("a route with auth: none accepts no issuers") }
            let names = try node.stringList()
            for issuerName in names where !issuerNames.contains(issuerName) {
                throw node.error("no issuer is named '\(issuerName)'")
            }
            authentication = .required(issuers: names)
        }
        if authentication != .none && issuerNames.isEmpty {
            throw node.error("this route needs a token but no issuers are configured")
        }
        var scopes: ScopeRequirement?
        var conditions: [ClaimCondition] = []
        var acrValues: [String] = []
        var maxAge: Double?
        if let node = members["require"] {
            guard authentication != .none else {
                throw node.error("a route with auth: none cannot require anything")
            }
            (scopes, conditions) = try requirement(node, allowsStepUp: true)
            let stepUp = try node.mapping(allowed: ["scopes", "claims", "acr", "max_age"])
            if let list = stepUp["acr"] {
                acrValues = try list.stringList()
                for value in acrValues where value.contains(" ") || value.contains("\"") || value.contains("\\") {
                    throw list.error("the acr value '\(value)' contains a space, quote or backslash")
                }
            }
            if let value = stepUp["max_age"] { maxAge = try value.duration() }
        }
        var upgrades: Set<String> = ["websocket"]
        if let node = members["upgrades"] {
            let list = try node.stringList()
            for item in list where item.lowercased() == "h2c" {
                throw node.error("an h2c upgrade is never relayed (it would tunnel past the gate)")
            }
            for item in list where item.isEmpty || !item.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x2C }) {
                throw node.error("'\(item)' is not a protocol name")
            }
            upgrades = Set(list.map { $0.lowercased() })
        }
        let allowOverrideHeaders = try members["allow_override_headers"]?.bool() ?? false
        var resource: ProtectedResource?
        if let node = members["resource"] {
            guard authentication != .none else {
                throw node.error("a route with auth: none is not a protected resource")
            }
            resource = try protectedResource(node)
        }
        var mcp: MCPPolicy?
        if let node = members["mcp"] {
            guard authentication != .none else {
                throw node.error("an MCP route needs a token (its rules are about the caller)")
            }
            mcp = try mcpPolicy(node)
        }
        if mcp != nil {
            // A protocol switch would carry JSON-RPC past every rule, as h2c would past the gate.
            if let node = members["upgrades"] {
                throw node.error("an MCP route relays no protocol switch (its messages would pass unchecked)")
            }
            upgrades = []
        }
        var forwardsToken = resource == nil && mcp == nil
        if let node = members["forward_token"] {
            guard resource != nil || mcp != nil else {
                throw node.error("only a route with a resource or mcp keeps the token back")
            }
            forwardsToken = try node.bool()
        }
        var route = Route(
            name: name,
            methods: methods,
            pattern: pattern,
            authentication: authentication,
            scopes: scopes,
            conditions: conditions,
            upgrades: upgrades,
            allowsOverrideHeaders: allowOverrideHeaders,
            resource: resource,
            forwardsToken: forwardsToken,
            mcp: mcp,
            dpop: try members["dpop"].map { node throws(ConfigurationError) in try dpopMode(node) },
            line: node.line
        )
        route.acrValues = acrValues
        route.maxAge = maxAge
        if let node = members["client_certificate"] {
            let text = try node.string()
            guard let rule = ClientCertificateRule(rawValue: text) else {
                throw node.error("expected optional, required or bound, found '\(text)'")
            }
            guard authentication != .none else { throw node.error("a route with auth: none checks no certificate") }
            guard presentsCertificates else {
                throw node.error(
                    "no client certificate can be presented: set server.tls.client_ca_file or server.trust_client_cert_header"
                )
            }
            route.clientCertificate = rule
        }
        return route
    }

    func dpopMode(_ node: ConfigurationNode) throws(ConfigurationError) -> DPoPMode {
        let text = try node.string()
        guard let mode = DPoPMode(rawValue: text) else {
            throw node.error("expected required, allowed or off, found '\(text)'")
        }
        return mode
    }

    /// The top-level `dpop:` section: what a proof may be (RFC 9449).
    func dpop(_ node: ConfigurationNode) throws(ConfigurationError) -> DPoPSettings {
        let members = try node.mapping(allowed: [
            "algorithms", "proof_lifetime", "clock_skew", "nonce", "nonce_secret_file", "nonce_secret_env",
            "max_remembered_proofs",
        ])
        var settings = DPoPSettings()
        if let list = members["algorithms"] {
            var algorithms = Set<JWSAlgorithm>()
            for element in try list.sequence() {
                let text = try element.nonEmptyString()
                guard let algorithm = JWSAlgorithm(rawValue: text), !algorithm.isSymmetric else {
                    throw element.error("'\(text)' is not an asymmetric signature algorithm")
                }
                algorithms.insert(algorithm)
            }
            if algorithms.isEmpty { throw list.error("must list at least one algorithm") }
            settings.algorithms = algorithms
        }
        if let value = members["proof_lifetime"] { settings.proofLifetime = try value.duration() }
        if let value = members["clock_skew"] { settings.clockSkew = try value.duration() }
        if let value = members["nonce"] { settings.requiresNonce = try value.bool() }
        if members.has("nonce_secret_file") || members.has("nonce_secret_env") {
            let secret = try secret(members, file: "nonce_secret_file", env: "nonce_secret_env", owner: node)
            guard secret.value.utf8.count >= 32 else {
                throw (members["nonce_secret_file"] ?? members["nonce_secret_env"])!.error(
                    "a nonce secret must be at least 32 bytes"
                )
            }
            settings.nonceSecret = secret
        }
        if let value = members["max_remembered_proofs"] {
            settings.maximumRememberedProofs = try value.positiveInteger()
        }
        return settings
    }

    /// `mcp:` on a route: the bounds, whether `tools/list` is filtered, and the rules by method,
    /// tool, prompt and resource URI, with a default for the tools, prompts and resources that
    /// have none.
    func mcpPolicy(_ node: ConfigurationNode) throws(ConfigurationError) -> MCPPolicy {
        var policy = MCPPolicy()
        if node.isNull { return policy }
        let members = try node.mapping(
            allowed: [
                "max_body_bytes", "filter_tools_list", "max_tools_list_bytes", "methods", "tools", "prompts",
                "resources", "default",
            ]
        )
        if let value = members["max_body_bytes"] { policy.maximumBodyBytes = try value.positiveInteger() }
        if let value = members["filter_tools_list"] { policy.filtersToolList = try value.bool() }
        if let value = members["max_tools_list_bytes"] { policy.maximumToolListBytes = try value.positiveInteger() }
        func rules(_ key: String) throws(ConfigurationError) -> [String: MCPPolicy.Rule] {
            guard let group = members[key] else { return [:] }
            var rules: [String: MCPPolicy.Rule] = [:]
            for (name, ruleNode) in try group.namedChildren() {
                if name.isEmpty { throw ruleNode.error("a name must not be empty") }
                rules[name] = try mcpRule(ruleNode)
            }
            return rules
        }
        policy.methods = try rules("methods")
        policy.tools = try rules("tools")
        policy.prompts = try rules("prompts")
        policy.resources = try rules("resources")
        if let value = members["default"] { policy.defaultRule = try mcpRule(value) }
        return policy
    }

    /// `deny`, or a mapping of `scopes` (`all`, `any`) and `claims` like a route's `require`.
    func mcpRule(_ node: ConfigurationNode) throws(ConfigurationError) -> MCPPolicy.Rule {
        if let text = try? node.string() {
            guard text == "deny" else { throw node.error("expected 'deny' or a mapping of scopes and claims") }
            return .deny
        }
        let (scopes, conditions) = try requirement(node)
        return .require(scopes: scopes, conditions: conditions)
    }

    /// A `require` mapping (or an MCP rule): `scopes` with `all` and `any`, and `claims`.
    /// - Parameter allowsStepUp: a route's `require`, which may also name `acr` and `max_age`.
    func requirement(
        _ node: ConfigurationNode,
        allowsStepUp: Bool = false
    ) throws(ConfigurationError) -> (
        ScopeRequirement?, [ClaimCondition]
    ) {
        var scopes: ScopeRequirement?
        var conditions: [ClaimCondition] = []
        let require = try node.mapping(
            allowed: allowsStepUp ? ["scopes", "claims", "acr", "max_age"] : ["scopes", "claims"]
        )
        if let scopeNode = require["scopes"] {
            let rule = try scopeNode.mapping(allowed: ["all", "any"])
            let all = try rule["all"]?.stringList() ?? []
            let any = try rule["any"]?.stringList() ?? []
            if all.isEmpty && any.isEmpty { throw scopeNode.error("give 'all', 'any' or both, not empty") }
            for scope in all + any where scope.contains(" ") || scope.contains("\"") || scope.contains("\\") {
                throw scopeNode.error("the scope '\(scope)' contains a space, quote or backslash")
            }
            scopes = ScopeRequirement(all: all, any: any)
        }
        if let claimsNode = require["claims"] {
            for element in try claimsNode.sequence() {
                conditions.append(try condition(element))
            }
        }
        return (scopes, conditions)
    }

    /// `resource: https://api.example/mcp`, or a mapping with `identifier`, `name` and
    /// `documentation`.
    func protectedResource(_ node: ConfigurationNode) throws(ConfigurationError) -> ProtectedResource {
        let identifierNode: ConfigurationNode
        var name: String?
        var documentation: String?
        var audiences: [String] = []
        if (try? node.string()) != nil {
            identifierNode = node
        } else {
            let members = try node.mapping(allowed: ["identifier", "name", "documentation", "audiences"])
            identifierNode = try members.required("identifier")
            audiences = try members["audiences"]?.stringList() ?? []
            name = try members["name"]?.nonEmptyString()
            if let documentationNode = members["documentation"] {
                let text = try documentationNode.nonEmptyString()
                guard text.hasPrefix("https://") || text.hasPrefix("http://") else {
                    throw documentationNode.error("must be an absolute http or https URL")
                }
                documentation = text
            }
        }
        let identifier = try identifierNode.nonEmptyString()
        switch ProtectedResource.make(
            identifier: identifier,
            name: name,
            documentation: documentation,
            audiences: audiences
        ) {
        case .success(let resource): return resource
        case .failure(let refusal): throw identifierNode.error("'\(identifier)' \(refusal.reason)")
        }
    }

    func requireNormalised(_ text: String, node: ConfigurationNode, allowBraces: Bool) throws(ConfigurationError) {
        let probe = allowBraces ? String(text.map { $0 == "{" || $0 == "}" ? "x" : $0 }) : text
        switch PathNormalizer.normalize(probe) {
        case .success(let normalised):
            var expected = probe
            if expected.count > 1 && expected.hasSuffix("/") && !normalised.path.hasSuffix("/") {
                expected.removeLast()
            }
            if normalised.path != expected || normalised.query != nil {
                throw node.error("'\(text)' is not a normalised path (it would match as '\(normalised.path)')")
            }
        case .failure(let rejection):
            throw node.error("'\(text)' can never match: \(rejection.reason)")
        }
    }

    func condition(_ node: ConfigurationNode) throws(ConfigurationError) -> ClaimCondition {
        let members = try node.mapping(allowed: ["claim", "equals", "contains", "one_of"])
        let claim = try members.required("claim").nonEmptyString()
        let tests = ["equals", "contains", "one_of"].filter { members.has($0) }
        guard tests.count == 1 else { throw node.error("give exactly one of equals, contains and one_of") }
        switch tests[0] {
        case "equals":
            return ClaimCondition(claim: claim, test: .equals(try members["equals"]!.scalarJSON()))
        case "contains":
            return ClaimCondition(claim: claim, test: .contains(try members["contains"]!.nonEmptyString()))
        default:
            let options = try members["one_of"]!.sequence().map { element throws(ConfigurationError) in
                try element.scalarJSON()
            }
            if options.isEmpty { throw members["one_of"]!.error("must list at least one value") }
            return ClaimCondition(claim: claim, test: .oneOf(options))
        }
    }
}
