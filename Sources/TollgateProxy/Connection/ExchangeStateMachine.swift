import NIOCore
import NIOHTTP1

/// One proxied exchange as decisions only: where its request parts go (held while verifying or
/// connecting, to the upstream, to a local endpoint, or dropped after an early answer), what the
/// upstream's answer, close or silence means for both connections, the one retry on a pooled
/// connection the upstream had closed, and what the end of the exchange leaves the connection.
/// `ProxyHandler` performs the actions; the pipeline's steps (check, route, verify, rewrite) are
/// its own and feed the machine their outcome.
///
/// The shape of async-http-client's `HTTPRequestStateMachine` and `ConnectionStateMachine` here:
/// a plain struct, tested without sockets (`ExchangeStateMachineTests`), and generic over the
/// upstream so those tests need no channel.
struct ExchangeStateMachine<Upstream: AnyObject> {
    enum State {
        /// No exchange, or one whose answer is out and whose request has ended.
        case idle
        /// Verifying or connecting: request parts are held.
        case waiting
        /// Connected: request parts go upstream, answer parts come back.
        case forwarding(Upstream)
        /// Answered (locally, or early by the upstream): the rest of the request is dropped.
        case discarding
        /// A protocol switch went through: bytes are relayed raw.
        case upgraded
        /// A request for a local endpoint: its body is collected, then the endpoint answers.
        case local
        /// An MCP route's JSON-RPC request: its body is read whole, then the gate decides.
        case inspecting
    }

    /// What the request says about itself, read once from its head.
    struct RequestFacts {
        var keepAlive: Bool
        var hasBody: Bool
        var isHead: Bool
        var isHTTP10: Bool
    }

    private(set) var state = State.idle
    /// An exchange has started and not finished.
    private(set) var isActive = false
    private(set) var keepAlive = false
    private(set) var requestEnded = false
    private(set) var responseStarted = false
    /// The client announced a body (Content-Length > 0 or Transfer-Encoding).
    private(set) var hasBody = false
    /// A HEAD request: no answer to it carries a body (RFC 9110 §9.3.2).
    private(set) var isHead = false
    /// An HTTP/1.0 client: no chunked coding in its answer.
    private(set) var isHTTP10 = false
    /// The request parser stopped after this request (an upgrade or CONNECT was asked for).
    private(set) var parserStopped = false
    /// `TE: trailers`: the request's trailers go on, stripped; otherwise they are dropped.
    private(set) var acceptsTrailers = false
    /// The protocols the client asked to switch to and the route allows; `nil` when none is relayed.
    private(set) var upgradeProtocols: [String]?
    /// The upstream answered 101 to the upgrade: after its end, bytes are relayed.
    private(set) var upgradeAccepted = false
    /// The upstream's answer allows another request on its connection.
    private(set) var upstreamReusable = true
    /// When the request went upstream, for the response timeout.
    private(set) var upstreamStarted: NIODeadline?
    /// The head sent upstream on a pooled connection, kept for one retry on a new one.
    private var retryHead: UpstreamRequestHead?
    private var retried = false
    /// Request parts held while verifying or connecting.
    private var held: [UpstreamRequestPart] = []
    /// The body of a local endpoint's request, bounded by `maximumLocalBodyBytes`, or of an
    /// inspected request, bounded by `inspectionLimit`.
    private var localBody: [UInt8] = []
    private var inspectionLimit = 0

    // MARK: - The request

    /// Counts exchanges, so a result that arrives from off the loop (verification, a local
    /// endpoint) is taken only by the exchange that asked for it.
    private(set) var generation: UInt64 = 0

    /// A request head arrived: a new exchange starts.
    mutating func start(_ facts: RequestFacts) {
        state = .idle
        isActive = true
        generation &+= 1
        keepAlive = facts.keepAlive
        hasBody = facts.hasBody
        isHead = facts.isHead
        isHTTP10 = facts.isHTTP10
        requestEnded = false
        responseStarted = false
        parserStopped = false
        acceptsTrailers = false
        upgradeProtocols = nil
        upgradeAccepted = false
        upstreamReusable = true
        upstreamStarted = nil
        retryHead = nil
        retried = false
        held.removeAll(keepingCapacity: true)
    }

    /// An exchange for bytes the parser refused before any head: answered, then the connection
    /// closes.
    mutating func startRefusal() {
        start(RequestFacts(keepAlive: false, hasBody: true, isHead: false, isHTTP10: false))
    }

    /// What the head check found.
    mutating func headChecked(parserStops: Bool, acceptsTrailers: Bool) {
        parserStopped = parserStops
        self.acceptsTrailers = acceptsTrailers
    }

