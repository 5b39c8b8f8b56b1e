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
    let tokenHeader: String
    let tokenHeaderLowercased: String
    /// Connections to the upstream; `nil` when only forward-auth is served.
    let pools: UpstreamPools?

    init(configuration: TollgateConfiguration, verifier: TokenVerifier, metrics: ProxyMetrics, pools: UpstreamPools?) {
        self.configuration = configuration
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
        tokenHeader = configuration.token.header
        tokenHeaderLowercased = configuration.token.header.lowercased()
    }

    var realm: String { configuration.realm }

    func counters(for routeIndex: Int?) -> RouteCounters {
        routeCounters[routeIndex ?? (routeCounters.count - 1)]
    }

    func isTrusted(_ address: SocketAddress?) -> Bool {
        guard !trustedProxies.isEmpty, let bytes = address?.addressBytes else { return false }
        return trustedProxies.contains { $0.contains(bytes) }
    }

    // MARK: - Steps 1–6

    /// Limits, normalisation, route match, token extraction and, when it can answer without
    /// waiting, verification and authorisation. `target` is in origin form.
    func evaluate(method: String, target: String, head: RequestHead) -> GateDecision {
        let server = configuration.server
        if target.utf8.count > server.maximumRequestLine {
            return .respond(GateError(.requestTargetTooLong), nil)
        }
        if head.count > server.maximumHeaderCount || head.fieldBytes > server.maximumHeaderBytes {
            return .respond(GateError(.headersTooLarge), nil)
        }
        let normalized: PathNormalizer.Normalized
        switch PathNormalizer.normalize(target, options: configuration.paths) {
        case .success(let value): normalized = value
        case .failure(let rejection): return .respond(GateError(.badPath, rejection.reason), nil)
        }
        let routes = configuration.routes
        let index = routes.matchIndex(method: method, path: normalized.path)
        let matched = MatchedRequest(
            method: method,
            normalized: normalized,
            routeIndex: index,
            routeName: index.map { routes.routes[$0].name } ?? "default"
        )
        let acceptedIssuers: [String]?
        if let index {
            switch routes.routes[index].authentication {
            case .none: return .pass(matched, nil)
            case .required(let issuers): acceptedIssuers = issuers
            }
        } else {
            switch routes.defaultAction {
            case .deny: return .respond(GateError(.noRoute), matched)
            case .authenticated: acceptedIssuers = nil
            }
        }
        let token: String
        switch extractToken(head: head, query: normalized.query) {
        case .token(let value): token = value
        case .missing: return .respond(GateError(.missingToken), matched)
        case .malformed(let description): return .respond(GateError(.badTokenRequest, description), matched)
        }
        let digest = TokenDigest(token: token)
        switch verifier.verifyLocally(token, digest: digest, acceptedIssuers: acceptedIssuers) {
        case .verified(let verified):
            return authorize(verified, matched: matched)
        case .failed(let failure):
            return .respond(GateError(failure), matched)
        case .needsKeyRefresh, .needsIntrospection:
            return .verify(matched, token: token, acceptedIssuers: acceptedIssuers)
        }
    }

    func authorize(_ token: VerifiedToken, matched: MatchedRequest) -> GateDecision {
        guard let routeIndex = matched.routeIndex else { return .pass(matched, token) }
        switch configuration.routes.routes[routeIndex].authorize(token) {
        case .allowed: return .pass(matched, token)
        case .insufficientScope(let scope):
            return .respond(GateError(.insufficientScope, "the token lacks '\(scope)'", scope: scope), matched)
        case .conditionFailed:
            return .respond(GateError(.claimCondition), matched)
        }
    }

    /// The matched route, if any.
    func route(_ matched: MatchedRequest) -> Route? {
        matched.routeIndex.map { configuration.routes.routes[$0] }
    }

    /// Step 4's token lookup: the configured header (`Bearer`), else the cookie, else the query
    /// parameter when configured; two sources, or the header twice, are a 400 (RFC 6750 §2).
    enum ExtractedToken: Equatable {
        case token(String)
        case missing
        case malformed(String)
    }

    func extractToken(head: RequestHead, query: String?) -> ExtractedToken {
        var headerIndex: Int?
        var seen = 0
        let tokenHeader = tokenHeaderLowercased
        head.forEachField { index, name, _ in
            if name.equalsLowercased(tokenHeader) {
                seen += 1
                headerIndex = index
            }
            return true
        }
        if seen > 1 { return .malformed("the \(self.tokenHeader) header appears more than once") }
        var found: String?
        if let headerIndex {
            switch Self.bearerToken(in: head.value(at: headerIndex)) {
            case .token(let token): found = token
            case .missing: return .missing
            case .malformed(let description): return .malformed(description)
            }
        }
        if found == nil, let cookieName = configuration.token.cookie {
            found = Self.cookie(named: cookieName, in: head.values(name: "cookie"))
        }
        if let parameter = configuration.token.queryParameter, let query,
            let value = Self.queryValue(named: parameter, in: query)
        {
            if found != nil { return .malformed("the token is sent in more than one way") }
            found = value
        }
        guard let found, !found.isEmpty else { return .missing }
        return .token(found)
    }

    /// `Bearer <token>` (scheme case-insensitive, surrounding blanks allowed); another scheme
    /// (Basic, DPoP…) is not a bearer token and is answered as no token. Works on the value's
    /// bytes: this runs on every request.
    private static let bearerPrefix: [UInt8] = Array("bearer ".utf8)

    static func bearerToken(in value: String) -> ExtractedToken {
        var value = value
        return value.withUTF8 { bytes -> ExtractedToken in
            let prefix = bearerPrefix
            guard bytes.count > 7 else { return .missing }
            for index in 0..<7 {
                let byte = bytes[index]
                let lower = byte >= 65 && byte <= 90 ? byte + 32 : byte
                if lower != prefix[index] { return .missing }
            }
            var start = 7
            var end = bytes.count
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            guard start < end else { return .malformed("the bearer token is malformed") }
            for index in start..<end where bytes[index] <= 0x20 || bytes[index] >= 0x7F {
                return .malformed("the bearer token is malformed")
            }
            return .token(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self))
        }
    }

    static func cookie(named name: String, in values: [String]) -> String? {
        for value in values {
            for pair in value.split(separator: ";") {
                let trimmed = pair.trimmingSpaces()
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name { return String(trimmed[trimmed.index(after: equals)...]) }
            }
        }
        return nil
    }

    static func queryValue(named name: String, in query: String) -> String? {
        for pair in query.split(separator: "&") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            if pair[..<equals] == name {
                return String(pair[pair.index(after: equals)...]).removingPercentEncodingLeniently()
            }
        }
        return nil
    }
}

