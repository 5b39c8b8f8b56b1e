import Atomics
import NIOCore
import NIOHTTP1
import TollgateCore

/// Everything one request needs, immutable: read once per request from `ProxyRuntime`, swapped
/// whole on reload, so a request never sees half of an old and half of a new configuration.
public final class ProxySnapshot: Sendable, AtomicReference {
    public let configuration: TollgateConfiguration
    public let verifier: TokenVerifier
    let metrics: ProxyMetrics
    /// Per route (then one for the default action): the counters by outcome.
    let routeCounters: [RouteCounters]
    let trustedProxies: [AddressRange]
    /// Lower-cased names a client's `Connection:` header may never remove.
    let protectedHeaders: Set<String>
    let tokenHeaderLowercased: String
    /// Connections to the upstream; `nil` when only forward-auth is served.
    let pools: UpstreamPools?
    /// The protected resource metadata documents (RFC 9728), by the path they are served at.
    let resourceDocuments: [String: String]
    /// Some route serves MCP (its bodies are read): without one, nothing looks further.
    let hasMCPRoutes: Bool
    /// DPoP proofs: the checks, the proofs seen and the server nonces (the last two kept across
    /// reloads).
    let dpop: DPoPState
    let dpopVerifier: DPoPProofVerifier
    /// The `algs` of a DPoP challenge.
    let dpopAlgorithms: String
    /// Some route or issuer requires DPoP: without one, a bearer token with no binding needs no
    /// further look.
    let requiresDPoPSomewhere: Bool
    /// Some route requires a client certificate, or a token bound to one.
    let hasCertificateRules: Bool

    init(
        configuration: TollgateConfiguration,
        verifier: TokenVerifier,
        metrics: ProxyMetrics,
        pools: UpstreamPools?,
        dpop: DPoPState? = nil
    ) {
        self.configuration = configuration
        self.dpop = dpop ?? DPoPState(settings: configuration.dpop, previous: nil)
        dpopVerifier = DPoPProofVerifier(settings: configuration.dpop)
        dpopAlgorithms = configuration.dpop.algorithms.map(\.rawValue).sorted().joined(separator: " ")
        hasCertificateRules = configuration.routes.routes.contains { $0.clientCertificate != .optional }
        requiresDPoPSomewhere =
            configuration.routes.routes.contains { $0.dpop == .required }
            || configuration.issuers.contains { $0.policy.dpop == .required }
        self.pools = pools
        self.verifier = verifier
        self.metrics = metrics
        var counters = configuration.routes.routes.map { metrics.counters(route: $0.name) }
        counters.append(metrics.counters(route: "default"))
        routeCounters = counters
        trustedProxies = configuration.server.trustedProxies
        var protected: Set<String> = [
            "host", "content-length", "transfer-encoding", "x-forwarded-for", "x-forwarded-proto",
            "x-forwarded-host", "x-request-id", "traceparent", "tracestate",
        ]
        for name in configuration.forward.setHeaderNames { protected.insert(name.lowercased()) }
        protectedHeaders = protected
        tokenHeaderLowercased = configuration.token.header.lowercased()
        resourceDocuments = Self.resourceDocuments(configuration)
        hasMCPRoutes = configuration.routes.routes.contains { $0.mcp != nil }
    }