    /// Verification is running: parts are held.
    mutating func verifying() {
        state = .waiting
    }

    /// The request is for a local endpoint: its body is collected.
    mutating func collectingLocally() {
        localBody.removeAll(keepingCapacity: true)
        state = .local
    }

    enum InspectAction: Equatable {
        /// The body is still coming.
        case none
        /// Over the bound: 413, and the connection closes.
        case respond(GateError)
        /// The whole body (and the request's trailers, stripped): decide on it.
        case inspect(body: [UInt8], trailers: HTTPHeaders?)
    }

    /// The request is allowed as far as its head goes and its body decides the rest (an MCP
    /// route): the body is read whole, up to `limit` bytes, with what arrived while verifying.
    mutating func inspecting(limit: Int) -> InspectAction {
        localBody.removeAll(keepingCapacity: true)
        inspectionLimit = limit
        state = .inspecting
        var ended: HTTPHeaders?? = nil
        for part in held {
            switch part {
            case .body(.byteBuffer(let buffer)): localBody += buffer.readableBytesView
            case .body(.fileRegion): break
            case .end(let trailers): ended = .some(trailers)
            case .head: break
            }
        }
        held.removeAll(keepingCapacity: true)
        if localBody.count > limit {
            keepAlive = false
            return .respond(GateError(.payloadTooLarge))
        }
        guard let trailers = ended else { return .none }
        state = .waiting
        let body = localBody
        localBody.removeAll(keepingCapacity: true)
        return .inspect(body: body, trailers: trailers)
    }

    /// The inspected request goes upstream: its body and end are held behind the head to come.
    mutating func inspected(body: ByteBuffer, trailers: HTTPHeaders?) {
        state = .waiting
        held = body.readableBytes > 0 ? [.body(.byteBuffer(body)), .end(trailers)] : [.end(trailers)]
    }

    enum BodyAction {
        case none
        case write(Upstream, ByteBuffer)
        /// The local endpoint's body passed its bound: 413, and the connection closes.
        case respond(GateError)
    }

    mutating func requestBody(_ buffer: ByteBuffer) -> BodyAction {
        switch state {
        case .waiting:
            held.append(.body(.byteBuffer(buffer)))
            return .none
        case .forwarding(let upstream):
            return .write(upstream, buffer)
        case .local:
            if localBody.count + buffer.readableBytes > maximumLocalBodyBytes {
                keepAlive = false
                return .respond(GateError(.payloadTooLarge))
            }
            localBody += buffer.readableBytesView
            return .none
        case .inspecting:
            if localBody.count + buffer.readableBytes > inspectionLimit {
                keepAlive = false
                return .respond(GateError(.payloadTooLarge))
            }
            localBody += buffer.readableBytesView
            return .none
        case .idle, .discarding, .upgraded:
            return .none
        }
    }

    enum EndAction {
        case none
        /// Write the end (trailers already stripped) upstream and flush.
        case writeEnd(Upstream)
        /// The exchange is over: log it and let the connection go on.
        case finish
        /// Hand the collected body to the local endpoint.
        case answerLocally(body: [UInt8])
        /// Decide on the whole body of an inspected request.
        case inspect(body: [UInt8], trailers: HTTPHeaders?)
    }

    /// - Parameter trailers: the trailers to send on, already stripped (`nil` when the request
    ///   does not accept them).
    mutating func requestEnd(_ trailers: HTTPHeaders?) -> EndAction {
        requestEnded = true
        switch state {
        case .waiting:
            held.append(.end(trailers))
            return .none
        case .forwarding(let upstream):
            return .writeEnd(upstream)
        case .discarding:
            state = .idle
            return .finish
        case .local:
            let body = localBody
            localBody.removeAll(keepingCapacity: true)
            // The endpoint's answer is awaited like verification.
            state = .waiting
            return .answerLocally(body: body)
        case .inspecting:
            let body = localBody
            localBody.removeAll(keepingCapacity: true)
            state = .waiting
            return .inspect(body: body, trailers: trailers)
        case .idle, .upgraded:
            return .none
        }
    }

    /// Whether the exchange wants no more bytes from the client yet.
    func holdsReads(upstreamIsWritable: (Upstream) -> Bool) -> Bool {
        if isActive, parserStopped, requestEnded {
            // The parser has stopped after this request and would buffer whatever comes: read
            // nothing more until the relay starts or the parser resumes.
            return true
        }
        switch state {
        case .waiting where isActive && !requestEnded:
            // A body is still coming: hold it at the socket until the upstream is there. (A request
            // without one is not held: toggling read interest costs two epoll_ctl calls.)
            return true
        case .forwarding(let upstream):
            return !upstreamIsWritable(upstream)
        default:
            return false
        }
    }

