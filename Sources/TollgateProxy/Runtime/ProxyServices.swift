import ServiceLifecycle

/// The background work of a running proxy as services of one `ServiceGroup`, so a graceful
/// shutdown stops each of them once, in the reverse of the order they are listed in
/// `RunningProxy.services(grace:)`: the listeners drain first while keys keep refreshing, then the
/// watcher stops, then the key refreshes.
extension RunningProxy {
    /// Key refresh, configuration watching, then the listeners (add the SIGHUP service before the
    /// listeners).
    public func services(grace: Duration) -> (keys: any Service, watcher: any Service, listeners: any Service) {
        (
            KeyRefreshService(runtime: runtime), ConfigurationWatchService(proxy: self),
            ListenerService(proxy: self, grace: grace)
        )
    }
}

/// Every issuer's background key refresh, started and stopped as reloads change the issuers.
public struct KeyRefreshService: Service {
    let runtime: ProxyRuntime

    public init(runtime: ProxyRuntime) {
        self.runtime = runtime
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await runtime.runKeyRefreshes() }
    }
}

/// Reloads the configuration file when it changes, until a graceful shutdown.
public struct ConfigurationWatchService: Service {
    let proxy: RunningProxy

    public init(proxy: RunningProxy) {
        self.proxy = proxy
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await proxy.watchConfiguration() }
    }
}

/// The proxy and admin listeners (bound by `RunningProxy.start`): on a graceful shutdown,
/// readiness turns false, in-flight requests finish within `grace`, then both close.
public struct ListenerService: Service {
    let proxy: RunningProxy
    let grace: Duration

    public init(proxy: RunningProxy, grace: Duration) {
        self.proxy = proxy
        self.grace = grace
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await proxy.stop(grace: grace)
    }
}
