import NIOCore

/// One request's bookkeeping in `ProxyHandler`, for the answer, the log line and metrics. A class:
/// it is read and updated many times per request, and a struct this size was copied (and its
/// references retained) at each of those.
final class ProxyExchange {
    var started: NIODeadline
    var requestID: String
    var method: String
    var path: String
    var routeIndex: Int?
    var routeName: String = "-"
    var outcome: RequestOutcome = .allowed
    var reason: String?
    /// The refusal's detail, for the log line only.
    var detail: String?
    var status: Int = 0
    var keepAlive: Bool
    var requestEnded = false
    var responseStarted = false
    var isUpgrade = false
    /// The protocols the client asked to upgrade to (lower-cased), when the route allows them.
    var upgradeProtocols: [String] = []
    /// The request parser stopped after this request (an upgrade or CONNECT was asked for).
    var decoderStops = false
    /// `TE: trailers`: the request's trailers go on, stripped; otherwise they are dropped.
    var acceptsTrailers = false
    /// A HEAD request: no answer to it carries a body (RFC 9110 §9.3.2).
    var isHead = false
    /// An HTTP/1.0 client: no chunked coding in its answer.
    var isHTTP10 = false
    /// The upstream answered 101 to an upgrade: after its end, bytes are relayed.
    var upgradeAccepted = false
    /// The client announced a body (Content-Length > 0 or Transfer-Encoding).
    var hasBody = false
    var upstreamStarted: NIODeadline?
    /// The upstream's response allows another request on its connection.
    var upstreamReusable = true
    /// The head sent upstream, kept for one retry on a fresh connection.
    var upstreamHead: UpstreamRequestHead?
    /// The exchange runs on a pooled connection that had served a request before.
    var reusedUpstream = false
    var retried = false
    let snapshot: ProxySnapshot

    init(started: NIODeadline, requestID: String, method: String, keepAlive: Bool, snapshot: ProxySnapshot) {
        self.started = started
        self.requestID = requestID
        self.method = method
        self.path = ""
        self.keepAlive = keepAlive
        self.snapshot = snapshot
    }

    /// The upstream has had the request for `limit` without starting its answer.
    func upstreamHasTimedOut(now: NIODeadline, limit: TimeAmount) -> Bool {
        guard !responseStarted, let upstreamStarted else { return false }
        return now - upstreamStarted >= limit
    }
}