    // MARK: - The upstream connection

    /// The rewritten head is ready: held first, ahead of any body that arrived meanwhile.
    /// - Parameter upgradeProtocols: the upgrade relayed, if any.
    mutating func forwarding(_ head: UpstreamRequestHead, upgradeProtocols: [String]?) {
        self.upgradeProtocols = upgradeProtocols
        state = .waiting
        held.insert(.head(head), at: 0)
    }

    enum ConnectedAction {
        /// Write these parts and flush; the exchange now forwards.
        case send([UpstreamRequestPart])
        /// The exchange no longer waits for it (answered meanwhile): back to the pool unused.
        case release
    }

    /// A connection is there for the exchange.
    /// - Parameter reused: it served a request before (a pooled connection): the head is kept for
    ///   one retry should the upstream turn out to have closed it.
    mutating func upstreamConnected(_ upstream: Upstream, reused: Bool, now: NIODeadline) -> ConnectedAction {
        guard case .waiting = state, isActive else { return .release }
        if reused, !retried, case .head(let head) = held.first { retryHead = head }
        state = .forwarding(upstream)
        upstreamStarted = now
        let parts = held
        held.removeAll(keepingCapacity: true)
        return .send(parts)
    }

    /// No connection could be made: 502 (the connection closes when a body is still coming).
    mutating func upstreamConnectFailed() -> GateError? {
        guard case .waiting = state, isActive else { return nil }
        if !requestEnded { keepAlive = false }
        return GateError(.upstreamUnreachable)
    }

    // MARK: - The upstream's answer

    /// The head the upstream answered was relayed (`ResponseRelay`); whether to flush at once (a
    /// 101, after which the relay starts).
    mutating func answerHeadRelayed(_ relayed: ResponseRelay.Relayed) -> Bool {
        responseStarted = true
        upstreamReusable = relayed.upstreamReusable
        if relayed.closesClient { keepAlive = false }
        if relayed.switchesProtocols {
            upgradeAccepted = true
            return true
        }
        return false
    }

    /// The upstream's answer cannot be relayed: its connection is closed and the client gets 502
    /// and a close (before the answer started) or just the close (after).
    enum FailureAction {
        case respond(closing: Upstream, GateError)
        case cut(closing: Upstream, code: GateError.Code, detail: String?)
    }

    mutating func answerRefused(reason: String) -> FailureAction? {
        guard case .forwarding(let upstream) = state else { return nil }
        if responseStarted { return cutAfterAnswerStarted(upstream, code: .upstreamInvalidResponse, detail: reason) }
        keepAlive = false
        parserStopped = false
        return .respond(closing: upstream, GateError(.upstreamInvalidResponse, reason))
    }

    private mutating func cutAfterAnswerStarted(
        _ upstream: Upstream,
        code: GateError.Code,
        detail: String?
    ) -> FailureAction {
        state = .idle
        return .cut(closing: upstream, code: code, detail: detail)
    }

    enum AnswerEndAction {
        /// The 101's end: the connections relay bytes from now.
        case relay(Upstream)
        /// Trailers that cannot be sent: both connections are cut.
        case fail(FailureAction)
        /// Give the upstream back (`reusable` or not) before the end is written, write the end
        /// (none after HEAD: just flush), then finish, or resume reading to drop the rest of a
        /// request the upstream answered early.
        case complete(Upstream, reusable: Bool, writeEnd: Bool, finish: Bool)
    }

    mutating func answerEnded(trailersAreValid: Bool) -> AnswerEndAction? {
        guard case .forwarding(let upstream) = state else { return nil }
        if upgradeAccepted {
            state = .upgraded
            return .relay(upstream)
        }
        if !trailersAreValid {
            return .fail(
                cutAfterAnswerStarted(upstream, code: .upstreamInvalidResponse, detail: "invalid_response_trailer")
            )
        }
        // Otherwise the upstream answered before the request body ended: the rest is dropped.
        state = requestEnded ? .idle : .discarding
        return .complete(upstream, reusable: requestEnded && upstreamReusable, writeEnd: !isHead, finish: requestEnded)
    }

    enum ClosedAction {
        /// Send the head once more on a new connection.
        case retry
        case fail(FailureAction)
    }

