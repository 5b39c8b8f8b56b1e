import HTTPTypes
import NIOCore
import NIOHTTP1
import Prometheus
import TollgateCore

/// DESIGN's request pipeline for one request head, as steps that return what happens next:
/// the head check, a local endpoint, forward-auth, routing and the gate's decision (steps 1–6),
/// and the head rewritten for the upstream (step 7). `ProxyHandler` performs what they return
/// and feeds `ExchangeStateMachine`; nothing here touches a channel.
struct RequestPipeline {
    let snapshot: ProxySnapshot
    let isHTTP2: Bool
    let scheme: String
    let peer: SocketAddress?
    let peerAddress: String
    /// The RFC 8705 thumbprint of the certificate this connection's client presented over TLS.
    let clientCertificate: String?

    init(
        snapshot: ProxySnapshot,
        isHTTP2: Bool,
        scheme: String,
        peer: SocketAddress?,
        peerAddress: String,
        clientCertificate: String? = nil
    ) {
        self.clientCertificate = clientCertificate
        self.snapshot = snapshot
        self.isHTTP2 = isHTTP2
        self.scheme = scheme
        self.peer = peer
        self.peerAddress = peerAddress
    }

    /// What the later steps need of the request.
    struct Request {
        /// The head, checked (`RequestHead.check`).
        let head: RequestHead
        /// The method and path the gate decided on (forward-auth's original ones).
        let method: String
        let path: String
        let isForwardAuth: Bool
    }

    enum Start {
        /// Refused before a route was matched. `headRefused`: the head itself failed the check,
        /// and the connection closes after the answer.
        case refuse(GateError, path: String, headRefused: Bool)
        /// Answered here without a token, ahead of routing: a protected resource's metadata.
        case answer(VerdictResponse, path: String)
        /// For a local endpoint (the in-process issuer): its body is collected, then it answers.
        /// For a local endpoint, once its body is read.
        case local(any LocalEndpoints, LocalRequest, path: String)
        /// Routed: answer, pass or verify first.
        case decided(GateDecision, Request)
    }

    /// Steps 1–6 for `head`.
    /// - Parameter hasUpstream: an upstream is configured (otherwise only forward-auth is served).
    func start(_ head: consuming RequestHead, localEndpoints: (any LocalEndpoints)?, hasUpstream: Bool) -> Start {
        var head = head
        do {
            try head.check(isHTTP2: isHTTP2)
        } catch {
            return .refuse(error, path: Self.pathOf(head.uri), headRefused: true)
        }

        // RFC 9728 §3: the metadata of the resources the routes declare, to anyone, ahead of
        // routing and the default action.
        if !snapshot.resourceDocuments.isEmpty, head.method == .GET || head.method == .HEAD {
            let path = Self.pathOf(head.target)
            if let document = snapshot.resourceDocuments[path] {
                let answer = VerdictResponse(
                    status: 200,
                    headers: [("Content-Type", "application/json"), ("Cache-Control", "max-age=300")],
                    body: document
                )
                return .answer(answer, path: path)
            }
        }

        if let localEndpoints {
            let path = Self.pathOf(head.target)
            if localEndpoints.handles(path: path) {
                let request = HTTPRequest(localRequest: head, scheme: scheme)
                let local = LocalRequest(
                    head: request,
                    body: [],
                    clientAddress: clientAddress(head),
                    clientCertificate: presentedCertificate(head)
                )
                return .local(localEndpoints, local, path: path)
            }
        }

        var method = head.method.rawValue
        var target = head.target
        let forwardAuth = ForwardAuthRequest.parse(
            method: method,
            target: target,
            headers: head,
            configuredPath: snapshot.configuration.forwardAuth?.path
        )
        if let forwardAuth {
            guard snapshot.isTrusted(peer) else {
                return .refuse(GateError(.untrustedForwarder), path: Self.pathOf(target), headRefused: false)
            }
            method = forwardAuth.method
            target = forwardAuth.target
        } else if !hasUpstream {
            return .refuse(
                GateError(.notFound, "no upstream is configured"),
                path: Self.pathOf(target),
                headRefused: false
            )
        }
        let decision = evaluate(method: method, target: target, head: head)
        return .decided(
            decision,
            Request(head: head, method: method, path: Self.pathOf(target), isForwardAuth: forwardAuth != nil)
        )
    }