    /// One document per resource identifier the routes declare (RFC 9728 §2): the scopes of
    /// every route serving it (its MCP rules' too), in file order, and the issuers those routes accept. With exactly
    /// one identifier, it is also served at the root form (which clients try after the path
    /// form, and which a resource at the origin's root uses).
    static func resourceDocuments(_ configuration: TollgateConfiguration) -> [String: String] {
        var order: [ProtectedResource] = []
        var scopes: [String: [String]] = [:]
        var issuers: [String: [String]] = [:]
        var dpopModes: [String: [DPoPMode]] = [:]
        for route in configuration.routes.routes {
            guard let resource = route.resource else { continue }
            // The route's mode, else that of each issuer it accepts.
            var routeIssuers = configuration.issuers
            if case .required(let names?) = route.authentication {
                routeIssuers = routeIssuers.filter { names.contains($0.policy.name) }
            }
            dpopModes[resource.identifier, default: []] += route.dpop.map { [$0] } ?? routeIssuers.map(\.policy.dpop)
            if scopes[resource.identifier] == nil {
                order.append(resource)
                scopes[resource.identifier] = []
                issuers[resource.identifier] = []
            }
            for scope in (route.scopes?.all ?? []) + (route.scopes?.any ?? []) + (route.mcp?.allScopes ?? [])
            where !scopes[resource.identifier]!.contains(scope) {
                scopes[resource.identifier]!.append(scope)
            }
            let accepted: [String]
            switch route.authentication {
            case .required(let names?):
                accepted = configuration.issuers.filter { names.contains($0.policy.name) }.map(\.policy.issuer)
            default:
                accepted = configuration.issuers.map(\.policy.issuer)
            }
            for issuer in accepted where !issuers[resource.identifier]!.contains(issuer) {
                issuers[resource.identifier]!.append(issuer)
            }
        }
        var documents: [String: String] = [:]
        for resource in order {
            var members: [String: JSONValue] = [
                "resource": .string(resource.identifier),
                "authorization_servers": .array(issuers[resource.identifier]!.map { .string($0) }),
                "bearer_methods_supported": .array([.string("header")]),
            ]
            // RFC 9728 §3.2: members with no value are left out.
            let supported = scopes[resource.identifier]!
            if !supported.isEmpty { members["scopes_supported"] = .array(supported.map { .string($0) }) }
            if let name = resource.name { members["resource_name"] = .string(name) }
            // RFC 9449 §5.2: the proofs taken, and whether only DPoP-bound tokens are.
            let modes = dpopModes[resource.identifier] ?? []
            if modes.contains(where: { $0 != .off }) {
                members["dpop_signing_alg_values_supported"] = .array(
                    configuration.dpop.algorithms.map(\.rawValue).sorted().map { .string($0) }
                )
                members["dpop_bound_access_tokens_required"] = .bool(modes.allSatisfy { $0 == .required })
            }
            if let documentation = resource.documentation { members["resource_documentation"] = .string(documentation) }
            let document = JSONValue.object(members).serialized()
            if documents[resource.metadataPath] == nil { documents[resource.metadataPath] = document }
        }
        if order.count == 1, documents[ProtectedResource.wellKnownPath] == nil {
            documents[ProtectedResource.wellKnownPath] = documents[order[0].metadataPath]
        }
        return documents
    }

    var realm: String { configuration.realm }

    func counters(for routeIndex: Int?) -> RouteCounters {
        routeCounters[routeIndex ?? (routeCounters.count - 1)]
    }

    func isTrusted(_ address: SocketAddress?) -> Bool {
        guard !trustedProxies.isEmpty, let bytes = address?.addressBytes else { return false }
        return trustedProxies.contains { $0.contains(bytes) }
    }

    /// The matched route, if any.
    func route(_ matched: MatchedRequest) -> Route? {
        matched.routeIndex.map { configuration.routes.routes[$0] }
    }

    /// The matched route's MCP rules, read in place (no copy of the route).
    func mcpPolicy(_ matched: MatchedRequest) -> MCPPolicy? {
        guard hasMCPRoutes, let index = matched.routeIndex else { return nil }
        return configuration.routes.routes[index].mcp
    }
}

/// What DPoP checks keep between requests.
final class DPoPState: Sendable {
    let replays: DPoPReplayCache
    let nonces: DPoPNonces

    /// How long a proof must be remembered: as long as its `iat` keeps it acceptable.
    static func window(_ settings: DPoPSettings) -> Double {
        settings.proofLifetime + settings.clockSkew + 1
    }

    /// The state for `settings`. The nonces go on from `previous` while the secret is the same;
    /// the replay cache always does, with the new bound and window (one cache across reloads,
    /// so a proof taken under the old snapshot is refused under the new one).
    init(settings: DPoPSettings, previous: DPoPState?) {
        if let previous {
            replays = previous.replays
            replays.reconfigure(capacity: settings.maximumRememberedProofs, window: Self.window(settings))
        } else {
            replays = DPoPReplayCache(capacity: settings.maximumRememberedProofs, window: Self.window(settings))
        }
        if let previous, previous.nonces.secret == settings.nonceSecret {
            nonces = previous.nonces
        } else {
            nonces = DPoPNonces(secret: settings.nonceSecret, purpose: .resource)
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> SubSequence {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start, self[index(before: end)] == " " || self[index(before: end)] == "\t" {
            end = index(before: end)
        }
        return self[start..<end]
    }
}

extension String {
    /// `%XX` decoded where valid; anything else kept as it is.
    func removingPercentEncodingLeniently() -> String {
        guard utf8.contains(UInt8(ascii: "%")) || utf8.contains(UInt8(ascii: "+")) else { return self }
        var bytes: [UInt8] = []
        var iterator = Array(utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
