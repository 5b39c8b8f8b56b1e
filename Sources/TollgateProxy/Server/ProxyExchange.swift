import NIOCore
import TollgateCore

/// One request's facts in `ProxyHandler`, for its answer, its log line and metrics; what happens
/// to the exchange is `ExchangeStateMachine`'s. A class: it is read and updated several times per
/// request, and a struct would be copied (and its references retained) at each of those. Its
/// fields are plain values set and read on the exchange's event loop only, never held across a
/// call: their exclusivity checks are dropped.
final class ProxyExchange {
    @exclusivity(unchecked) var started: NIODeadline
    @exclusivity(unchecked) var requestID: String
    @exclusivity(unchecked) var method: String
    @exclusivity(unchecked) var path: String
    @exclusivity(unchecked) var routeIndex: Int?
    @exclusivity(unchecked) var routeName: String = "-"
    @exclusivity(unchecked) var outcome: RequestOutcome = .allowed
    @exclusivity(unchecked) var reason: String?
    /// The refusal's detail, for the log line only.
    @exclusivity(unchecked) var detail: String?
    @exclusivity(unchecked) var status: Int = 0
    /// A fresh DPoP nonce the answer carries (`DPoP-Nonce`), when the client's is aging.
    @exclusivity(unchecked) var dpopNonce: String?
    let snapshot: ProxySnapshot

    init(started: NIODeadline, requestID: String, method: String, snapshot: ProxySnapshot) {
        self.started = started
        self.requestID = requestID
        self.method = method
        self.path = ""
        self.snapshot = snapshot
    }

    /// Step 8: the route's counters, and the access log line when it is on.
    func record(now: NIODeadline, peer: String?) {
        snapshot.counters(for: routeIndex).record(outcome)
        guard snapshot.configuration.server.accessLog else { return }
        AccessLog.write(
            requestID: requestID,
            method: method,
            path: path,
            route: routeName,
            status: status,
            outcome: outcome.rawValue,
            reason: reason,
            detail: detail,
            milliseconds: Double(now.uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000,
            peer: peer
        )
    }
}