    /// Limits, normalisation, route match, token extraction and, when it can answer without
    /// waiting, verification and authorisation. `target` is in origin form.
    func evaluate(method: String, target: String, head: RequestHead) -> GateDecision {
        // The configuration is read in place (`snapshot.configuration.…`): binding it, or one of
        // its parts, to a local would copy the struct and retain everything in it.
        if target.utf8.count > snapshot.configuration.server.maximumRequestLine {
            return .respond(GateError(.requestTargetTooLong), nil)
        }
        if head.count > snapshot.configuration.server.maximumHeaderCount
            || head.fieldBytes > snapshot.configuration.server.maximumHeaderBytes
        {
            return .respond(GateError(.headersTooLarge), nil)
        }
        let normalized: PathNormalizer.Normalized
        switch PathNormalizer.normalize(target, options: snapshot.configuration.paths) {
        case .success(let value): normalized = value
        case .failure(let rejection): return .respond(GateError(.badPath, rejection.reason), nil)
        }
        let index = snapshot.configuration.routes.matchIndex(method: method, path: normalized.path)
        let matched = MatchedRequest(
            method: method,
            normalized: normalized,
            routeIndex: index,
            routeName: index.map { snapshot.configuration.routes.routes[$0].name } ?? "default"
        )
        let acceptedIssuers: [String]?
        if let index {
            switch snapshot.configuration.routes.routes[index].authentication {
            case .none: return .pass(matched, nil)
            case .required(let issuers): acceptedIssuers = issuers
            }
        } else {
            switch snapshot.configuration.routes.defaultAction {
            case .deny: return .respond(GateError(.noRoute), matched)
            case .authenticated: acceptedIssuers = nil
            }
        }
        let token: String
        var presentedWithDPoP = false
        switch extractToken(head: head, query: normalized.query) {
        case .token(let value):
            token = value
        case .dpop(let value):
            token = value
            presentedWithDPoP = true
        case .missing: return .respond(GateError(.missingToken), matched)
        case .malformed(let description): return .respond(GateError(.badTokenRequest, description), matched)
        }
        // The cache key is the token's SHA-256, which is also what a DPoP proof's `ath` names.
        let digest = TokenDigest(token: token)
        var binding = TokenBinding.bearer
        if presentedWithDPoP {
            // RFC 9449: the proof is checked on every request, before any cache is consulted.
            switch checkProof(digest: digest, method: method, target: target, head: head, matched: matched) {
            case .success(let proof): binding = .dpop(proof)
            case .failure(let error): return .respond(error, matched)
            }
        }
        switch snapshot.verifier.verifyLocally(token, digest: digest, acceptedIssuers: acceptedIssuers) {
        case .verified(let verified):
            return authorize(verified, matched: matched, binding: binding, head: head)
        case .failed(let failure):
            return .respond(GateError(failure), matched)
        case .needsKeyRefresh, .needsIntrospection:
            return .verify(matched, token: token, acceptedIssuers: acceptedIssuers, binding: binding)
        }
    }

    /// `error` with what a client needs to act on it when the route is a protected resource
    /// (RFC 9728 §5.1, and the MCP authorization rules): the metadata URL on every challenge, and
    /// the route's scopes, all of them in one challenge.
    /// - Parameter extraScopes: what an MCP rule asks on top of the route's scopes.
    func challenged(_ refusal: GateError, _ matched: MatchedRequest?, extraScopes: [String] = []) -> GateError {
        var error = withDPoPChallenge(refusal, matched)
        guard let matched, let route = snapshot.route(matched) else { return error }
        var scopes: [String] = []
        for scope in (route.scopes?.all ?? []) + (route.scopes?.any ?? []) + extraScopes where !scopes.contains(scope) {
            scopes.append(scope)
        }
        guard let resource = route.resource else {
            if extraScopes.isEmpty || error.code != .insufficientScope { return error }
            var widened = GateError(error.code, error.reason, scope: scopes.joined(separator: " "))
            widened.dpopChallenge = error.dpopChallenge
            return widened
        }
        error.resourceChallenge = GateError.ResourceChallenge(
            metadataURL: resource.metadataURL,
            scope: scopes.isEmpty ? nil : scopes.joined(separator: " ")
        )
        return error
    }