    /// The upstream closed its connection during the exchange. A pooled connection the upstream
    /// closed while it sat idle is only noticed when a request is sent on it; like nginx
    /// (`proxy_next_upstream error`), a request that is safe to repeat (idempotent, no body, nothing
    /// answered yet) is sent once more on a new connection.
    mutating func upstreamClosed() -> ClosedAction? {
        guard case .forwarding(let upstream) = state else { return nil }
        if let head = retryHead, !retried, !responseStarted, !hasBody, upgradeProtocols == nil, requestEnded,
            head.method.isIdempotent
        {
            retried = true
            retryHead = nil
            state = .waiting
            held = [.head(head), .end(nil)]
            return .retry
        }
        if responseStarted {
            return .fail(cutAfterAnswerStarted(upstream, code: .upstreamClosed, detail: nil))
        }
        keepAlive = false
        return .fail(.respond(closing: upstream, GateError(.upstreamClosed)))
    }

    /// The periodic check: the upstream has had the request for `limit` without starting its
    /// answer: 504, and its connection is closed.
    mutating func checkUpstreamTimeout(now: NIODeadline, limit: TimeAmount) -> FailureAction? {
        guard case .forwarding(let upstream) = state, !responseStarted, let upstreamStarted,
            now - upstreamStarted >= limit
        else { return nil }
        keepAlive = false
        return .respond(closing: upstream, GateError(.upstreamTimeout))
    }

    // MARK: - The client

    enum ParseErrorAction {
        /// The bad bytes follow a complete request, which may already be carried out upstream:
        /// its answer finishes, then the connection closes.
        case closeAfterAnswer
        /// The answer has gone out in full and the rest of the request was being dropped: the
        /// exchange finishes and the connection closes once the answer's bytes are written.
        case finishAndClose
        /// An answer has started: all that is left is to close.
        case close(Upstream?)
        /// Answer the refusal (closing the upstream connection the request had started on).
        case respond(closingUpstream: Upstream?)
        /// No exchange: one is started for the refusal, which is answered.
        case respondToNewExchange
    }

    /// The parser refused bytes of this connection.
    mutating func parseError() -> ParseErrorAction {
        guard isActive else {
            startRefusal()
            return .respondToNewExchange
        }
        if requestEnded {
            keepAlive = false
            return .closeAfterAnswer
        }
        if case .discarding = state {
            keepAlive = false
            return .finishAndClose
        }
        var upstream: Upstream?
        if case .forwarding(let connection) = state {
            upstream = connection
            state = .waiting
        }
        if responseStarted { return .close(upstream) }
        keepAlive = false
        hasBody = true
        return .respond(closingUpstream: upstream)
    }

    /// The server drains: this exchange's answer closes the connection.
    mutating func closeAfterThisExchange() {
        keepAlive = false
    }

    /// The client connection closed: the upstream connection in use, if any, is in an unknown
    /// state and is closed.
    mutating func clientClosed() -> Upstream? {
        defer {
            state = .idle
            isActive = false
            held.removeAll()
        }
        if case .forwarding(let upstream) = state { return upstream }
        return nil
    }

    // MARK: - Answers and the end

    enum AnsweredAction {
        /// Request ended too: log and let the connection go on.
        case finish
        /// The request is still coming: drop it and read on.
        case discardAndRead
        /// The request is still coming and the connection closes.
        case discardAndFinish
    }

    /// The exchange is answered by Tollgate with `status` (called before the answer is written:
    /// `keepAlive` is final then). A refused request with a body that was not read closes:
    /// reading it to the end would keep the connection, but closing is cheaper and safer for
    /// large bodies.
    mutating func answeringLocally(status: Int) -> AnsweredAction {
        responseStarted = true
        if !requestEnded && hasBody && status >= 400 { keepAlive = false }
        held.removeAll(keepingCapacity: true)
        if requestEnded {
            state = .idle
            return .finish
        }
        state = .discarding
        return keepAlive ? .discardAndRead : .discardAndFinish
    }

    /// Whether exchange `generation` is still waiting for something off the loop (verification,
    /// a local endpoint) and should take its result.
    func isWaiting(generation: UInt64) -> Bool {
        if case .waiting = state { return isActive && generation == self.generation }
        return false
    }

    var isForwarding: Bool {
        if case .forwarding = state { return true }
        return false
    }

    var upstream: Upstream? {
        if case .forwarding(let upstream) = state { return upstream }
        return nil
    }

    /// The exchange is over (logged by the handler): what the connection needs to know.
    mutating func finished() -> (keepAlive: Bool, parserStopped: Bool) {
        isActive = false
        if case .upgraded = state {} else { state = .idle }
        return (keepAlive, parserStopped)
    }
}
