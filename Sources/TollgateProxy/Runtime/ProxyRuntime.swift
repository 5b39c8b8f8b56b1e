import AsyncHTTPClient
import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import TollgateCore

/// The live state shared by every connection: the current snapshot (swapped atomically on
/// reload), the metrics and the draining flag. A request reads the snapshot once; nothing on
/// the request path takes a lock or hops to an actor.
public final class ProxyRuntime: Sendable {
    private let current: ManagedAtomic<ProxySnapshot>
    private let draining = ManagedAtomic<Bool>(false)
    public let metrics: ProxyMetrics
    let group: any EventLoopGroup
    let client: HTTPClient
    let logger: Logger
    /// Key caches whose background refresh was asked for, by identity, so a reload starts new
    /// ones and stops the ones no longer used. `runKeyRefreshes()` carries the requests out.
    private let refreshing = NIOLockedValueBox<Set<ObjectIdentifier>>([])
    private let refreshRequests: AsyncStream<KeyRefreshRequest>.Continuation
    private let refreshRequestStream: AsyncStream<KeyRefreshRequest>
    /// Refresh loops running now.
    private let runningRefreshes = ManagedAtomic<Int>(0)
    /// One reload at a time: a SIGHUP and a file change arriving together apply once, in order.
    private let reloads = SerialGate()
    /// Upstream pools made and not yet closed (a reload that lost a race would leave one open).
    private let openPools = ManagedAtomic<Int>(0)

    /// Endpoints answered before routing (the in-process issuer's), if any.
    public let localEndpoints: (any LocalEndpoints)?
    /// Issuers in this process, read directly by the verifier.
    let inProcess: InProcessIssuers

    public init(
        configuration: TollgateConfiguration,
        group: any EventLoopGroup,
        client: HTTPClient,
        metrics: ProxyMetrics = ProxyMetrics(),
        logger: Logger = Logger(label: "tollgate"),
        localEndpoints: (any LocalEndpoints)? = nil,
        inProcess: InProcessIssuers = InProcessIssuers()
    ) throws {
        self.localEndpoints = localEndpoints
        self.inProcess = inProcess
        self.group = group
        self.client = client
        self.metrics = metrics
        self.logger = logger
        (refreshRequestStream, refreshRequests) = AsyncStream.makeStream(of: KeyRefreshRequest.self)
        let snapshot = try Self.makeSnapshot(
            configuration,
            previous: nil,
            inProcess: inProcess,
            group: group,
            client: client,
            metrics: metrics,
            logger: logger
        )
        current = ManagedAtomic(snapshot)
        AccessLog.capacity = configuration.server.accessLogBufferBytes
        if snapshot.pools != nil { openPools.wrappingIncrement(ordering: .relaxed) }
        startRefreshes(for: snapshot.verifier)
    }

    /// Background key refresh loops running now.
    public var keyRefreshTaskCount: Int { runningRefreshes.load(ordering: .relaxed) }

    /// Upstream connection pools open now: one while an upstream is configured.
    public var upstreamPoolCount: Int { openPools.load(ordering: .relaxed) }

