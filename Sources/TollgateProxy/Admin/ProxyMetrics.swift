import Atomics
import Prometheus
import TollgateCore

/// Counters for one route, one per outcome, created once per configuration so the request path
/// only increments.
struct RouteCounters: Sendable {
    let byOutcome: [Prometheus.Counter]

    func record(_ outcome: RequestOutcome) {
        byOutcome[outcome.index].increment()
    }
}

/// The Prometheus registry behind `/metrics`. Request counters and histograms live in the
/// registry; the verifier's own counts (cache hits, key fetches, introspection calls) are read
/// from TollgateCore at scrape time.
public final class ProxyMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let verificationLatency: DurationHistogram
    let upstreamLatency: DurationHistogram
    let activeConnections: Prometheus.Gauge
    let reloads: Prometheus.Counter
    let reloadFailures: Prometheus.Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let buckets: [Duration] = [
            .microseconds(5), .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100),
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(25),
            .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        verificationLatency = registry.makeDurationHistogram(
            name: "tollgate_verification_duration_seconds",
            buckets: buckets,
            help: "Time to verify a token, including key refreshes and introspection calls."
        )
        upstreamLatency = registry.makeDurationHistogram(
            name: "tollgate_upstream_duration_seconds",
            buckets: buckets,
            help: "Time from sending a request upstream to the upstream's response head."
        )
        activeConnections = registry.makeGauge(
            name: "tollgate_active_connections",
            help: "Client connections currently open."
        )
        reloads = registry.makeCounter(name: "tollgate_config_reloads_total", labels: [("result", "applied")])
        reloadFailures = registry.makeCounter(name: "tollgate_config_reloads_total", labels: [("result", "refused")])
    }

    func counters(route: String) -> RouteCounters {
        RouteCounters(
            byOutcome: RequestOutcome.allCases.map { outcome in
                registry.makeCounter(
                    name: "tollgate_requests_total",
                    labels: [("route", route), ("outcome", outcome.rawValue)],
                    help: "Requests by route and outcome."
                )
            }
        )
    }

    /// The exposition text: the registry, the verifier's counters and the background work.
    public func render(runtime: ProxyRuntime) -> [UInt8] {
        var buffer = render(snapshot: runtime.snapshot)
        var text = "# TYPE tollgate_key_refresh_tasks gauge\n"
        text += "tollgate_key_refresh_tasks \(runtime.keyRefreshTaskCount)\n"
        text += "# TYPE tollgate_upstream_pools gauge\n"
        text += "tollgate_upstream_pools \(runtime.upstreamPoolCount)\n"
        buffer.append(contentsOf: text.utf8)
        return buffer
    }

    /// The exposition text: the registry plus the verifier's counters for `snapshot`.
    public func render(snapshot: ProxySnapshot) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        var text = ""
        let cache = snapshot.verifier.cache
        text += "# TYPE tollgate_token_cache_total counter\n"
        text += "tollgate_token_cache_total{result=\"hit\"} \(cache.hits)\n"
        text += "tollgate_token_cache_total{result=\"miss\"} \(cache.misses)\n"
        text += "# TYPE tollgate_jwks_fetches_total counter\n"
        for issuer in snapshot.verifier.issuers {
            guard let keys = issuer.jwks else { continue }
            let results = keys.fetchResults
            text += "tollgate_jwks_fetches_total{issuer=\"\(issuer.policy.name)\",result=\"ok\"} \(results.succeeded)\n"
            text += "tollgate_jwks_fetches_total{issuer=\"\(issuer.policy.name)\",result=\"error\"} \(results.failed)\n"
        }
        text += "# TYPE tollgate_introspection_calls_total counter\n"
        for issuer in snapshot.verifier.issuers {
            guard let introspection = issuer.introspectionClient else { continue }
            let results = introspection.callResults
            let name = issuer.policy.name
            text += "tollgate_introspection_calls_total{issuer=\"\(name)\",result=\"active\"} \(results.active)\n"
            text += "tollgate_introspection_calls_total{issuer=\"\(name)\",result=\"inactive\"} \(results.inactive)\n"
            text += "tollgate_introspection_calls_total{issuer=\"\(name)\",result=\"error\"} \(results.failed)\n"
        }
        text += "# TYPE tollgate_access_log_dropped_total counter\n"
        text += "tollgate_access_log_dropped_total \(AccessLog.dropped)\n"
        text += "# TYPE tollgate_issuer_ready gauge\n"
        for issuer in snapshot.verifier.issuers {
            let ready = issuer.keys?.isReady ?? true
            text += "tollgate_issuer_ready{issuer=\"\(issuer.policy.name)\"} \(ready ? 1 : 0)\n"
        }
        buffer.append(contentsOf: text.utf8)
        return buffer
    }
}
