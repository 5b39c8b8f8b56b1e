import HTTPTypes
import NIOCore
import NIOHTTP1
import Prometheus
import TollgateCore

/// One client connection (HTTP/1.1) or one HTTP/2 stream: runs DESIGN's pipeline for each request
/// and streams the exchange to and from the upstream.
///
/// Everything happens on the channel's event loop. The only suspension is verification that
/// needs a key refresh or an introspection call; meanwhile the request body is held and reads
/// from the client pause. Reads also pause whenever the other side cannot take more data, so
/// memory stays bounded whatever the body size.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = RequestPart
    typealias OutboundIn = ClientResponsePart
    typealias OutboundOut = ClientResponsePart

    private enum State {
        case idle
        /// Verifying or connecting: request parts are buffered.
        case waiting
        /// Connected: request parts go upstream, response parts come back.
        case forwarding(UpstreamConnection)
        /// Answered locally (or the upstream answered early): remaining request parts are dropped.
        case discarding
        /// A WebSocket (or other) upgrade went through: bytes are relayed raw.
        case upgraded
        /// A request for a local endpoint (the in-process issuer): its body is collected, then
        /// the endpoint answers.
        case local(any LocalEndpoints, HTTPRequest, clientAddress: String)
    }

    private let runtime: ProxyRuntime
    private let scheme: String
    private let isHTTP2: Bool
    private var context: ChannelHandlerContext?
    private var state = State.idle
    private var exchange: ProxyExchange?
    private var buffered: [UpstreamRequestPart] = []
    /// The body of a local endpoint's request, bounded by `maximumLocalBodyBytes`.
    private var localBody: [UInt8] = []
    /// The connection's one repeating timeout check (`ConnectionTimers`).
    private var ticker: RepeatedTask?
    /// Keep-alive, pipelining, held reads and the head timeouts: the connection's decisions.
    private var connection: ConnectionStateMachine
    private var random = SplitMix64()
    private var peer: SocketAddress?
    /// The peer's address as text, formatted once per connection.
    private lazy var peerAddress: String = peer?.ipAddress ?? "unknown"

    /// Where upstream connections come from when not the event loop's pool (an exchange driven in
    /// process).
    private let upstreams: (any UpstreamConnecting)?

    init(runtime: ProxyRuntime, scheme: String, isHTTP2: Bool, upstreams: (any UpstreamConnecting)? = nil) {
        self.runtime = runtime
        self.scheme = scheme
        self.isHTTP2 = isHTTP2
        self.upstreams = upstreams
        connection = ConnectionStateMachine(isStream: isHTTP2, now: .now())
    }

    // MARK: - Connection life

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = isHTTP2 ? context.channel.parent?.remoteAddress : context.channel.remoteAddress
        if context.channel.isActive { connectionStarted(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        connectionStarted(context: context)
        context.fireChannelActive()
    }

    private var started = false

    private func connectionStarted(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        connection = ConnectionStateMachine(isStream: isHTTP2, now: .now())
        startTicker(context: context)
    }

    private func startTicker(context: ChannelHandlerContext) {
        guard ticker == nil else { return }
        let period = ConnectionTimers(runtime.snapshot.configuration).checkInterval(isStream: isHTTP2)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            loopBound.value.tick()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        started = false
        ticker?.cancel()
        ticker = nil
        if case .forwarding(let upstream) = state {
            // The client went away mid-exchange: the upstream connection is in an unknown state.
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
        }
        state = .idle
        buffered.removeAll()
        connection.closed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    private func tick() {
        guard let context else { return }
        let now = NIODeadline.now()
        let timers = ConnectionTimers(runtime.snapshot.configuration)
        if connection.hasTimedOut(now: now, headerTimeout: timers.header, idleTimeout: timers.idle) {
            // Header-read or idle timeout: nothing is in flight, close quietly.
            context.close(promise: nil)
            return
        }
        switch state {
        case .forwarding(let upstream):
            guard let current = exchange else { return }
            // The exchange's own snapshot says how long its upstream may take.
            let limit = ConnectionTimers(current.snapshot.configuration).upstreamResponse
            guard current.upstreamHasTimedOut(now: now, limit: limit) else { return }
            // The upstream did not start answering in time.
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
            current.keepAlive = false
            respondLocally(GateError(.upstreamTimeout))
        case .idle, .waiting, .discarding, .upgraded, .local:
            break
        }
    }

    // MARK: - Reads from the client

    /// Requests a client pipelined before the current response ended are queued by the state
    /// machine and replayed in order once it has. (Done here rather than with NIO's
    /// HTTPServerPipelineHandler, which stops reading during every exchange: two epoll_ctl calls
    /// per request.) After an answer that closes the connection, nothing the client sent is
    /// processed (RFC 9112 §9.6), even if it was already read.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if connection.partReceived(part) == .process { handle(part, context: context) }
    }

    /// Bytes the parser refused, in a head or in a chunked body: 400 (431 for a head too large)
    /// and close when no response has started on the connection (RFC 9112 §2.2), else just close.
    /// A request already on its way upstream is cut there too, so the upstream never sees the
    /// rest as a request of its own.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let refusal: GateError
        if let parseError = error as? HTTP1ParseError, !isHTTP2 {
            refusal = parseError.gateError
        } else {
            context.fireErrorCaught(error)
            return
        }
        connection.parseErrorReceived()
        if let current = exchange, current.requestEnded {
            // The bad bytes follow a complete request, which may already be carried out upstream:
            // let its answer finish, then close.
            current.keepAlive = false
            return
        }
        if case .forwarding(let upstream) = state {
            upstream.handler.delegate = nil
            upstream.channel.close(promise: nil)
            pool = nil
        }
        if let current = exchange {
            guard !current.responseStarted else {
                context.close(promise: nil)
                return
            }
            current.keepAlive = false
            current.hasBody = true
            respondLocally(refusal)
            return
        }
        let current = ProxyExchange(
            started: .now(),
            requestID: TraceParent.hex(random.next(), random.next()),
            method: "-",
            keepAlive: false,
            snapshot: runtime.snapshot
        )
        current.path = "-"
        current.hasBody = true
        exchange = current
        respondLocally(refusal)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !isHTTP2 {
            switch connection.quiesce() {
            case .closeNow: context.close(promise: nil)
            case .closeAfterCurrentExchange: exchange?.keepAlive = false
            case .none: break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func handle(_ part: RequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            if ticker == nil { startTicker(context: context) }
            requestHead(head, context: context)
        case .body(let buffer):
            switch state {
            case .waiting: buffered.append(.body(.byteBuffer(buffer)))
            case .forwarding(let upstream):
                upstream.channel.write(UpstreamRequestPart.body(.byteBuffer(buffer)), promise: nil)
            case .local:
                if localBody.count + buffer.readableBytes > maximumLocalBodyBytes {
                    exchange?.keepAlive = false
                    respondLocally(GateError(.payloadTooLarge))
                } else {
                    localBody += buffer.readableBytesView
                }
            case .idle, .discarding, .upgraded: break
            }
        case .end(var trailers):
            exchange?.requestEnded = true
            if let received = trailers {
                // Trailers could carry forged claim headers: dropped, as nginx and Envoy do, except
                // where the protocol needs them, and there stripped like the head.
                trailers = exchange?.acceptsTrailers == true ? exchange?.snapshot.upstreamTrailers(from: received) : nil
            }
            switch state {
            case .waiting: buffered.append(.end(trailers))
            case .forwarding(let upstream):
                upstream.channel.writeAndFlush(UpstreamRequestPart.end(trailers), promise: nil)
            case .discarding: finishIfComplete()
            case .local(let endpoints, let request, let address): answerLocally(endpoints, request, address)
            case .idle, .upgraded: break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .forwarding(let upstream) = state { upstream.channel.flush() }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if connection.readRequested(exchangeHolds: exchangeHoldsReads) { context.read() }
    }

    /// Whether the exchange wants no more bytes from the client yet.
    private var exchangeHoldsReads: Bool {
        if let current = exchange, current.decoderStops, current.requestEnded {
            // The parser has stopped after this request and would buffer whatever comes: read
            // nothing more until the relay starts or the parser resumes.
            return true
        }
        switch state {
        case .waiting where !(exchange?.requestEnded ?? true):
            // A body is still coming: hold it at the socket until the upstream is there. (A request
            // without one is not held: toggling read interest costs two epoll_ctl calls.)
            return true
        case .forwarding(let upstream) where !upstream.channel.isWritable:
            return true
        default:
            return false
        }
    }

    private func resumeReading() {
        guard let context, connection.resumeReads() else { return }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .forwarding(let upstream) = state {
            upstream.handler.setReadsAllowed(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: - The pipeline

    private func requestHead(_ head: RequestHead, context: ChannelHandlerContext) {
        let snapshot = runtime.snapshot
        let requestID = Self.requestID(from: head, random: &random)
        let current = ProxyExchange(
            started: .now(),
            requestID: requestID,
            method: head.method.rawValue,
            keepAlive: !isHTTP2 && head.isKeepAlive && !runtime.isDraining && !connection.quiescing,
            snapshot: snapshot
        )
        current.hasBody = head.hasBody
        exchange = current
        buffered.removeAll(keepingCapacity: true)

        let checked: CheckedRequestHead
        switch CheckedRequestHead.check(head, isHTTP2: isHTTP2) {
        case .success(let value): checked = value
        case .failure(let error):
            current.path = Self.pathOf(head.uri)
            current.keepAlive = false
            respondLocally(error)
            return
        }
        current.decoderStops = checked.decoderStops
        current.acceptsTrailers = checked.acceptsTrailers
        current.isHead = head.method == .HEAD
        current.isHTTP10 = !isHTTP2 && head.version.minor == 0

        if let endpoints = runtime.localEndpoints {
            let path = Self.pathOf(checked.target)
            if endpoints.handles(path: path) {
                let request = HTTPRequest(localRequest: head, checked: checked, scheme: scheme)
                current.path = path
                current.routeName = "local"
                current.outcome = .public
                localBody.removeAll(keepingCapacity: true)
                // The trusted proxy's own entry is the last of all the lines together; anything
                // that is not an address (a client's free text) is not used.
                var address = peerAddress
                if snapshot.isTrusted(peer),
                    let last = head.values(name: "x-forwarded-for").joined(separator: ",").split(separator: ",").last
                        .map({ String($0.trimmingSpaces()) }),
                    (try? SocketAddress(ipAddress: last, port: 0)) != nil
                {
                    address = last
                }
                state = .local(endpoints, request, clientAddress: address)
                return
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
                current.path = Self.pathOf(target)
                respondLocally(GateError(.untrustedForwarder))
                return
            }
            method = forwardAuth.method
            target = forwardAuth.target
            current.method = method
        } else if snapshot.pools == nil && upstreams == nil {
            current.path = Self.pathOf(target)
            respondLocally(GateError(.notFound, "no upstream is configured"))
            return
        }
        let decision = snapshot.evaluate(method: method, target: target, head: head)
        current.path = Self.pathOf(target)
        decide(decision, head: head, checked: checked, isForwardAuth: forwardAuth != nil, context: context)
    }

    /// Acts on the pipeline's decision: answer, forward, or verify first and decide again.
    private func decide(
        _ decision: GateDecision,
        head: RequestHead,
        checked: CheckedRequestHead,
        isForwardAuth: Bool,
        context: ChannelHandlerContext
    ) {
        guard let current = exchange else { return }
        let snapshot = current.snapshot
        switch decision {
        case .respond(let error, let matched):
            if let matched { record(matched) }
            respondLocally(error)
        case .pass(let matched, let token):
            record(matched)
            if isForwardAuth {
                forwardAuthAllowed(token, snapshot: snapshot)
            } else {
                forward(head, checked: checked, matched: matched, token: token, snapshot: snapshot)
            }
        case .verify(let matched, let token, let acceptedIssuers):
            record(matched)
            state = .waiting
            let verifier = snapshot.verifier
            let started = NIODeadline.now()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.makeFutureWithTask {
                await verifier.verify(token, acceptedIssuers: acceptedIssuers)
            }.whenSuccess { result in
                let handler = loopBound.value
                snapshot.metrics.verificationLatency.record(
                    .nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds))
                )
                guard let context = handler.context, case .waiting = handler.state else { return }
                let next: GateDecision
                switch result {
                case .success(let token): next = snapshot.authorize(token, matched: matched)
                case .failure(let failure): next = .respond(GateError(failure), matched)
                }
                if case .verify = next {
                    handler.respondLocally(
                        GateError(VerificationFailure(.keysUnavailable, "verification did not finish"))
                    )
                    return
                }
                handler.decide(next, head: head, checked: checked, isForwardAuth: isForwardAuth, context: context)
            }
        }
    }

    private func record(_ matched: MatchedRequest) {
        guard let current = exchange else { return }
        current.path = matched.normalized.path
        current.routeIndex = matched.routeIndex
        current.routeName = matched.routeName
    }

    /// Step 7: connect (or reuse), send the rewritten head and whatever body arrived meanwhile.
    private func forward(
        _ head: RequestHead,
        checked: CheckedRequestHead,
        matched: MatchedRequest,
        token: VerifiedToken?,
        snapshot: ProxySnapshot
    ) {
        guard let context, let current = exchange,
            let pool = upstreams ?? snapshot.pools?.pool(for: context.eventLoop)
        else {
            respondLocally(GateError(.notFound, "no upstream"))
            return
        }
        current.outcome = token == nil ? .public : .allowed
        let route = snapshot.route(matched)
        // Only the upgrades the route allows are relayed (WebSocket by default), never h2c: an
        // upgrade the upstream accepted would be a tunnel past the gate. Any other asks the
        // upstream nothing: Upgrade and HTTP2-Settings are removed.
        let allowed = route?.upgrades ?? ["websocket"]
        let isUpgrade =
            !isHTTP2 && !checked.upgradeProtocols.isEmpty
            && checked.upgradeProtocols.allSatisfy { $0 != "h2c" && allowed.contains($0) }
        current.isUpgrade = isUpgrade
        current.upgradeProtocols = isUpgrade ? checked.upgradeProtocols : []
        let incomingTrace = head.first(name: "traceparent")
        let traceparent =
            incomingTrace.flatMap { TraceParent.isValid($0) ? $0 : nil } ?? TraceParent.start(using: &random)
        let connection = ClientConnection(
            peerAddress: peerAddress,
            peerTrusted: snapshot.isTrusted(peer),
            scheme: scheme
        )
        let upstreamHead: UpstreamRequestHead
        switch snapshot.upstreamHead(
            from: head,
            basePath: pool.basePath,
            requestTarget: matched.normalized.requestTarget,
            checked: checked,
            token: token,
            connection: connection,
            requestID: current.requestID,
            traceparent: traceparent,
            isUpgrade: isUpgrade,
            allowsOverrideHeaders: route?.allowsOverrideHeaders ?? false,
            allocator: context.channel.allocator
        ) {
        case .success(let value): upstreamHead = value
        case .failure:
            respondLocally(GateError(.unsafeClaimValue))
            return
        }
        state = .waiting
        buffered.insert(.head(upstreamHead), at: 0)
        if let upstream = pool.takeIdle() {
            exchange?.upstreamHead = upstreamHead
            exchange?.reusedUpstream = true
            connected(upstream, pool: pool)
            return
        }
        connect(pool: pool, future: pool.acquire(), context: context)
    }

    private func connect(
        pool: any UpstreamConnecting,
        future: EventLoopFuture<UpstreamConnection>,
        context: ChannelHandlerContext
    ) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        future.whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(let upstream): handler.connected(upstream, pool: pool)
            case .failure: handler.connectFailed()
            }
        }
    }

    /// A pooled connection the upstream closed while it sat idle is only noticed when a request
    /// is sent on it. Like nginx (`proxy_next_upstream error`), a request that is safe to repeat
    /// (idempotent, no body, nothing answered yet) is sent once more on a new connection.
    private func retryOnFreshConnection() -> Bool {
        guard let context, let pool, let current = exchange, current.reusedUpstream, !current.retried,
            !current.responseStarted, !current.hasBody, !current.isUpgrade, current.requestEnded,
            let head = current.upstreamHead, head.method.isIdempotent
        else { return false }
        exchange?.retried = true
        exchange?.reusedUpstream = false
        self.pool = nil
        state = .waiting
        buffered = [.head(head), .end(nil)]
        connect(pool: pool, future: pool.connect(), context: context)
        return true
    }

    private func connected(_ upstream: UpstreamConnection, pool: any UpstreamConnecting) {
        guard let context, case .waiting = state, exchange != nil else {
            pool.release(upstream, reusable: true)
            return
        }
        self.pool = pool
        upstream.handler.delegate = self
        upstream.handler.setReadsAllowed(context.channel.isWritable)
        state = .forwarding(upstream)
        exchange?.upstreamStarted = .now()
        for part in buffered { upstream.channel.write(part, promise: nil) }
        buffered.removeAll(keepingCapacity: true)
        upstream.channel.flush()
        resumeReading()
    }

    private var pool: (any UpstreamConnecting)?

    private func connectFailed() {
        guard case .waiting = state else { return }
        if let current = exchange, !current.requestEnded { exchange?.keepAlive = false }
        respondLocally(GateError(.upstreamUnreachable))
    }

    // MARK: - The upstream's answer

    func upstreamReceived(_ part: UpstreamResponsePart) {
        guard let context, case .forwarding(let upstream) = state, let current = exchange else { return }
        switch part {
        case .head(let head):
            let action = ResponseRelay.head(
                head,
                upgradeProtocols: current.isUpgrade ? current.upgradeProtocols : nil,
                clientKeepAlive: current.keepAlive,
                client: isHTTP2 ? .http2 : current.isHTTP10 ? .http1_0 : .http1_1,
                isHeadRequest: current.isHead,
                allocator: context.channel.allocator
            )
            if action == .skip { return }
            if let started = current.upstreamStarted {
                current.snapshot.metrics.upstreamLatency.record(
                    .nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - started.uptimeNanoseconds))
                )
            }
            guard case .relay(let relayed) = action else {
                if case .refuse(let reason) = action { refuseUpstreamAnswer(upstream, reason: reason) }
                return
            }
            current.responseStarted = true
            current.status = Int(head.status.code)
            current.upstreamReusable = relayed.upstreamReusable
            if relayed.closesClient { current.keepAlive = false }
            context.write(wrapOutboundOut(relayed.part), promise: nil)
            if relayed.switchesProtocols {
                // The relay starts after the codec has delivered this answer's end; bytes after
                // it are handed on when the codec is removed.
                exchange?.upgradeAccepted = true
                context.flush()
            }
        case .body(let buffer):
            if current.isHead { return }
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable {
                // Stop reading before flushing: the flush may make the channel writable again,
                // and that callback must find reads stopped so it can restart them.
                upstream.handler.setReadsAllowed(false)
                context.flush()
            }
        case .end(let trailers):
            if current.upgradeAccepted {
                startRelay(upstream: upstream)
                return
            }
            if let trailers, !HTTPQuoting.areValidToSend(trailers) {
                cutAfterResponseStarted(upstream, detail: "invalid_response_trailer")
                return
            }
            // The upstream goes back to its pool before the end is written: on an HTTP/2 stream,
            // writing the end closes the stream at once, and its `channelInactive` would find the
            // exchange still forwarding and close a healthy upstream connection (one new upstream
            // connection per stream).
            pool?.release(upstream, reusable: current.requestEnded && current.upstreamReusable)
            pool = nil
            // Otherwise the upstream answered before the request body ended: drop the rest, then
            // finish.
            state = current.requestEnded ? .idle : .discarding
            if current.isHead {
                // No end marker either: the encoder, which does not know the request was HEAD,
                // would write a chunked terminator the client reads as the next response.
                context.flush()
            } else {
                lastWrite = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
            }
            if current.requestEnded {
                finish()
            } else {
                resumeReading()
            }
        }
    }

    /// The upstream's answer cannot be relayed: 502, and neither connection is used again.
    private func refuseUpstreamAnswer(_ upstream: UpstreamConnection, reason: String) {
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
        pool = nil
        exchange?.keepAlive = false
        exchange?.decoderStops = false
        respondLocally(GateError(.upstreamInvalidResponse, reason))
    }

    func upstreamMalformed(_ error: HTTP1ParseError) {
        guard case .forwarding(let upstream) = state, let current = exchange else { return }
        if current.responseStarted {
            cutAfterResponseStarted(upstream, detail: error.reason)
        } else {
            refuseUpstreamAnswer(upstream, reason: error.reason)
        }
    }

    /// The upstream's answer went wrong after its head was relayed: all that is left is to cut
    /// both connections.
    private func cutAfterResponseStarted(_ upstream: UpstreamConnection, detail: String) {
        guard let context, let current = exchange else { return }
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
        pool = nil
        state = .idle
        current.outcome = .upstreamError
        current.reason = GateError.Code.upstreamInvalidResponse.rawValue
        current.detail = detail
        log()
        exchange = nil
        context.close(promise: nil)
    }

    func upstreamReadComplete() {
        // Whatever the upstream sent in this read goes out now (server-sent events, slow streams).
        if case .forwarding = state { context?.flush() }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReading() }
    }

    func upstreamClosed() {
        guard let context, case .forwarding = state, let current = exchange else { return }
        if retryOnFreshConnection() { return }
        pool = nil
        if current.responseStarted {
            // Nothing sensible can be said any more: cut the client connection too.
            state = .idle
            exchange?.outcome = .upstreamError
            exchange?.reason = GateError.Code.upstreamClosed.rawValue
            log()
            exchange = nil
            context.close(promise: nil)
        } else {
            exchange?.keepAlive = false
            respondLocally(GateError(.upstreamClosed))
        }
    }

    // MARK: - WebSocket and other upgrades

    private func startRelay(upstream: UpstreamConnection) {
        guard let context else { return }
        state = .upgraded
        connection.switchedProtocols()
        ticker?.cancel()
        ticker = nil
        log()
        exchange = nil
        let channel = context.channel
        Upgrade.relay(client: context, upstream: upstream)
        // Reads were held while the decoder was stopped; the relay takes them from here.
        channel.read()
    }

    /// After an upgrade that was not relayed (refused, or answered without 101), the decoder has
    /// held what followed; the connection goes on as HTTP/1.1 (RFC 9110 §7.8).
    private func resumeStoppedDecoder(context: ChannelHandlerContext) -> Bool {
        guard let decoder = try? context.pipeline.syncOperations.handler(type: HTTP1RequestDecoder.self) else {
            return false
        }
        decoder.resume()
        return true
    }

    // MARK: - Local endpoints

    /// Hands the collected request to the endpoint and writes its answer.
    private func answerLocally(_ endpoints: any LocalEndpoints, _ request: HTTPRequest, _ clientAddress: String) {
        guard let context else { return }
        let body = localBody
        localBody.removeAll(keepingCapacity: true)
        state = .waiting
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await endpoints.respond(to: request, body: body, clientAddress: clientAddress)
        }.whenSuccess { head, body in
            let handler = loopBound.value
            guard case .waiting = handler.state else { return }
            handler.respondLocally(VerdictResponse(endpointAnswer: head, body: body), outcome: .public)
        }
    }

    // MARK: - Answers

    private func forwardAuthAllowed(_ token: VerifiedToken?, snapshot: ProxySnapshot) {
        do {
            let answer = try ForwardAuthRequest.allowedAnswer(for: token, mapping: snapshot.configuration.forward)
            respondLocally(answer, outcome: token == nil ? .public : .allowed)
        } catch {
            respondLocally(error)
        }
    }

    private func respondLocally(_ error: GateError) {
        guard let current = exchange else { return }
        current.reason = error.logCode
        current.detail = error.reason.isEmpty ? nil : error.reason
        respondLocally(error.response(realm: current.snapshot.realm), outcome: error.outcome)
    }

    private func respondLocally(_ verdict: VerdictResponse, outcome: RequestOutcome) {
        guard let context, let current = exchange else { return }
        current.outcome = outcome
        current.status = verdict.status
        current.responseStarted = true
        // A refused request with a body that was not read: reading it to the end keeps the
        // connection usable, but closing is cheaper and safer for large bodies.
        if !current.requestEnded && current.hasBody && verdict.status >= 400 { current.keepAlive = false }
        let answer = LocalAnswer(
            verdict,
            requestID: current.requestID,
            connection: isHTTP2 ? nil : !current.keepAlive ? "close" : current.isHTTP10 ? "keep-alive" : nil,
            isHeadRequest: current.isHead,
            allocator: context.channel.allocator
        )
        if let failure = answer.failure {
            current.status = answer.status
            current.reason = failure
        }
        context.write(wrapOutboundOut(.head(answer.head)), promise: nil)
        if let body = answer.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        lastWrite = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        buffered.removeAll(keepingCapacity: true)
        if current.requestEnded {
            state = .idle
            finish()
        } else if current.keepAlive {
            state = .discarding
            resumeReading()
        } else {
            state = .discarding
            finish()
        }
    }

    /// The end of the last response written, so a close waits for it: closing at once would drop
    /// whatever the socket had not taken yet (the tail of a large body to a slow reader).
    private var lastWrite: EventLoopFuture<Void>?

    private func closeAfterLastWrite(context: ChannelHandlerContext) {
        guard let pending = lastWrite else {
            context.close(promise: nil)
            return
        }
        lastWrite = nil
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        pending.whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    private func finishIfComplete() {
        guard case .discarding = state, let current = exchange, current.requestEnded else { return }
        state = .idle
        finish()
    }

    /// Step 8, then what the connection does next: close, resume a stopped parser, or replay
    /// what the client pipelined until a request has to wait again.
    private func finish() {
        guard let context, let current = exchange else { return }
        log()
        exchange = nil
        let next = connection.exchangeFinished(
            keepAlive: current.keepAlive,
            parserStopped: current.decoderStops,
            now: .now()
        )
        switch next {
        case .none:
            break
        case .closeAfterLastWrite:
            closeAfterLastWrite(context: context)
        case .resumeStoppedParser:
            // Resumed last, since it parses the held bytes at once.
            resumeReading()
            if !resumeStoppedDecoder(context: context) { context.close(promise: nil) }
        case .replayQueue:
            while let part = connection.nextQueuedPart() { handle(part, context: context) }
            if !connection.hasQueuedParts { resumeReading() }
        }
    }

    private func log() {
        guard let current = exchange else { return }
        let snapshot = current.snapshot
        snapshot.counters(for: current.routeIndex).record(current.outcome)
        guard snapshot.configuration.server.accessLog else { return }
        let elapsed = Double(NIODeadline.now().uptimeNanoseconds - current.started.uptimeNanoseconds) / 1_000_000
        AccessLog.write(
            requestID: current.requestID,
            method: current.method,
            path: current.path,
            route: current.routeName,
            status: current.status,
            outcome: current.outcome.rawValue,
            reason: current.reason,
            detail: current.detail,
            milliseconds: elapsed,
            peer: peer == nil ? nil : peerAddress
        )
    }

    // MARK: - Helpers

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

extension HTTPMethod {
    /// RFC 9110 §9.2.2.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: return true
        default: return false
        }
    }
}
