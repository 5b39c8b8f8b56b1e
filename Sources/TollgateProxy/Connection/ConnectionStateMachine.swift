import NIOCore
import NIOHTTP1

/// The life of one client connection between and around its exchanges, as decisions only: when a
/// request part is processed, queued or ignored, what follows the end of an exchange
/// (keep-alive, close, replay of pipelined requests, resuming a stopped parser), when reads wait,
/// and when a silent connection times out. `ProxyHandler` performs the actions it returns; the
/// exchange itself (verification, the upstream, the answer) is the handler's.
///
/// The shape of hummingbird's `HTTPConnectionStateHandler.StateMachine` and NIO's upgrader state
/// machine: a plain struct, tested without sockets (`ConnectionStateMachineTests`).
struct ConnectionStateMachine {
    enum State: Equatable {
        /// Waiting for a request head since the deadline (the header timeout runs before the
        /// first request, the idle timeout after).
        case waitingForHead(since: NIODeadline)
        /// A request is being served: its head has been processed and its exchange not finished.
        case serving
        /// The last answer closes the connection (RFC 9112 §9.6): nothing more is processed;
        /// should the client stop reading, the idle timeout still closes it.
        case closing(since: NIODeadline)
        /// The connection relays bytes after a protocol switch; HTTP is over.
        case relaying
    }

    enum PartAction: Equatable {
        /// Hand the part to the exchange (a head starts one).
        case process
        /// Kept until the exchange in progress has finished (pipelining).
        case queue
        /// After a closing answer or a switch: dropped unread.
        case ignore
    }

    enum FinishAction: Equatable {
        /// Close once the last write has gone out.
        case closeAfterLastWrite
        /// Nothing was pipelined behind a request that stopped the parser (an upgrade answered
        /// without a switch): resume reading, then the parser, which parses the held bytes.
        case resumeStoppedParser
        /// Process the queued parts (`nextQueuedPart()`), then resume reading if none is left.
        case replayQueue
        /// An HTTP/2 stream: nothing follows.
        case none
    }

    enum QuiesceAction: Equatable {
        case closeNow
        /// The exchange in progress is answered with `Connection: close`.
        case closeAfterCurrentExchange
        case none
    }

    private(set) var state: State
    /// Whether a request was served (idle timeout rather than header timeout).
    private(set) var servedOne = false
    private(set) var quiescing = false
    /// One exchange per HTTP/2 stream: no pipelining, no keep-alive, no head timeout.
    let isStream: Bool
    private var queued: [RequestPart] = []
    private var readPending = false

    init(isStream: Bool, now: NIODeadline) {
        self.isStream = isStream
        state = .waitingForHead(since: now)
    }

    var hasQueuedParts: Bool { !queued.isEmpty }

    // MARK: - Request parts

    /// A request part arrived from the parser.
    mutating func partReceived(_ part: RequestPart) -> PartAction {
        switch state {
        case .closing, .relaying:
            return .ignore
        case .serving:
            if !queued.isEmpty || isHead(part) {
                queued.append(part)
                return .queue
            }
            return .process
        case .waitingForHead:
            if !queued.isEmpty {
                queued.append(part)
                return .queue
            }
            if isHead(part) { state = .serving }
            return .process
        }
    }

    /// The next queued part to process now, if any: the rest of the current request, or the
    /// next request's head once the connection waits for one (stray body parts before it, left
    /// by a request that was answered early, are dropped).
    mutating func nextQueuedPart() -> RequestPart? {
        switch state {
        case .serving:
            guard let first = queued.first, !isHead(first) else { return nil }
            return queued.removeFirst()
        case .waitingForHead:
            while let first = queued.first {
                queued.removeFirst()
                if isHead(first) {
                    state = .serving
                    return first
                }
            }
            return nil
        case .closing, .relaying:
            return nil
        }
    }

    /// The parser refused the bytes: what was queued behind the current request is dropped.
    mutating func parseErrorReceived() {
        queued.removeAll()
    }

    // MARK: - The end of an exchange

    /// The exchange in progress has been answered and its request read to the end.
    /// - Parameters:
    ///   - keepAlive: whether its answer leaves the connection open.
    ///   - parserStopped: the parser paused after this request (it asked to switch protocols).
    mutating func exchangeFinished(keepAlive: Bool, parserStopped: Bool, now: NIODeadline) -> FinishAction {
        if isStream { return .none }
        servedOne = true
        if !keepAlive || quiescing {
            state = .closing(since: now)
            queued.removeAll()
            return .closeAfterLastWrite
        }
        state = .waitingForHead(since: now)
        if parserStopped && queued.isEmpty { return .resumeStoppedParser }
        return .replayQueue
    }

    /// The exchange in progress ended the connection's HTTP (a protocol switch went through).
    mutating func switchedProtocols() {
        state = .relaying
        queued.removeAll()
    }

    /// The connection closed.
    mutating func closed() {
        queued.removeAll()
        readPending = false
    }

    // MARK: - Reads

    /// The channel asks to read more from the client.
    /// - Parameter exchangeHolds: the exchange wants no more bytes yet (a body waiting for its
    ///   upstream, an upstream that cannot take more, a parser stopped after an upgrade request).
    /// - Returns: whether to read now; otherwise the read is held until `resumeReads()`.
    mutating func readRequested(exchangeHolds: Bool) -> Bool {
        if !queued.isEmpty || exchangeHolds {
            readPending = true
            return false
        }
        return true
    }

    /// Whether a held read should be issued now; clears it.
    mutating func resumeReads() -> Bool {
        guard readPending else { return false }
        readPending = false
        return true
    }

    // MARK: - Timeouts and shutdown

    /// A periodic check: whether the connection has waited too long for a request head (the
    /// header timeout before the first request, the idle timeout after) and is closed quietly.
    func hasTimedOut(now: NIODeadline, headerTimeout: TimeAmount, idleTimeout: TimeAmount) -> Bool {
        if isStream { return false }
        switch state {
        case .waitingForHead(let since):
            return now - since >= (servedOne ? idleTimeout : headerTimeout)
        case .closing(let since):
            return now - since >= idleTimeout
        case .serving, .relaying:
            return false
        }
    }

    /// The server is draining: an idle connection closes now, a busy one after its exchange.
    mutating func quiesce() -> QuiesceAction {
        if isStream { return .none }
        quiescing = true
        switch state {
        case .waitingForHead where queued.isEmpty:
            return .closeNow
        case .waitingForHead, .serving:
            return .closeAfterCurrentExchange
        case .closing, .relaying:
            return .none
        }
    }

    private func isHead(_ part: RequestPart) -> Bool {
        if case .head = part { return true }
        return false
    }
}