    /// Step 5 when it has to wait (a key refresh or an introspection call), then step 6: the
    /// decision, never `.verify` again.
    func verify(
        _ token: String,
        acceptedIssuers: [String]?,
        matched: MatchedRequest,
        binding: TokenBinding = .bearer,
        head: RequestHead? = nil,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<GateDecision> {
        let verifier = snapshot.verifier
        let metrics = snapshot.metrics
        let started = NIODeadline.now()
        return eventLoop.makeFutureWithTask {
            await verifier.verify(token, acceptedIssuers: acceptedIssuers)
        }.map { [self] result in
            metrics.verificationLatency.record(
                .nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds))
            )
            switch result {
            case .success(let token):
                let next = authorize(token, matched: matched, binding: binding, head: head)
                if case .verify = next {
                    return .respond(
                        GateError(VerificationFailure(.keysUnavailable, "verification did not finish")),
                        matched
                    )
                }
                return next
            case .failure(let failure):
                return .respond(GateError(failure), matched)
            }
        }
    }

    func authorize(
        _ token: VerifiedToken,
        matched: MatchedRequest,
        binding: TokenBinding = .bearer,
        head: RequestHead? = nil
    ) -> GateDecision {
        // RFC 8705: a token bound to a certificate goes only with that certificate, presented
        // over this TLS connection or, from a trusted proxy, in `Client-Cert` (RFC 9440).
        // One lookup of `cnf` on the common path: an unbound bearer token where nothing requires DPoP.
        let confirmation = token.claims["cnf"]
        if confirmation != nil || binding != .bearer || snapshot.requiresDPoPSomewhere {
            if case .string(let bound)? = confirmation?["x5t#S256"], bound != presentedCertificate(head) {
                return .respond(
                    GateError(.certificateBinding, "the token is bound to another client certificate"),
                    matched
                )
            }
            if let refusal = bindingRefusal(token, matched: matched, binding: binding) {
                return .respond(refusal, matched)
            }
        }
        guard let index = matched.routeIndex else { return .pass(matched, token, handsOnNonce: binding.nonceIsAging) }
        if snapshot.hasCertificateRules {
            switch snapshot.configuration.routes.routes[index].clientCertificate {
            case .optional:
                break
            case .required:
                if presentedCertificate(head) == nil { return .respond(GateError(.clientCertificateRequired), matched) }
            case .bound:
                // A bound token's certificate was checked above; here only whether it is bound.
                if confirmation?["x5t#S256"]?.stringValue == nil {
                    return .respond(
                        GateError(.certificateBindingRequired, "this route takes only certificate-bound tokens"),
                        matched
                    )
                }
            }
        }
        // The route is read in place: binding it would copy it and retain every field of it.
        // RFC 8707 and the MCP rules: a protected resource accepts only tokens issued for it.
        if snapshot.configuration.routes.routes[index].resource != nil,
            !snapshot.configuration.routes.routes[index].resource!.isAudience(of: token.claims)
        {
            return .respond(
                GateError(VerificationFailure(.audienceMismatch, "'aud' does not name the route's resource")),
                matched
            )
        }
        switch snapshot.configuration.routes.routes[index].authorize(token) {
        case .allowed: return .pass(matched, token, handsOnNonce: binding.nonceIsAging)
        case .insufficientScope(let scope):
            return .respond(GateError(.insufficientScope, "the token lacks '\(scope)'", scope: scope), matched)
        case .conditionFailed:
            return .respond(GateError(.claimCondition), matched)
        case .insufficientUserAuthentication(let reason):
            let route = snapshot.configuration.routes.routes[index]
            var error = GateError(.insufficientUserAuthentication, reason)
            error.stepUp = GateError.StepUp(
                acrValues: route.acrValues.isEmpty ? nil : route.acrValues.joined(separator: " "),
                maxAge: route.maxAge.map { Int($0) }
            )
            // RFC 9470 §3 holds for either scheme: a client that presented a DPoP-bound token
            // reads the challenge of its own scheme.
            if case .dpop = binding { error.dpopChallenge = dpopChallenge }
            return .respond(error, matched)
        }
    }

    /// Step 6 on an MCP route, once the JSON-RPC body is read: the request must be one valid
    /// message whose `Mcp-Method`/`Mcp-Name` agree with it, and the token must pass every rule for
    /// its method and the tool, prompt or resource it names. A refusal's challenge lists all the
    /// scopes the request needs (the route's and the rules'), as the MCP step-up expects.
    func inspect(
        _ body: [UInt8],
        head: RequestHead,
        matched: MatchedRequest,
        token: VerifiedToken
    ) -> Result<
        MCPRequest, GateError
    > {
        guard let policy = snapshot.mcpPolicy(matched) else {
            return .success(MCPRequest(method: nil, name: nil, id: nil))
        }
        // A coded body is not what the gate read: refused rather than guessed at.
        for coding in head.values(name: "content-encoding")
        where !coding.trimmingSpaces().isEmpty && coding.trimmingSpaces().lowercased() != "identity" {
            var error = GateError(.mcpInvalidRequest, "a JSON-RPC body with Content-Encoding")
            error.jsonRPC = GateError.JSONRPCError(id: nil, code: .invalidRequest)
            return .failure(error)
        }
        // An HTTP/2 GET or DELETE is read too, in case DATA frames came with it; none did.
        if body.isEmpty && head.method != .POST { return .success(MCPRequest(method: nil, name: nil, id: nil)) }
        let request: MCPRequest
        switch MCPRequest.parse(
            body,
            methodHeader: head.values(name: "mcp-method"),
            nameHeader: head.values(name: "mcp-name")
        ) {
        case .success(let parsed): request = parsed
        case .failure(let error): return .failure(error)
        }
        guard let method = request.method else { return .success(request) }
        for rule in policy.rules(method: method, name: request.name) {
            switch rule.decision(for: token) {
            case .allowed:
                continue
            case .insufficientScope:
                let error = GateError(.insufficientScope, "the token lacks a scope '\(method)' needs")
                return .failure(
                    challenged(error, matched, extraScopes: policy.scopes(method: method, name: request.name))
                )
            case .conditionFailed(let condition), .insufficientUserAuthentication(let condition):
                return .failure(GateError(.mcpDenied, "'\(method)' refused: \(condition)"))
            }
        }
        return .success(request)
    }

    /// Step 4's token lookup: the configured header (`Bearer`), else the cookie, else the query
    /// parameter when configured; two sources, or the header twice, are a 400 (RFC 6750 §2).
    enum ExtractedToken: Equatable {
        case token(String)
        /// `Authorization: DPoP <token>` (RFC 9449 §7.1).
        case dpop(String)
        case missing
        case malformed(String)
    }

    func extractToken(head: RequestHead, query: String?) -> ExtractedToken {
        // `Authorization` was located by the parser; another configured header is looked up.
        var position = head.known.authorization
        if snapshot.tokenHeaderLowercased != "authorization" {
            position = KnownFields.Position()
            let wanted = snapshot.tokenHeaderLowercased
            head.forEachField { index, name, _ in
                if name.equalsIgnoringASCIICase(wanted.utf8) { position.saw(index) }
                return true
            }
        }
        if position.count > 1 {
            return .malformed("the \(snapshot.configuration.token.header) header appears more than once")
        }
        var found: String?
        if let index = position.first {
            switch head.withValue(at: index, Self.bearerToken(in:)) {
            case .token(let value): found = value
            case .dpop(let value):
                // Only in the Authorization header; never beside a cookie or query token.
                if snapshot.tokenHeaderLowercased != "authorization" { return .missing }
                if let parameter = snapshot.configuration.token.queryParameter, let query,
                    Self.queryValue(named: parameter, in: query) != nil
                {
                    return .malformed("the token is sent in more than one way")
                }
                return .dpop(value)
            case .missing: return .missing
            case .malformed(let description): return .malformed(description)
            }
        }
        if found == nil, let cookieName = snapshot.configuration.token.cookie, head.known.cookie.count > 0 {
            found = Self.cookie(named: cookieName, in: head.values(name: "cookie"))
        }
        if let parameter = snapshot.configuration.token.queryParameter, let query,
            let value = Self.queryValue(named: parameter, in: query)
        {
            if found != nil { return .malformed("the token is sent in more than one way") }
            found = value
        }
        guard let found, !found.isEmpty else { return .missing }
        return .token(found)
    }

    /// `Bearer <token>` (scheme case-insensitive, surrounding blanks allowed); another scheme
    /// (Basic, DPoP…) is not a bearer token and is answered as no token. Reads the field's bytes
    /// as received: the token is copied once, into the string verification takes.
    static func bearerToken(in value: UnsafeRawBufferPointer.SubSequence) -> ExtractedToken {
        let bytes = UnsafeRawBufferPointer(rebasing: value)
        let isDPoP: Bool
        if bytes.count > 7, bytes[0..<7].equalsIgnoringASCIICase(HTTP1Syntax.ascii("bearer ")) {
            isDPoP = false
        } else if bytes.count > 5, bytes[0..<5].equalsIgnoringASCIICase(HTTP1Syntax.ascii("dpop ")) {
            isDPoP = true
        } else {
            return .missing
        }
        var start = isDPoP ? 5 : 7
        var end = bytes.count
        while start < end, bytes[start] == .space || bytes[start] == .htab { start += 1 }
        while end > start, bytes[end - 1] == .space || bytes[end - 1] == .htab { end -= 1 }
        guard start < end else { return .malformed("the bearer token is malformed") }
        let token = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        var index = 0
        while index + 8 <= token.count,
            !ByteWord.hasNonVisible(token.loadUnaligned(fromByteOffset: index, as: UInt64.self))
        {
            index += 8
        }
        if token[index...].contains(where: { $0 <= 0x20 || $0 >= 0x7F }) {
            return .malformed("the bearer token is malformed")
        }
        let text = String(decoding: token, as: UTF8.self)
        return isDPoP ? .dpop(text) : .token(text)
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

    /// The client's address for a local endpoint: the trusted proxy's own entry is the last of
    /// all the `X-Forwarded-For` lines together; anything that is not an address (a client's free
    /// text) is not used.
    private func clientAddress(_ head: RequestHead) -> String {
        if snapshot.isTrusted(peer),
            let last = head.values(name: "x-forwarded-for").joined(separator: ",").split(separator: ",").last
                .map({ String($0.trimmingSpaces()) }),
            (try? SocketAddress(ipAddress: last, port: 0)) != nil
        {
            return last
        }
        return peerAddress
    }

    /// Step 7: the head for the upstream, and the upgrade it relays, if any.
    func upstreamRequest(
        _ request: Request,
        matched: MatchedRequest,
        token: VerifiedToken?,
        basePath: String,
        requestID: String,
        readsAnswer: Bool = false,
        random: inout SplitMix64,
        allocator: ByteBufferAllocator
    ) -> Result<(head: UpstreamRequestHead, upgradeProtocols: [String]?), GateError> {
        let head = request.head
        let upgradeProtocols = head.upgradeProtocols
        let index = matched.routeIndex
        // Only the upgrades the route allows are relayed (WebSocket by default), never h2c: an
        // upgrade the upstream accepted would be a tunnel past the gate. Any other asks the
        // upstream nothing: Upgrade and HTTP2-Settings are removed.
        let isUpgrade =
            !isHTTP2 && !upgradeProtocols.isEmpty
            && upgradeProtocols.allSatisfy { name in
                name != "h2c"
                    && (index.map { snapshot.configuration.routes.routes[$0].upgrades.contains(name) }
                        ?? (name == "websocket"))
            }
        let incomingTrace = head.value(of: head.known.traceparent)
        let traceparent =
            incomingTrace.flatMap { TraceParent.isValid($0) ? $0 : nil } ?? TraceParent.start(using: &random)
        let connection = ClientConnection(
            peerAddress: peerAddress,
            peerTrusted: snapshot.isTrusted(peer),
            scheme: scheme
        )
        switch upstreamHead(
            from: head,
            basePath: basePath,
            requestTarget: matched.normalized.requestTarget,
            token: token,
            connection: connection,
            requestID: requestID,
            traceparent: traceparent,
            isUpgrade: isUpgrade,
            allowsOverrideHeaders: index.map { snapshot.configuration.routes.routes[$0].allowsOverrideHeaders }
                ?? false,
            keepsToken: index.map { snapshot.configuration.routes.routes[$0].forwardsToken } ?? true,
            keepsAcceptEncoding: !readsAnswer,
            allocator: allocator
        ) {
        case .success(let upstream): return .success((upstream, isUpgrade ? upgradeProtocols : nil))
        case .failure: return .failure(GateError(.unsafeClaimValue))
        }
    }

    static func pathOf(_ target: String) -> String {
        // Over the bytes: `String.firstIndex(of:)` would walk the target as `Character`s.
        if let question = target.utf8.firstIndex(of: UInt8(ascii: "?")) { return String(target[..<question]) }
        return target
    }

    /// A client's `X-Request-Id` when it is short and plain, else a new random one.
    static func requestID(from head: RequestHead, random: inout SplitMix64) -> String {
        if let index = head.known.requestID.first,
            let given = head.withValue(
                at: index,
                { value -> String? in
                    guard !value.isEmpty, value.count <= 128,
                        value.allSatisfy({
                            $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\")
                        })
                    else { return nil }
                    return String(decoding: value, as: UTF8.self)
                }
            )
        {
            return given
        }
        return TraceParent.hex(random.next(), random.next())
    }
}