extension StringProtocol {
    func caseInsensitiveEquals(_ other: some StringProtocol) -> Bool {
        let lhs = utf8
        let rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        for (a, b) in zip(lhs, rhs) where a != b {
            let la = a >= 65 && a <= 90 ? a + 32 : a
            let lb = b >= 65 && b <= 90 ? b + 32 : b
            if la != lb { return false }
        }
        return true
    }

    /// Like `caseInsensitiveEquals`, with `_` in `self` read as `-` (`other` is lower-case).
    func caseInsensitiveEqualsFoldingUnderscore(_ other: some StringProtocol) -> Bool {
        let lhs = utf8
        let rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        for (a, b) in zip(lhs, rhs) where a != b {
            var folded = a >= 65 && a <= 90 ? a + 32 : a
            if folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
            if folded != b { return false }
        }
        return true
    }

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

extension SocketAddress {
    /// The raw 4 or 16 address bytes of an IP address.
    var addressBytes: [UInt8]? {
        switch self {
        // sockaddr_in: family (2), port (2), address (4); sockaddr_in6: family (2), port (2),
        // flow info (4), address (16).
        case .v4(let address):
            return withUnsafeBytes(of: address.address) { Array($0[4..<8]) }
        case .v6(let address):
            return withUnsafeBytes(of: address.address) { Array($0[8..<24]) }
        case .unixDomainSocket:
            return nil
        }
    }
}
