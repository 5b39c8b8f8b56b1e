import NIOCore
import TollgateCore

/// The timeouts a connection checks. One coarse repeating check per connection instead of a
/// timer armed and cancelled per request (each of those is a timerfd update, measured at about a
/// tenth of the proxy's CPU under load); which timeout has run out is decided by
/// `ConnectionStateMachine.hasTimedOut` (head and idle) and `ExchangeStateMachine.checkUpstreamTimeout`.
struct ConnectionTimers: Equatable {
    let header: TimeAmount
    let idle: TimeAmount
    /// How long the upstream may take to start its answer.
    let upstreamResponse: TimeAmount

    init(header: Double, idle: Double, upstreamResponse: Double?) {
        self.header = Self.amount(header)
        self.idle = Self.amount(idle)
        self.upstreamResponse = Self.amount(upstreamResponse ?? 60)
    }

    init(_ configuration: TollgateConfiguration) {
        self.init(
            header: configuration.server.headerTimeout,
            idle: configuration.server.idleTimeout,
            upstreamResponse: configuration.upstream?.responseTimeout
        )
    }

    /// How often to check: a quarter of the shortest timeout that applies (an HTTP/2 stream has no
    /// head or idle timeout of its own), between 50 ms and 1 s, so a timeout fires at most a
    /// quarter late.
    func checkInterval(isStream: Bool) -> TimeAmount {
        var shortest = upstreamResponse
        if !isStream { shortest = min(shortest, header, idle) }
        return min(max(.nanoseconds(shortest.nanoseconds / 4), .milliseconds(50)), .seconds(1))
    }

    static func amount(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(seconds * 1_000_000_000))
    }
}