    public var snapshot: ProxySnapshot { current.load(ordering: .acquiring) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    public var isReady: Bool { !isDraining && snapshot.verifier.isReady }

    func startDraining() { draining.store(true, ordering: .relaxed) }

    /// Validates `path` and swaps the new configuration in; an invalid file changes nothing, and
    /// neither does a file that says what the running configuration says. Reloads run one at a
    /// time.
    @discardableResult
    public func reload(from path: String) async -> Result<Void, ConfigurationError> {
        await reloads.run { await self.reloadNow(from: path) }
    }

    private func reloadNow(from path: String) async -> Result<Void, ConfigurationError> {
        let loaded: TollgateConfiguration
        do {
            loaded = try ConfigurationLoader.load(path: path)
        } catch {
            metrics.reloadFailures.increment()
            logger.error("configuration refused, the previous one keeps serving", metadata: ["error": "\(error)"])
            return .failure(error)
        }
        if loaded == snapshot.configuration {
            logger.info("configuration unchanged", metadata: ["file": "\(path)"])
            return .success(())
        }
        // The in-process issuer (its storage, keys, clients and options) is built once at start;
        // a reload that changes it would leave the gate and the issuer disagreeing.
        if !Self.sameIssuer(loaded, snapshot.configuration) {
            metrics.reloadFailures.increment()
            let error = ConfigurationError(
                file: path,
                line: loaded.localIssuer?.line ?? snapshot.configuration.localIssuer?.line,
                column: nil,
                field: "issuer",
                message: "the issuer: section changed; it takes effect on a restart, so nothing was applied"
            )
            logger.error("configuration refused, the previous one keeps serving", metadata: ["error": "\(error)"])
            return .failure(error)
        }
        do {
            try await applyNow(loaded)
        } catch {
            metrics.reloadFailures.increment()
            logger.error("configuration refused, the previous one keeps serving", metadata: ["error": "\(error)"])
            return .failure(
                ConfigurationError(file: path, line: nil, column: nil, field: "", message: "\(error)")
            )
        }
        return .success(())
    }

    /// Whether the two configure the same `issuer:` section (where it sits in the file does not
    /// count).
    static func sameIssuer(_ lhs: TollgateConfiguration, _ rhs: TollgateConfiguration) -> Bool {
        switch (lhs.localIssuer, rhs.localIssuer) {
        case (nil, nil): true
        case (let left?, let right?): left.sameSection(as: right)
        default: false
        }
    }

    /// Swaps in `configuration`. Each issuer configured as before keeps its key cache and
    /// introspection client (keys survive, no refetch); with every issuer unchanged, the cached
    /// claims survive too. New issuers' keys are awaited, for up to five seconds, before the new
    /// configuration starts answering; the upstream pool is kept when unchanged.
    public func apply(_ configuration: TollgateConfiguration) async throws {
        try await reloads.run { try await self.applyNow(configuration) }
    }

    private func applyNow(_ configuration: TollgateConfiguration) async throws {
        let previous = snapshot
        let next = try Self.makeSnapshot(
            configuration,
            previous: previous,
            inProcess: inProcess,
            group: group,
            client: client,
            metrics: metrics,
            logger: logger
        )
        if next.verifier !== previous.verifier {
            startRefreshes(for: next.verifier)
            let deadline = ContinuousClock.now + .seconds(5)
            while !next.verifier.isReady && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        current.store(next, ordering: .releasing)
        AccessLog.capacity = configuration.server.accessLogBufferBytes
        if next.verifier !== previous.verifier { stopRefreshes(for: previous.verifier) }
        if next.pools != nil && next.pools !== previous.pools { openPools.wrappingIncrement(ordering: .relaxed) }
        if let oldPools = previous.pools, next.pools !== oldPools {
            oldPools.closeAll()
            openPools.wrappingDecrement(ordering: .relaxed)
        }
        metrics.reloads.increment()
        logger.info("configuration applied", metadata: ["file": "\(configuration.file)"])
    }

    static func makeSnapshot(
        _ configuration: TollgateConfiguration,
        previous: ProxySnapshot?,
        inProcess: InProcessIssuers,
        group: any EventLoopGroup,
        client: HTTPClient,
        metrics: ProxyMetrics,
        logger: Logger
    ) throws -> ProxySnapshot {
        let verifier: TokenVerifier
        // The verifier, and its cache, stay only if nothing it keeps of a token changes with the
        // configuration: the issuers, the cache size and the claims read (`ClaimProjection`).
        if let previous, previous.configuration.issuers == configuration.issuers,
            previous.configuration.cacheEntries == configuration.cacheEntries,
            previous.verifier.claimProjection == ClaimProjection(configuration)
        {
            verifier = previous.verifier
        } else {
            verifier = TokenVerifier(
                configuration: configuration,
                reusing: previous.map { ($0.configuration, $0.verifier) },
                inProcess: inProcess,
                client: client,
                logger: logger
            )
        }
        let pools: UpstreamPools?
        if let upstream = configuration.upstream {
            if let previousPools = previous?.pools, previousPools.settings == upstream {
                pools = previousPools
            } else {
                pools = try UpstreamPools(settings: upstream, group: group)
            }
        } else {
            pools = nil
        }
        // The replay cache and the nonce key outlive reloads: a reload must not reopen the window
        // for proofs already seen.
        let dpop = DPoPState(settings: configuration.dpop, previous: previous?.dpop)
        return ProxySnapshot(
            configuration: configuration,
            verifier: verifier,
            metrics: metrics,
            pools: pools,
            dpop: dpop
        )
    }

    private func startRefreshes(for verifier: TokenVerifier) {
        for issuer in verifier.issuers {
            guard let keys = issuer.jwks else { continue }
            let inserted = refreshing.withLockedValue { $0.insert(ObjectIdentifier(keys)).inserted }
            if inserted { refreshRequests.yield(.start(keys)) }
        }
    }

    private func stopRefreshes(for verifier: TokenVerifier) {
        let stillUsed = Set(snapshot.verifier.issuers.compactMap { $0.jwks.map(ObjectIdentifier.init) })
        for issuer in verifier.issuers {
            guard let keys = issuer.jwks else { continue }
            let key = ObjectIdentifier(keys)
            if stillUsed.contains(key) { continue }
            let removed = refreshing.withLockedValue { $0.remove(key) != nil }
            if removed { refreshRequests.yield(.stop(key)) }
        }
    }

    /// Runs the key caches' background refreshes, starting and stopping them as configurations
    /// come and go, until cancelled (`KeyRefreshService` runs it in the service group). Every
    /// refresh is a child task here: nothing outlives this call.
    public func runKeyRefreshes() async {
        await withDiscardingTaskGroup { group in
            var stops: [ObjectIdentifier: AsyncStream<Void>.Continuation] = [:]
            for await request in refreshRequestStream {
                switch request {
                case .start(let keys):
                    let (stopped, stop) = AsyncStream.makeStream(of: Void.self)
                    stops[ObjectIdentifier(keys)] = stop
                    let running = runningRefreshes
                    group.addTask {
                        running.wrappingIncrement(ordering: .relaxed)
                        defer { running.wrappingDecrement(ordering: .relaxed) }
                        await withTaskGroup(of: Void.self) { refresh in
                            refresh.addTask { await keys.run() }
                            refresh.addTask { for await _ in stopped {} }
                            await refresh.next()
                            refresh.cancelAll()
                        }
                    }
                case .stop(let identifier):
                    stops.removeValue(forKey: identifier)?.finish()
                }
            }
            for stop in stops.values { stop.finish() }
        }
    }

    /// Closes the upstream pool's idle connections (after the listeners have drained).
    public func shutdown() {
        if let pools = snapshot.pools {
            pools.closeAll()
            openPools.wrappingDecrement(ordering: .relaxed)
        }
    }
}

enum KeyRefreshRequest: Sendable {
    case start(JWKSCache)
    case stop(ObjectIdentifier)
}
