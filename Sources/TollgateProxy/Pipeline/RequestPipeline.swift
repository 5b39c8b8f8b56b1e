import HTTPTypes
import NIOCore
import NIOHTTP1
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

    /// What the later steps need of the request.
    struct Request {
        let head: RequestHead
        let checked: CheckedRequestHead
        /// The method and path the gate decided on (forward-auth's original ones).
        let method: String
        let path: String
        let isForwardAuth: Bool
    }

    enum Start {
        /// Refused before a route was matched. `checked` is `nil` when the head itself failed the
        /// check: the connection closes after the answer.
        case refuse(GateError, path: String, checked: CheckedRequestHead?)
        /// For a local endpoint (the in-process issuer): its body is collected, then it answers.
        case local(any LocalEndpoints, HTTPRequest, clientAddress: String, path: String, checked: CheckedRequestHead)
        /// Routed: answer, pass or verify first.
        case decided(GateDecision, Request)
    }

    /// Steps 1–6 for `head`.
    /// - Parameter hasUpstream: an upstream is configured (otherwise only forward-auth is served).
    func start(_ head: RequestHead, localEndpoints: (any LocalEndpoints)?, hasUpstream: Bool) -> Start {
        let checked: CheckedRequestHead
        switch CheckedRequestHead.check(head, isHTTP2: isHTTP2) {
        case .success(let value): checked = value
        case .failure(let error): return .refuse(error, path: Self.pathOf(head.uri), checked: nil)
        }

        if let localEndpoints {
            let path = Self.pathOf(checked.target)
            if localEndpoints.handles(path: path) {
                let request = HTTPRequest(localRequest: head, checked: checked, scheme: scheme)
                return .local(
                    localEndpoints,
                    request,
                    clientAddress: clientAddress(head),
                    path: path,
                    checked: checked
                )
            }
        }

        var method = head.method.rawValue
        var target = checked.target
        let forwardAuth = ForwardAuthRequest.parse(
            method: method,
            target: target,
            headers: head,
            configuredPath: snapshot.configuration.forwardAuth?.path
        )
        if let forwardAuth {
            guard snapshot.isTrusted(peer) else {
                return .refuse(GateError(.untrustedForwarder), path: Self.pathOf(target), checked: checked)
            }
            method = forwardAuth.method
            target = forwardAuth.target
        } else if !hasUpstream {
            return .refuse(
                GateError(.notFound, "no upstream is configured"),
                path: Self.pathOf(target),
                checked: checked
            )
        }
        let decision = snapshot.evaluate(method: method, target: target, head: head)
        return .decided(
            decision,
            Request(
                head: head,
                checked: checked,
                method: method,
                path: Self.pathOf(target),
                isForwardAuth: forwardAuth != nil
            )
        )
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
        random: inout SplitMix64,
        allocator: ByteBufferAllocator
    ) -> Result<(head: UpstreamRequestHead, upgradeProtocols: [String]?), GateError> {
        let route = snapshot.route(matched)
        let checked = request.checked
        // Only the upgrades the route allows are relayed (WebSocket by default), never h2c: an
        // upgrade the upstream accepted would be a tunnel past the gate. Any other asks the
        // upstream nothing: Upgrade and HTTP2-Settings are removed.
        let allowed = route?.upgrades ?? ["websocket"]
        let isUpgrade =
            !isHTTP2 && !checked.upgradeProtocols.isEmpty
            && checked.upgradeProtocols.allSatisfy { $0 != "h2c" && allowed.contains($0) }
        let incomingTrace = request.head.first(name: "traceparent")
        let traceparent =
            incomingTrace.flatMap { TraceParent.isValid($0) ? $0 : nil } ?? TraceParent.start(using: &random)
        let connection = ClientConnection(
            peerAddress: peerAddress,
            peerTrusted: snapshot.isTrusted(peer),
            scheme: scheme
        )
        switch snapshot.upstreamHead(
            from: request.head,
            basePath: basePath,
            requestTarget: matched.normalized.requestTarget,
            checked: checked,
            token: token,
            connection: connection,
            requestID: requestID,
            traceparent: traceparent,
            isUpgrade: isUpgrade,
            allowsOverrideHeaders: route?.allowsOverrideHeaders ?? false,
            allocator: allocator
        ) {
        case .success(let head): return .success((head, isUpgrade ? checked.upgradeProtocols : nil))
        case .failure: return .failure(GateError(.unsafeClaimValue))
        }
    }

    static func pathOf(_ target: String) -> String {
        if let question = target.firstIndex(of: "?") { return String(target[..<question]) }
        return target
    }

    /// A client's `X-Request-Id` when it is short and plain, else a new random one.
    static func requestID(from head: RequestHead, random: inout SplitMix64) -> String {
        if let given = head.first(name: "x-request-id"), !given.isEmpty, given.utf8.count <= 128,
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
        {
            return given
        }
        return TraceParent.hex(random.next(), random.next())
    }
}
