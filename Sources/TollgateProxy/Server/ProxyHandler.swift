import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import Prometheus
import TollgateCore

/// One client connection (HTTP/1.1) or one HTTP/2 stream: runs DESIGN's pipeline for each request
/// and performs what the connection's and the exchange's state machines decide.
///
/// Everything happens on the channel's event loop. The only suspension is verification that
/// needs a key refresh or an introspection call (and a local endpoint's answer); meanwhile the
/// request body is held and reads from the client pause. Reads also pause whenever the other side
/// cannot take more data, so memory stays bounded whatever the body size.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamDelegate {
    /// An HTTP/1.1 connection's bytes, parsed here; an HTTP/2 stream's frames (unwrapped as
    /// `StreamFrames`), decoded here too.
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ClientResponsePart
    /// An HTTP/1.1 connection's bytes, written here; an HTTP/2 stream's frames.
    typealias OutboundOut = IOData

    private let runtime: ProxyRuntime
    private let scheme: String
    private let isHTTP2: Bool
    // Exclusivity: the properties marked `@exclusivity(unchecked)` are read and written on the
    // channel's event loop only, and no access to one of them stays open across a call out of
    // this handler: the state machines' and the intake's mutating methods call nothing back, and
    // the rest are plain values and references. No two accesses can overlap, so the runtime
    // check each access costs is dropped (with the upstream handler's and the pool's, about
    // 3,300 instructions a request; benchmarks/README.md). `writer` keeps its checks: it writes
    // into the pipeline, which may call back.
    @exclusivity(unchecked) private var context: ChannelHandlerContext?
    /// The exchange in progress: where its parts go and what its events mean.
    @exclusivity(unchecked) private var machine = ExchangeStateMachine<UpstreamConnection>()
    /// The exchange's facts for its answer, log line and metrics.
    @exclusivity(unchecked) private var exchange: ProxyExchange?
    /// The pool the exchange's upstream connection came from (given back at its end).
    @exclusivity(unchecked) private var pool: (any UpstreamConnecting)?
    /// An MCP route's request while its JSON-RPC body is read, with what its head was allowed on.
    @exclusivity(unchecked) private var inspection: MCPInspection?
    /// A `tools/list` answer being cut to the tools the caller may call, and its head while the
    /// JSON body is read.
    @exclusivity(unchecked) private var toolFilter: ToolListFilter?
    /// A local endpoint's request, while its body is collected and its answer awaited.
    private var localRequest: (endpoints: any LocalEndpoints, request: LocalRequest)?
    /// The connection's one repeating timeout check (`ConnectionTimers`).
    private var ticker: RepeatedTask?
    /// Keep-alive, pipelining, held reads and the head timeouts: the connection's decisions.
    @exclusivity(unchecked) private var connection: ConnectionStateMachine
    @exclusivity(unchecked) private var random = SplitMix64()
    private var peer: SocketAddress?
    /// The peer's address as text, formatted once per connection.
    private lazy var peerAddress: String = peer?.ipAddress ?? "unknown"
    /// Where upstream connections come from when not the event loop's pool (an exchange driven in
    /// process).
    private let upstreams: (any UpstreamConnecting)?
    @exclusivity(unchecked) private var started = false
    /// HTTP/1.1: the request parser and the bytes it has not consumed yet, in this handler (no
    /// pipeline hop per request part).
    @exclusivity(unchecked) private var intake: HTTP1Intake
    @exclusivity(unchecked) private var decoding = false
    /// The RFC 8705 thumbprint of the certificate this connection's client presented; looked at
    /// once (the outer `nil`: not yet).
    private var certificateThumbprint: String??

    private func clientCertificate(context: ChannelHandlerContext) -> String? {
        if let known = certificateThumbprint { return known }
        let channel = isHTTP2 ? (context.channel.parent ?? context.channel) : context.channel
        let der = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate?
            .toDERBytes()
        let found = der.map { CertificateBinding.thumbprint(der: $0) }
        certificateThumbprint = .some(found)
        return found
    }

    /// HTTP/2: the stream's frames to request parts.
    private var streamCodec = HTTP2StreamCodec()
    /// The answer's parts to bytes (HTTP/1.1) or frames (HTTP/2).
    private var writer: ClientWriter

    init(runtime: ProxyRuntime, scheme: String, isHTTP2: Bool, upstreams: (any UpstreamConnecting)? = nil) {
        self.runtime = runtime
        self.scheme = scheme
        self.isHTTP2 = isHTTP2
        self.upstreams = upstreams
        connection = ConnectionStateMachine(isStream: isHTTP2, now: .now())
        intake = HTTP1Intake(limits: .init(runtime.snapshot.configuration.server))
        writer = ClientWriter(isHTTP2: isHTTP2)
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

    private func connectionStarted(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        connection = ConnectionStateMachine(isStream: isHTTP2, now: context.eventLoop.now)
        startTicker(context: context)
    }

    /// An HTTP/1.1 connection's one repeating check; an HTTP/2 stream's request is watched by its
    /// loop's `StreamTimeouts` while it is with the upstream.
    private func startTicker(context: ChannelHandlerContext) {
        guard ticker == nil, !isHTTP2 else { return }
        let period = ConnectionTimers(runtime.snapshot.configuration).checkInterval(isStream: isHTTP2)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            loopBound.value.checkTimeouts()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        started = false
        ticker?.cancel()
        ticker = nil
        stopWatchingTimeouts()
        // The client went away mid-exchange: the upstream connection is in an unknown state.
        if let upstream = machine.clientClosed() { close(upstream) }
        pool = nil
        localRequest = nil
        inspection = nil
        toolFilter = nil
        connection.closed()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// The head, idle and upstream response timeouts.
    func checkTimeouts() {
        guard let context else { return }
        let now = context.eventLoop.now
        let timers = ConnectionTimers(runtime.snapshot.configuration)
        if connection.hasTimedOut(now: now, headerTimeout: timers.header, idleTimeout: timers.idle) {
            // Header-read or idle timeout: nothing is in flight, close quietly.
            context.close(promise: nil)
            return
        }
        // The exchange's own snapshot says how long its upstream may take.
        guard let current = exchange,
            let failure = machine.checkUpstreamTimeout(
                now: now,
                limit: ConnectionTimers(current.snapshot.configuration).upstreamResponse
            )
        else { return }
        perform(failure)
    }

    // MARK: - Reads from the client

    /// Requests a client pipelined before the current response ended are queued by the state
    /// machine and replayed in order once it has. (Done here rather than with NIO's
    /// HTTPServerPipelineHandler, which stops reading during every exchange: two epoll_ctl calls
    /// per request.) After an answer that closes the connection, nothing the client sent is
    /// processed (RFC 9112 §9.6), even if it was already read.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if isHTTP2 {
            streamCodec.decode(StreamFrames.unwrapInboundIn(data)) { part in
                if connection.partReceived(part) == .process { handle(part, context: context) }
            }
            return
        }
        intake.receive(unwrapInboundIn(data))
        decode(context: context)
    }

    /// Hands on each request part that has arrived, as the connection's state machine says.
    /// After a request that asked to switch protocols the parser holds what follows until
    /// `resumeStoppedParser` (answered without a switch) or this handler's removal (relayed: the
    /// held bytes go on raw).
    private func decode(context: ChannelHandlerContext) {
        guard !decoding else { return }
        decoding = true
        defer { decoding = false }
        while self.context != nil {
            switch intake.next() {
            case .part(let part):
                if connection.partReceived(part) == .process { handle(part, context: context) }
            case .wait:
                return
            case .refuse(let error):
                refuse(error, context: context)
                return
            }
        }
    }

    /// After a relayed protocol switch the bytes the parser held belong to the new protocol: they
    /// go on raw to the relay.
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if !isHTTP2, let rest = intake.takeUnparsed() { context.fireChannelRead(NIOAny(rest)) }
        context.leavePipeline(removalToken: removalToken)
    }

    /// Bytes the parser refused, in a head or in a chunked body: 400 (431 for a head too large)
    /// and close when no response has started on the connection (RFC 9112 §2.2), else just close.
    /// A request already on its way upstream is cut there too, so the upstream never sees the
    /// rest as a request of its own.
    private func refuse(_ parseError: HTTP1ParseError, context: ChannelHandlerContext) {
        // After an answer that closes the connection, nothing the client sent is answered
        // (RFC 9112 §9.6), bad bytes included.
        if case .closing = connection.state { return }
        connection.parseErrorReceived()
        switch machine.parseError() {
        case .closeAfterAnswer:
            break
        case .finishAndClose:
            finish()
        case .close(let upstream):
            if let upstream { close(upstream) }
            context.close(promise: nil)
        case .respond(let upstream):
            if let upstream { close(upstream) }
            respondLocally(parseError.gateError)
        case .respondToNewExchange:
            let current = ProxyExchange(
                started: context.eventLoop.now,
                requestID: TraceParent.hex(random.next(), random.next()),
                method: "-",
                snapshot: runtime.snapshot
            )
            current.path = "-"
            exchange = current
            respondLocally(parseError.gateError)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !isHTTP2 {
            switch connection.quiesce() {
            case .closeNow: context.close(promise: nil)
            case .closeAfterCurrentExchange: machine.closeAfterThisExchange()
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
            switch machine.requestBody(buffer) {
            case .none: break
            case .write(let upstream, let buffer):
                upstream.handler.send(.body(.byteBuffer(buffer)))
            case .respond(let error): respondLocally(error)
            }
        case .end(var trailers):
            if let received = trailers {
                // Trailers could carry forged claim headers: dropped, as nginx and Envoy do, except
                // where the protocol needs them, and there stripped like the head.
                trailers =
                    machine.acceptsTrailers
                    ? exchange.map { RequestPipeline.upstreamTrailers(from: received, snapshot: $0.snapshot) } : nil
            }
            switch machine.requestEnd(trailers) {
            case .none: break
            case .writeEnd(let upstream):
                upstream.handler.send(.end(trailers))
                upstream.handler.flush()
            case .finish: finish()
            case .answerLocally(let body): answerLocally(body: body)
            case .inspect(let body, let trailers): inspect(body, trailers: trailers)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        machine.upstream?.handler.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        let holds = machine.holdsReads { $0.channel.isWritable }
        if connection.readRequested(exchangeHolds: holds) { context.read() }
    }

    private func resumeReading() {
        guard let context, connection.resumeReads() else { return }
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        machine.upstream?.handler.setReadsAllowed(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: - The pipeline

    private func requestHead(_ head: RequestHead, context: ChannelHandlerContext) {
        let snapshot = runtime.snapshot
        if toolFilter != nil || inspection != nil {
            toolFilter = nil
            inspection = nil
        }
        let current = ProxyExchange(
            started: context.eventLoop.now,
            requestID: RequestPipeline.requestID(from: head, random: &random),
            method: head.method.rawValue,
            snapshot: snapshot
        )
        exchange = current
        machine.start(
            .init(
                keepAlive: !isHTTP2 && head.isKeepAlive && !runtime.isDraining && !connection.quiescing,
                hasBody: head.hasBody,
                isHead: head.method == .HEAD,
                isHTTP10: !isHTTP2 && head.version.minor == 0
            )
        )
        let pipeline = RequestPipeline(
            snapshot: snapshot,
            isHTTP2: isHTTP2,
            scheme: scheme,
            peer: peer,
            peerAddress: peerAddress,
            clientCertificate: snapshot.configuration.server.tls?.clientCAFile == nil
                ? nil : clientCertificate(context: context)
        )
        let parserStops = head.pausesParser
        let acceptsTrailers = head.acceptsTrailers
        switch pipeline.start(
            head,
            localEndpoints: runtime.localEndpoints,
            hasUpstream: upstreams != nil || snapshot.pools != nil
        ) {
        case .refuse(let error, let path, let headRefused):
            current.path = path
            if headRefused {
                machine.closeAfterThisExchange()
            } else {
                machine.headChecked(parserStops: parserStops, acceptsTrailers: acceptsTrailers)
            }
            respondLocally(error)
        case .answer(let answer, let path):
            machine.headChecked(parserStops: parserStops, acceptsTrailers: acceptsTrailers)
            current.path = path
            current.routeName = "resource_metadata"
            respondLocally(answer, outcome: .public)
        case .local(let endpoints, let request, let path):
            machine.headChecked(parserStops: parserStops, acceptsTrailers: acceptsTrailers)
            current.path = path
            current.routeName = "local"
            current.outcome = .public
            localRequest = (endpoints, request)
            machine.collectingLocally()
        case .decided(let decision, let request):
            machine.headChecked(parserStops: parserStops, acceptsTrailers: acceptsTrailers)
            current.method = request.method
            current.path = request.path
            decide(decision, request, pipeline: pipeline, context: context)
        }
    }

    /// Acts on the pipeline's decision: answer, forward, or verify first and decide again.
    private func decide(
        _ decision: GateDecision,
        _ request: RequestPipeline.Request,
        pipeline: RequestPipeline,
        context: ChannelHandlerContext
    ) {
        let snapshot = pipeline.snapshot
        switch decision {
        case .respond(let error, let matched):
            if let matched { record(matched) }
            respondLocally(pipeline.challenged(error, matched))
        case .pass(let matched, let token, let handsOnNonce):
            record(matched)
            if handsOnNonce { exchange?.dpopNonce = snapshot.dpop.nonces.current(now: wallClockSeconds()) }
            let policy = snapshot.hasMCPRoutes ? snapshot.mcpPolicy(matched) : nil
            if request.isForwardAuth {
                if policy != nil {
                    // The body the rules read never reaches a forward-auth check: refused.
                    respondLocally(GateError(.mcpDenied, "an MCP route cannot be checked by forward-auth"))
                } else {
                    forwardAuthAllowed(token, snapshot: snapshot)
                }
            } else if let policy, let token {
                if request.head.method == .POST || request.head.hasBody || isHTTP2 {
                    // The JSON-RPC body decides the rest: it is read whole first. Any request
                    // with a body is (a server could read a JSON-RPC message from a PUT or a
                    // GET's body), and every HTTP/2 one, whose DATA frames a head need not
                    // announce; the event stream's GET and the session's DELETE carry none.
                    inspection = MCPInspection(request: request, matched: matched, token: token, pipeline: pipeline)
                    switch machine.inspecting(limit: policy.maximumBodyBytes) {
                    case .none: resumeReading()
                    case .respond(let error): respondLocally(error)
                    case .inspect(let body, let trailers): inspect(body, trailers: trailers)
                    }
                } else {
                    // The event stream may replay an earlier tools/list answer: filtered too.
                    if policy.filtersToolList {
                        toolFilter = ToolListFilter(policy: policy, token: token, requestID: nil, listRequested: false)
                    }
                    forward(request, matched: matched, token: token, pipeline: pipeline)
                }
            } else {
                forward(request, matched: matched, token: token, pipeline: pipeline)
            }
        case .verify(let matched, let token, let acceptedIssuers, let binding):
            record(matched)
            machine.verifying()
            let generation = machine.generation
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            pipeline.verify(
                token,
                acceptedIssuers: acceptedIssuers,
                matched: matched,
                binding: binding,
                head: request.head,
                on: context.eventLoop
            )
            .whenSuccess { next in
                let handler = loopBound.value
                guard let context = handler.context, handler.machine.isWaiting(generation: generation) else {
                    return
                }
                handler.decide(next, request, pipeline: pipeline, context: context)
            }
        }
    }

    private func record(_ matched: MatchedRequest) {
        guard let current = exchange else { return }
        current.path = matched.normalized.path
        current.routeIndex = matched.routeIndex
        current.routeName = matched.routeName
    }

    /// An MCP route's request, read whole: refused, or forwarded with its body unchanged (and a
    /// `tools/list` answer filtered on its way back).
    private func inspect(_ body: [UInt8], trailers: HTTPHeaders?) {
        guard let context, let inspected = inspection else { return }
        inspection = nil
        let (request, matched, token, pipeline) = (
            inspected.request, inspected.matched, inspected.token, inspected.pipeline
        )
        switch pipeline.inspect(body, head: request.head, matched: matched, token: token) {
        case .failure(let error):
            respondLocally(error)
        case .success(let message):
            exchange?.detail = message.method.map { method in message.name.map { method + " " + $0 } ?? method }
            if let policy = pipeline.snapshot.mcpPolicy(matched), policy.filtersToolList {
                toolFilter = ToolListFilter(
                    policy: policy,
                    token: token,
                    requestID: message.id,
                    listRequested: message.method == "tools/list"
                )
            }
            machine.inspected(body: context.channel.allocator.buffer(bytes: body), trailers: trailers)
            forward(request, matched: matched, token: token, pipeline: pipeline)
        }
    }

    /// Step 7: connect (or reuse), send the rewritten head and whatever body arrived meanwhile.
    private func forward(
        _ request: RequestPipeline.Request,
        matched: MatchedRequest,
        token: VerifiedToken?,
        pipeline: RequestPipeline
    ) {
        guard let context, let current = exchange,
            let pool = upstreams ?? pipeline.snapshot.pools?.pool(for: context.eventLoop)
        else {
            respondLocally(GateError(.notFound, "no upstream"))
            return
        }
        current.outcome = token == nil ? .public : .allowed
        switch pipeline.upstreamRequest(
            request,
            matched: matched,
            token: token,
            basePath: pool.basePath,
            requestID: current.requestID,
            readsAnswer: toolFilter != nil,
            random: &random,
            allocator: context.channel.allocator
        ) {
        case .failure(let error):
            respondLocally(error)
        case .success(let upstreamRequest):
            machine.forwarding(upstreamRequest.head, upgradeProtocols: upstreamRequest.upgradeProtocols)
            if let upstream = pool.takeIdle() {
                connected(upstream, pool: pool, reused: true)
            } else {
                connect(pool: pool, future: pool.acquire(), context: context)
            }
        }
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
            case .success(let upstream): handler.connected(upstream, pool: pool, reused: false)
            case .failure: handler.connectFailed()
            }
        }
    }

    private func connected(_ upstream: UpstreamConnection, pool: any UpstreamConnecting, reused: Bool) {
        guard let context else {
            pool.release(upstream, reusable: !upstream.isStream)
            return
        }
        switch machine.upstreamConnected(upstream, reused: reused, now: context.eventLoop.now) {
        case .release:
            // Unused: a connection goes back to the pool, an h2c stream is closed.
            pool.release(upstream, reusable: !upstream.isStream)
        case .send(let parts):
            self.pool = pool
            upstream.handler.delegate = self
            upstream.handler.setReadsAllowed(context.channel.isWritable)
            for part in parts { upstream.handler.send(part) }
            upstream.handler.flush()
            if isHTTP2 && streamTimeouts == nil {
                let timeouts = StreamTimeouts.current(on: context.eventLoop)
                timeouts.watch(
                    self,
                    period: ConnectionTimers(runtime.snapshot.configuration).checkInterval(isStream: true)
                )
                streamTimeouts = timeouts
            }
            resumeReading()
        }
    }

    private func connectFailed() {
        if let error = machine.upstreamConnectFailed() { respondLocally(error) }
    }

    /// The loop's watch over this stream's upstream response timeout, while registered.
    @exclusivity(unchecked) private var streamTimeouts: StreamTimeouts?

    private func stopWatchingTimeouts() {
        streamTimeouts?.unwatch(self)
        streamTimeouts = nil
    }

    /// Closes an upstream connection whose exchange went wrong; it is never used again.
    private func close(_ upstream: UpstreamConnection) {
        upstream.handler.delegate = nil
        upstream.channel.close(promise: nil)
    }

    // MARK: - The upstream's answer

    func upstreamReceived(_ part: UpstreamResponsePart) {
        guard let context, let upstream = machine.upstream, let current = exchange else { return }
        switch part {
        case .head(let head):
            let action = ResponseRelay.head(
                head,
                upgradeProtocols: machine.upgradeProtocols,
                clientKeepAlive: machine.keepAlive,
                client: isHTTP2 ? .http2 : machine.isHTTP10 ? .http1_0 : .http1_1,
                isHeadRequest: machine.isHead,
                dpopNonce: current.dpopNonce,
                allocator: context.channel.allocator
            )
            if action == .skip { return }
            if let started = machine.upstreamStarted {
                current.snapshot.metrics.upstreamLatency.record(
                    .nanoseconds(Int64(context.eventLoop.now.uptimeNanoseconds - started.uptimeNanoseconds))
                )
            }
            switch action {
            case .skip: return
            case .refuse(let reason):
                if let failure = machine.answerRefused(reason: reason) { perform(failure) }
            case .relay(let relayed):
                if toolFilter != nil, head.status.code >= 200, startFiltering(head, relayed: relayed, context: context)
                {
                    return
                }
                current.status = Int(head.status.code)
                let flushNow = machine.answerHeadRelayed(relayed)
                write(relayed.part, context: context)
                // After a 101 the relay starts once the codec has delivered this answer's end;
                // bytes after it are handed on when the codec is removed.
                if flushNow { context.flush() }
            }
        case .body(let buffer):
            if machine.isHead { return }
            if toolFilter != nil {
                filter(buffer, context: context)
                return
            }
            write(.body(.byteBuffer(buffer)), context: context)
            if !context.channel.isWritable {
                // Stop reading before flushing: the flush may make the channel writable again,
                // and that callback must find reads stopped so it can restart them.
                upstream.handler.setReadsAllowed(false)
                context.flush()
            }
        case .end(let trailers):
            if toolFilter != nil {
                finishFiltering(context: context)
                return
            }
            relayEnd(trailers, context: context)
        }
    }

    @inline(__always)
    private func relayEnd(_ trailers: HTTPHeaders?, context: ChannelHandlerContext, reusable usable: Bool = true) {
        let valid = trailers.map { HTTPQuoting.areValidToSend($0) } ?? true
        switch machine.answerEnded(trailersAreValid: valid) {
        case .none:
            break
        case .relay(let upstream):
            startRelay(upstream: upstream)
        case .fail(let failure):
            perform(failure)
        case .complete(let upstream, let reusable, let writeEnd, let finishes):
            // The upstream goes back to its pool before the end is written: on an HTTP/2
            // stream, writing the end closes the stream at once, and its `channelInactive`
            // would find the exchange still forwarding and close a healthy upstream
            // connection (one new upstream connection per stream).
            if usable {
                pool?.release(upstream, reusable: reusable)
            } else {
                close(upstream)
            }
            pool = nil
            // After HEAD an HTTP/2 stream still needs its end (END_STREAM).
            if writeEnd || isHTTP2 {
                write(.end(trailers), context: context)
                context.flush()
            } else {
                // After HEAD no end marker either: the encoder, which does not know the
                // request was HEAD, would write a chunked terminator the client reads as the
                // next response.
                context.flush()
            }
            if finishes {
                finish()
            } else {
                resumeReading()
            }
        }
    }

    // MARK: - A filtered tools/list answer

    /// The head of a `tools/list` answer to filter: held until the JSON body is read and cut, or
    /// written at once (without its length) ahead of filtered events. `false`: not an answer to
    /// filter (an error status), relayed as it is.
    private func startFiltering(
        _ head: ResponseHead,
        relayed: ResponseRelay.Relayed,
        context: ChannelHandlerContext
    )
        -> Bool
    {
        let started = toolFilter!.start(
            status: Int(head.status.code),
            contentType: head.values(name: "content-type").first,
            contentEncoding: head.values(name: "content-encoding").joined(separator: ",")
        )
        switch started {
        case .success(.json):
            toolFilter!.heldHead = (relayed, ToolListFilter.answerHead(head, closes: relayed.closesClient))
        case .success(.events) where isHTTP2 || !machine.isHTTP10:
            exchange?.status = Int(head.status.code)
            _ = machine.answerHeadRelayed(relayed)
            write(.head(ToolListFilter.answerHead(head, closes: relayed.closesClient)), context: context)
        case .success(.events):
            // An HTTP/1.0 client cannot take events without a length: not filtered, not relayed.
            failFiltering(ToolListFilter.Failure(reason: "events to an HTTP/1.0 client"), context: context)
        case .failure(let failure):
            failFiltering(failure, context: context)
        case .success:
            toolFilter = nil
            return false
        }
        return true
    }

    private func filter(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        switch toolFilter!.mode {
        case .json:
            if let failure = toolFilter!.append(buffer.readableBytesView) { failFiltering(failure, context: context) }
        case .events:
            let (relay, failure) = toolFilter!.feed(buffer.readableBytesView)
            if !relay.isEmpty {
                write(.body(.byteBuffer(context.channel.allocator.buffer(bytes: relay))), context: context)
            }
            if let failure { failFiltering(failure, context: context) }
        case .undecided, .passThrough, .failed:
            break
        }
    }

    private func finishFiltering(context: ChannelHandlerContext) {
        switch toolFilter!.mode {
        case .json:
            guard let (relayed, head) = toolFilter!.heldHead else { return }
            switch toolFilter!.finishJSON() {
            case .success(let bytes):
                var head = head
                head.headers.replaceOrAdd(name: "Content-Length", value: String(bytes.count))
                exchange?.status = Int(head.status.code)
                _ = machine.answerHeadRelayed(relayed)
                write(.head(head), context: context)
                write(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes))), context: context)
                relayEnd(nil, context: context)
            case .failure(let failure):
                failFiltering(failure, context: context)
            }
        case .events:
            switch toolFilter!.finishEvents() {
            case .success(let bytes):
                if !bytes.isEmpty {
                    write(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes))), context: context)
                }
                relayEnd(nil, context: context)
            case .failure(let failure):
                failFiltering(failure, context: context)
            }
        case .undecided, .passThrough, .failed:
            break
        }
    }

    /// Fails closed: before the answer started, 502 with a JSON-RPC error; after (events), a last
    /// event with the JSON-RPC error ends the answer. The upstream connection is closed either way.
    private func failFiltering(_ failure: ToolListFilter.Failure, context: ChannelHandlerContext) {
        let message = toolFilter?.errorMessage ?? ""
        let id = toolFilter?.requestID
        toolFilter?.fail()
        exchange?.detail = failure.reason
        if machine.responseStarted {
            exchange?.reason = GateError.Code.mcpInvalidAnswer.rawValue
            write(
                .body(
                    .byteBuffer(context.channel.allocator.buffer(string: "event: message\ndata: " + message + "\n\n"))
                ),
                context: context
            )
            relayEnd(nil, context: context, reusable: false)
            return
        }
        switch machine.answerRefused(reason: failure.reason) {
        case .respond(let upstream, _)?:
            close(upstream)
            pool = nil
            var error = GateError(.mcpInvalidAnswer, failure.reason)
            error.jsonRPC = GateError.JSONRPCError(id: id, code: .internalError)
            respondLocally(error)
        case let other?:
            perform(other)
        case nil:
            break
        }
    }

    func upstreamMalformed(_ error: HTTP1ParseError) {
        if let failure = machine.answerRefused(reason: error.reason) { perform(failure) }
    }

    func upstreamReadComplete() {
        // Whatever the upstream sent in this read goes out now (server-sent events, slow streams).
        if machine.isForwarding { context?.flush() }
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReading() }
    }

    func upstreamClosed() {
        guard let context else { return }
        switch machine.upstreamClosed() {
        case .none:
            break
        case .retry:
            guard let pool else {
                respondLocally(GateError(.upstreamClosed))
                return
            }
            self.pool = nil
            connect(pool: pool, future: pool.connect(), context: context)
        case .fail(let failure):
            pool = nil
            perform(failure)
        }
    }

    /// The upstream failed the exchange: before the answer started, its connection is closed and
    /// the client answered; after, all that is left is to cut both connections.
    private func perform(_ failure: ExchangeStateMachine<UpstreamConnection>.FailureAction) {
        switch failure {
        case .respond(let upstream, let error):
            close(upstream)
            pool = nil
            respondLocally(error)
        case .cut(let upstream, let code, let detail):
            close(upstream)
            pool = nil
            if let current = exchange {
                current.outcome = .upstreamError
                current.reason = code.rawValue
                current.detail = detail
            }
            log()
            exchange = nil
            _ = machine.finished()
            context?.close(promise: nil)
        }
    }

    // MARK: - WebSocket and other upgrades

    private func startRelay(upstream: UpstreamConnection) {
        guard let context else { return }
        connection.switchedProtocols()
        ticker?.cancel()
        ticker = nil
        log()
        exchange = nil
        _ = machine.finished()
        pool = nil
        let channel = context.channel
        Upgrade.relay(client: context, upstream: upstream)
        // What the client sent behind its request goes out now, not with its next read.
        upstream.channel.flush()
        // Reads were held while the decoder was stopped; the relay takes them from here.
        channel.read()
    }

    // MARK: - Local endpoints

    /// Hands the collected request to the endpoint and writes its answer.
    private func answerLocally(body: [UInt8]) {
        guard let context, let (endpoints, collected) = localRequest else { return }
        localRequest = nil
        var request = collected
        request.body = body
        let generation = machine.generation
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await endpoints.respond(to: request)
        }.whenSuccess { head, body in
            let handler = loopBound.value
            guard handler.machine.isWaiting(generation: generation) else { return }
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
        guard let context, let current = exchange, machine.isActive else { return }
        current.outcome = outcome
        current.status = verdict.status
        let next = machine.answeringLocally(status: verdict.status)
        let answer = LocalAnswer(
            verdict,
            requestID: current.requestID,
            connection: isHTTP2 ? nil : !machine.keepAlive ? "close" : machine.isHTTP10 ? "keep-alive" : nil,
            isHeadRequest: machine.isHead,
            allocator: context.channel.allocator
        )
        if let failure = answer.failure {
            current.status = answer.status
            current.reason = failure
        }
        write(.head(answer.head), context: context)
        if let body = answer.body { write(.body(.byteBuffer(body)), context: context) }
        write(.end(nil), context: context)
        context.flush()
        switch next {
        case .finish, .discardAndFinish: finish()
        case .discardAndRead: resumeReading()
        }
    }

    private func write(_ part: ClientResponsePart, context: ChannelHandlerContext) {
        writer.write(part, context: context)
    }

    /// Step 8, then what the connection does next: close, resume a stopped parser, or replay
    /// what the client pipelined until a request has to wait again.
    private func finish() {
        guard let context, exchange != nil else { return }
        stopWatchingTimeouts()
        log()
        exchange = nil
        let (keepAlive, parserStopped) = machine.finished()
        let next = connection.exchangeFinished(
            keepAlive: keepAlive,
            parserStopped: parserStopped,
            now: context.eventLoop.now
        )
        switch next {
        case .none:
            break
        case .closeAfterLastWrite:
            ClientWriter.closeAfterLastWrite(context: context)
        case .resumeStoppedParser:
            // After an upgrade that was not relayed (refused, or answered without 101) the
            // connection goes on as HTTP/1.1 (RFC 9110 §7.8). Resumed last, since it parses the
            // held bytes at once.
            resumeReading()
            intake.resume()
            decode(context: context)
        case .replayQueue:
            while let part = connection.nextQueuedPart() { handle(part, context: context) }
            if !connection.hasQueuedParts { resumeReading() }
        }
    }

    private func log() {
        exchange?.record(now: context?.eventLoop.now ?? .now(), peer: peer == nil ? nil : peerAddress)
    }
}

/// An MCP route's request while its body is read: what its head was allowed on.
private final class MCPInspection {
    let request: RequestPipeline.Request
    let matched: MatchedRequest
    let token: VerifiedToken
    let pipeline: RequestPipeline

    init(request: RequestPipeline.Request, matched: MatchedRequest, token: VerifiedToken, pipeline: RequestPipeline) {
        self.request = request
        self.matched = matched
        self.token = token
        self.pipeline = pipeline
    }
}

/// Names the type an HTTP/2 stream's frames arrive as, for `NIOAny`'s unwrapping, which goes by
/// a handler's `InboundIn`.
private final class StreamFrames: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
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
